package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/cap"
)

var getFlags struct {
	node  string
	quiet bool
}

var getCmd = &cobra.Command{
	Use:   "get CAP [OUT|-]",
	Short: "Download the file a read cap names, to OUT or standard output",
	Long: `Download the file CAP names through the client node's local API and write
it to OUT, or to standard output when OUT is "-" or left out. OUT is written
whole or not at all: the bytes go to a temporary file beside it, renamed
into place once every byte has arrived and been verified (a symbolic link's
target is replaced; a device or FIFO such as /dev/null is written in
place). A progress bar with the rate shows on a terminal.`,
	Args: cobra.RangeArgs(1, 2),
	RunE: func(cmd *cobra.Command, args []string) error {
		capStr := args[0]
		c, err := cap.Parse(capStr)
		if err != nil {
			return fmt.Errorf("get: bad cap: %w", err)
		}
		if _, ok := c.(cap.CHKVerify); ok {
			return errors.New("get: bad cap: a verify cap can check a file but not read it; give the read cap (tarn:chk:...)")
		}
		out := "-"
		if len(args) == 2 {
			out = args[1]
		}
		if out != "-" {
			// Checked before the download: the rename at its end failed
			// ("rename .tarn-get-... DIR: file exists") after every byte
			// had come.
			if st, err := os.Stat(out); err == nil && st.IsDir() {
				return fmt.Errorf("get: %s is a folder: name the file to write (tarn get CAP %s)", out, filepath.Join(out, "NAME"))
			}
		}
		cl, err := apiClient(getFlags.node)
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		body, size, err := cl.Get(ctx, c.String())
		if err != nil {
			return apiError("get", err)
		}
		defer body.Close()

		var w io.Writer = cmd.OutOrStdout()
		var lo *localOut
		if out != "-" {
			lo, err = createOut(out, ".tarn-get-"+filepath.Base(out)+"-")
			if err != nil {
				return fmt.Errorf("get: %w", err)
			}
			defer lo.abort()
			w = lo
		}
		var src io.Reader = body
		name := out
		if out == "-" {
			name = "stdout"
		}
		bar := newBar(size, "get → "+name, getFlags.quiet)
		if bar != nil {
			src = io.TeeReader(body, bar)
		}
		n, err := io.Copy(w, src)
		if bar != nil {
			bar.Finish()
			fmt.Fprintln(os.Stderr)
		}
		if err == nil && size >= 0 && n != size {
			err = io.ErrUnexpectedEOF
		}
		if errors.Is(err, api.ErrTruncated) {
			// The node said why in the Tarn-Error trailer.
			return fmt.Errorf("get: %w", err)
		}
		if err != nil {
			return fmt.Errorf("get: after %d of %d bytes: %w (the node's log says why)", n, size, err)
		}
		if lo != nil {
			if err := lo.commit(true); err != nil {
				return fmt.Errorf("get: %w", err)
			}
		}
		return nil
	},
}

func init() {
	f := getCmd.Flags()
	f.StringVar(&getFlags.node, "node", "", "client node folder (default $TARN_NODE, then ~/.tarn)")
	f.BoolVarP(&getFlags.quiet, "quiet", "q", false, "no progress bar")
	rootCmd.AddCommand(getCmd)
}
