package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tarnfs/tarn/host/api"
)

var putFlags struct {
	node  string
	quiet bool
}

var putCmd = &cobra.Command{
	Use:   "put [FILE|-] [ALIAS:path]",
	Short: "Upload a file (or standard input) and print its read cap",
	Long: `Upload FILE, or standard input when FILE is "-" or left out, through the
client node's local API, and print the file's read cap on standard output.
With a grid path (ALIAS:path, or a directory cap and path) the file is also
linked there (into it, under FILE's name, when it is a directory).
A progress bar with the rate shows on a terminal.`,
	Args: cobra.MaximumNArgs(2),
	RunE: func(cmd *cobra.Command, args []string) error {
		src := "-"
		if len(args) >= 1 {
			src = args[0]
		}
		c, err := apiClient(putFlags.node)
		if err != nil {
			return fmt.Errorf("put: %w", err)
		}
		var r io.Reader = os.Stdin
		size := int64(-1)
		name := "stdin"
		f := os.Stdin
		if src != "-" {
			f, err = os.Open(src)
			if err != nil {
				return fmt.Errorf("put: %w", err)
			}
			defer f.Close()
			r, name = f, src
		}
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		} else if err == nil && st.IsDir() {
			return fmt.Errorf("put: %s is a folder, not a file", src)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		bar := newBar(size, "put "+name, putFlags.quiet)
		if bar != nil {
			// The node stores the file after reading it all (a convergent
			// key needs the whole file first): say so when the body ends.
			r = &eofHook{r: io.TeeReader(r, bar), fn: func() { bar.Describe("put " + name + ": storing on the grid") }}
		}
		var capStr string
		switch {
		case len(args) == 2:
			capStr, err = putAt(ctx, c, putFlags.node, args[1], src, r, size)
		case src != "-" && size >= 0:
			// A regular file: the node is handed the open file and reads
			// it in place (no body, no spool), else it gets it as a body.
			var progress func(int64)
			if bar != nil {
				bar.ChangeMax64(-1)
				bar.Describe("put " + name + ": read and stored by the node")
				progress = func(n int64) { bar.Set64(n) }
			}
			capStr, err = c.PutFile(ctx, f, progress)
		default:
			capStr, err = c.Put(ctx, r, size)
		}
		if bar != nil {
			bar.Finish()
			fmt.Fprintln(os.Stderr)
		}
		if err != nil {
			return apiError("put "+name, err)
		}
		fmt.Fprintln(cmd.OutOrStdout(), capStr)
		return nil
	},
}

// putAt stores r at the grid path dst (into it when it is a directory)
// and returns the file's read cap.
func putAt(ctx context.Context, c *api.Client, nodeFlag, dst, src string, r io.Reader, size int64) (string, error) {
	dir, err := nodeDir(nodeFlag)
	if err != nil {
		return "", err
	}
	a, err := gridArg(dir, dst)
	if err != nil {
		return "", err
	}
	if e, err := c.Stat(ctx, a.Root, a.Path); err == nil && e.IsDir() || a.Trailing {
		if src == "-" {
			return "", fmt.Errorf("%s is a directory: name the file to store standard input as", dst)
		}
		a = a.Join(filepath.Base(src))
	}
	e, err := c.Write(ctx, a.Root, a.Path, r, size, time.Time{})
	if err != nil {
		return "", fsError("put", a.String(), err)
	}
	return e.ReadCap, nil
}

// eofHook calls fn once, when r first reports EOF.
type eofHook struct {
	r    io.Reader
	fn   func()
	done bool
}

func (e *eofHook) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF && !e.done {
		e.done = true
		e.fn()
	}
	return n, err
}

// newBar returns a progress bar on standard error, or nil when standard
// error is not a terminal (piped, logged) or quiet is set.
func newBar(size int64, what string, quiet bool) *progressbar.ProgressBar {
	if quiet || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(size,
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100e6),
		progressbar.OptionShowCount(),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionFullWidth(),
		progressbar.OptionSetRenderBlankState(true),
	)
}

func init() {
	f := putCmd.Flags()
	f.StringVar(&putFlags.node, "node", "", "client node folder (default $TARN_NODE, then ~/.tarn)")
	f.BoolVarP(&putFlags.quiet, "quiet", "q", false, "no progress bar")
	rootCmd.AddCommand(putCmd)
}
