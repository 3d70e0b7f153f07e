package main

// The CLI over the vdrive: ls, mkdir, rm, mv, cp, ln, cat, tree. Paths are
// NAME:path (an alias), CAP:/path, or local paths (cp only). Every command
// asks the client node through its API; none touches the grid itself.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/text/unicode/norm"

	"github.com/tarnfs/tarn/host/aliases"
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/vdrive"
)

var fsFlags struct {
	node      string
	long      bool
	json      bool
	parents   bool
	recursive bool
	quiet     bool
	jobs      int
	preserve  bool
}

func cliContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// fsError makes an API error one line: what, on which path, why.
func fsError(op, what string, err error) error {
	var fe *api.FSError
	if errors.As(err, &fe) {
		msg := fe.Msg
		switch fe.Kind {
		case api.KindNotExist:
			msg = "no such file or directory"
		case api.KindExist:
			msg = "already exists"
		case api.KindNotDir:
			msg = "not a directory"
		case api.KindIsDir:
			msg = "is a directory"
		case api.KindNotEmpty:
			msg = "directory not empty (rm -r removes it with what it holds)"
		case api.KindReadOnly:
			msg = "read-only (reached through a read cap)"
		}
		return fmt.Errorf("%s %s: %s", op, what, msg)
	}
	return apiError(op+" "+what, err)
}

// gridArg parses a path argument that must be on the grid.
func gridArg(dir, s string) (aliases.Arg, error) {
	a, err := parseArg(dir, s)
	if err != nil {
		return a, err
	}
	if !a.IsGrid() {
		return a, fmt.Errorf("%s is not a grid path: write ALIAS:path or a directory cap (tarn alias list)", s)
	}
	return a, nil
}

// fsSetup finds the node's folder and API.
func fsSetup(op string) (string, *api.Client, error) {
	dir, err := nodeDir(fsFlags.node)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", op, err)
	}
	c, err := apiClient(fsFlags.node)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", op, err)
	}
	return dir, c, nil
}

// stat of a grid argument; a bare file cap is a file entry of its own.
func statArg(ctx context.Context, c *api.Client, a aliases.Arg) (*api.Entry, error) {
	if a.Path == "/" && !isDirCap(a.Root) {
		return &api.Entry{Name: "", Type: "file", ReadCap: a.Root, Size: -1}, nil
	}
	return c.Stat(ctx, a.Root, a.Path)
}

func isDirCap(s string) bool {
	return strings.HasPrefix(s, "tarn:dir:") || strings.HasPrefix(s, "tarn:dir-ro:")
}

var lsCmd = &cobra.Command{
	Use:   "ls [-l] [--json] PATH",
	Short: "List a grid directory (or describe a file)",
	Args:  cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, c, err := fsSetup("ls")
		if err != nil {
			return err
		}
		a, err := gridArg(dir, args[0])
		if err != nil {
			return fmt.Errorf("ls: %w", err)
		}
		ctx, stop := cliContext()
		defer stop()
		e, err := statArg(ctx, c, a)
		if err != nil {
			return fsError("ls", a.String(), err)
		}
		out := cmd.OutOrStdout()
		if e.Name == "" {
			e.Name = a.String() // a bare file cap
		}
		if !e.IsDir() {
			return printEntries(out, []api.Entry{*e})
		}
		if fsFlags.json || fsFlags.long {
			es, err := c.ReadDir(ctx, a.Root, a.Path)
			if err != nil {
				return fsError("ls", a.String(), err)
			}
			return printEntries(out, es)
		}
		// Names as they arrive: a big directory starts printing at once.
		if err := c.List(ctx, a.Root, a.Path, func(e api.Entry) error {
			_, err := fmt.Fprintln(out, e.Name)
			return err
		}); err != nil {
			return fsError("ls", a.String(), err)
		}
		return nil
	},
}

// printEntries prints entries as ls's flags say.
func printEntries(out io.Writer, entries []api.Entry) error {
	if fsFlags.json {
		if entries == nil {
			entries = []api.Entry{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	if !fsFlags.long {
		for _, e := range entries {
			fmt.Fprintln(out, e.Name)
		}
		return nil
	}
	width := 1
	for _, e := range entries {
		width = max(width, len(fmt.Sprint(e.Size)))
	}
	for _, e := range entries {
		fmt.Fprintf(out, "%s %*d %s %s\n", modeOf(e), width, e.Size, timeOf(e.Mtime), e.Name)
	}
	return nil
}

func modeOf(e api.Entry) string {
	w := "w"
	if e.WriteCap == "" && (e.IsDir() || !strings.HasPrefix(e.ReadCap, "tarn:chk:") && !strings.HasPrefix(e.ReadCap, "tarn:lit:")) {
		w = "-"
	}
	if e.IsDir() {
		return "dr" + w + "x"
	}
	return "-r" + w + "-"
}

func timeOf(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

var mkdirCmd = &cobra.Command{
	Use:   "mkdir [-p] PATH...",
	Short: "Make grid directories",
	Args:  cobra.MinimumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, c, err := fsSetup("mkdir")
		if err != nil {
			return err
		}
		ctx, stop := cliContext()
		defer stop()
		return eachArg(ctx, cmd.ErrOrStderr(), args, func(s string) error {
			a, err := gridArg(dir, s)
			if err != nil {
				return fmt.Errorf("mkdir: %w", err)
			}
			if _, err := c.Mkdir(ctx, a.Root, a.Path, fsFlags.parents); err != nil {
				return fsError("mkdir", a.String(), err)
			}
			return nil
		})
	},
}

var rmCmd = &cobra.Command{
	Use:   "rm [-r] PATH...",
	Short: "Unlink grid files and directories",
	Long: `Unlink PATH from its directory. A directory must be empty unless -r is
given. Nothing is deleted from the grid: other links to the same cap keep
working, and shares no longer linked anywhere expire with their leases.`,
	Args: cobra.MinimumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, c, err := fsSetup("rm")
		if err != nil {
			return err
		}
		ctx, stop := cliContext()
		defer stop()
		return eachArg(ctx, cmd.ErrOrStderr(), args, func(s string) error {
			a, err := gridArg(dir, s)
			if err != nil {
				return fmt.Errorf("rm: %w", err)
			}
			if a.Path == "/" {
				return fmt.Errorf("rm: %s is a root directory: remove its alias with tarn alias rm", s)
			}
			if err := c.Remove(ctx, a.Root, a.Path, fsFlags.recursive); err != nil {
				return fsError("rm", a.String(), err)
			}
			return nil
		})
	},
}

var mvCmd = &cobra.Command{
	Use:   "mv SRC DST",
	Short: "Move or rename a grid entry (into DST when DST is a directory)",
	Args:  cobra.ExactArgs(2),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, c, err := fsSetup("mv")
		if err != nil {
			return err
		}
		src, err := gridArg(dir, args[0])
		if err != nil {
			return fmt.Errorf("mv: %w", err)
		}
		dst, err := gridArg(dir, args[1])
		if err != nil {
			return fmt.Errorf("mv: %w", err)
		}
		if src.Path == "/" {
			return fmt.Errorf("mv: %s is a root directory", args[0])
		}
		ctx, stop := cliContext()
		defer stop()
		if de, err := c.Stat(ctx, dst.Root, dst.Path); err == nil && de.IsDir() {
			dst = dst.Join(path.Base(src.Path))
		} else if err != nil && !errors.Is(err, vdrive.ErrNotExist) {
			return fsError("mv", dst.String(), err)
		}
		if src.Root == dst.Root {
			if _, err := c.Rename(ctx, src.Root, src.Path, dst.Path); err != nil {
				return fsError("mv", src.String(), err)
			}
			return nil
		}
		// Across roots: link the child at DST (by its write cap when it
		// has one), then unlink SRC. A failure between leaves it linked
		// twice, never lost.
		e, err := c.Stat(ctx, src.Root, src.Path)
		if err != nil {
			return fsError("mv", src.String(), err)
		}
		link := e.ReadCap
		if e.WriteCap != "" {
			link = e.WriteCap
		}
		if _, err := c.Link(ctx, dst.Root, dst.Path, link); err != nil {
			return fsError("mv", dst.String(), err)
		}
		if err := c.Remove(ctx, src.Root, src.Path, true); err != nil {
			return fsError("mv: unlink", src.String()+" (it is linked at "+dst.String()+" too now)", err)
		}
		return nil
	},
}

var lnCmd = &cobra.Command{
	Use:   "ln CAP PATH",
	Short: "Attach an existing cap (file or directory) at a grid path",
	Args:  cobra.ExactArgs(2),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, c, err := fsSetup("ln")
		if err != nil {
			return err
		}
		capStr := args[0]
		if a, err := aliases.ParseArg(capStr, aliases.Resolver(dir)); err == nil && a.IsGrid() && a.Alias != "" && a.Path == "/" {
			capStr = a.Root // an alias stands for its cap
		}
		dst, err := gridArg(dir, args[1])
		if err != nil {
			return fmt.Errorf("ln: %w", err)
		}
		if dst.Path == "/" {
			return fmt.Errorf("ln: %s: give the name to link at (ALIAS:path/name)", args[1])
		}
		ctx, stop := cliContext()
		defer stop()
		if _, err := c.Link(ctx, dst.Root, dst.Path, capStr); err != nil {
			return fsError("ln", dst.String(), err)
		}
		return nil
	},
}

var catCmd = &cobra.Command{
	Use:   "cat PATH...",
	Short: "Write grid files to standard output",
	Args:  cobra.MinimumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, c, err := fsSetup("cat")
		if err != nil {
			return err
		}
		ctx, stop := cliContext()
		defer stop()
		out := cmd.OutOrStdout()
		return eachArg(ctx, cmd.ErrOrStderr(), args, func(s string) error {
			a, err := gridArg(dir, s)
			if err != nil {
				return fmt.Errorf("cat: %w", err)
			}
			var body io.ReadCloser
			var size int64
			if a.Path == "/" && !isDirCap(a.Root) {
				body, size, err = c.Get(ctx, a.Root)
			} else {
				body, size, err = c.Read(ctx, a.Root, a.Path, 0, -1)
			}
			if err != nil {
				return fsError("cat", a.String(), err)
			}
			n, err := io.Copy(out, body)
			body.Close()
			if err == nil && size >= 0 && n != size {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				return fmt.Errorf("cat %s: after %d bytes: %w", a.String(), n, err)
			}
			return nil
		})
	},
}

var treeCmd = &cobra.Command{
	Use:   "tree PATH",
	Short: "Show a grid directory and everything below it",
	Args:  cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, c, err := fsSetup("tree")
		if err != nil {
			return err
		}
		a, err := gridArg(dir, args[0])
		if err != nil {
			return fmt.Errorf("tree: %w", err)
		}
		ctx, stop := cliContext()
		defer stop()
		out := cmd.OutOrStdout()
		fmt.Fprintln(out, args[0])
		var dirs, files int
		// A directory may hold a link to itself or to a folder above it
		// (tarn ln of an ancestor's cap): the walk printed that loop until
		// killed. above holds the read caps of the folders being walked.
		above := map[string]bool{}
		if e, err := statArg(ctx, c, a); err == nil && e.ReadCap != "" {
			above[e.ReadCap] = true
		}
		var walk func(p, indent string) error
		walk = func(p, indent string) error {
			es, err := c.ReadDir(ctx, a.Root, p)
			if err != nil {
				return fsError("tree", a.Join(strings.TrimPrefix(p, a.Path)).String(), err)
			}
			for i, e := range es {
				branch, next := "├── ", "│   "
				if i == len(es)-1 {
					branch, next = "└── ", "    "
				}
				if e.IsDir() {
					dirs++
					if above[e.ReadCap] {
						fmt.Fprintf(out, "%s%s%s/ (a loop: the same directory as one above it)\n", indent, branch, e.Name)
						continue
					}
					fmt.Fprintf(out, "%s%s%s/\n", indent, branch, e.Name)
					if e.ReadCap != "" {
						above[e.ReadCap] = true
					}
					err := walk(strings.TrimSuffix(p, "/")+"/"+e.Name, indent+next)
					delete(above, e.ReadCap)
					if err != nil {
						return err
					}
				} else {
					files++
					fmt.Fprintf(out, "%s%s%s\n", indent, branch, e.Name)
				}
			}
			return nil
		}
		if err := walk(a.Path, ""); err != nil {
			return err
		}
		fmt.Fprintf(out, "\n%d directories, %d files\n", dirs, files)
		return nil
	},
}

func init() {
	for _, c := range []*cobra.Command{lsCmd, mkdirCmd, rmCmd, mvCmd, lnCmd, catCmd, treeCmd, cpCmd} {
		c.Flags().StringVar(&fsFlags.node, "node", "", "client node folder (default $TARN_NODE, then ~/.tarn)")
		rootCmd.AddCommand(c)
	}
	lsCmd.Flags().BoolVarP(&fsFlags.long, "long", "l", false, "long listing: type and access, size, modification time, name")
	lsCmd.Flags().BoolVar(&fsFlags.json, "json", false, "print the entries as JSON (with their caps)")
	mkdirCmd.Flags().BoolVarP(&fsFlags.parents, "parents", "p", false, "make missing parents; an existing directory is fine")
	rmCmd.Flags().BoolVarP(&fsFlags.recursive, "recursive", "r", false, "unlink directories with what they hold")
	cpCmd.Flags().BoolVarP(&fsFlags.recursive, "recursive", "r", false, "copy directories with what they hold")
	cpCmd.Flags().BoolVarP(&fsFlags.quiet, "quiet", "q", false, "no progress bar")
	// Files are stored jobs at a time, then linked one directory change
	// per directory (with -p, each file on its own). 16 small files in
	// flight cost the grid a quarter less CPU per file than 4 (servers
	// batch their commits); big files stay at most bigJobs at once, so
	// the node's memory stays that of a few uploads.
	cpCmd.Flags().IntVarP(&fsFlags.jobs, "jobs", "j", 16, "files transferred at once (at most 4 of them over 1 MiB)")
	cpCmd.Flags().BoolVarP(&fsFlags.preserve, "preserve", "p", false, "keep modification times (one more directory change per file uploaded)")
}

// ---- cp ----

var cpCmd = &cobra.Command{
	Use:   "cp [-r] SRC... DST",
	Short: "Copy between local paths and grid paths, either way",
	Long: `Copy files (and with -r directories, with empty folders and zero-byte
files) from local paths to a grid path, from grid paths to a local path, or
between grid paths (by linking caps: no data moves). When DST is an
existing directory, or several SRCs are given, each SRC is copied into it
under its own name; else DST is the copy. Uploads stream; with -p
modification times are kept both ways. A progress bar shows on a terminal.
Inside a local directory, symbolic links and special files are skipped (a
SRC named on the command line is read, a pipe too: cp <(cmd) home:x). A
grid directory holding a link to one above it (a loop) is refused.`,
	Args: cobra.MinimumNArgs(2),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, c, err := fsSetup("cp")
		if err != nil {
			return err
		}
		var srcs []aliases.Arg
		for _, s := range args[:len(args)-1] {
			a, err := parseArg(dir, s)
			if err != nil {
				return fmt.Errorf("cp: %w", err)
			}
			srcs = append(srcs, a)
		}
		dst, err := parseArg(dir, args[len(args)-1])
		if err != nil {
			return fmt.Errorf("cp: %w", err)
		}
		ctx, stop := cliContext()
		defer stop()
		cp := &copier{c: c, ctx: ctx, recursive: fsFlags.recursive, jobs: max(1, fsFlags.jobs)}
		return cp.run(srcs, dst)
	},
}

// copier is one cp run: it plans the copies, then runs them.
type copier struct {
	c         *api.Client
	ctx       context.Context
	recursive bool
	jobs      int

	bar   *progressbar.ProgressBar
	total int64
	files []fileJob
	dirs  []func() error // made in order, before files

	mu    sync.Mutex
	links []pendingLink // linked after the files are stored
}

// pendingLink is a stored file to link at dir/name. Files are stored
// jobs at a time, then linked with one directory change per directory
// (ln-many), not one per file: small files go many times faster, and
// only one change at a time reaches a directory. A name that exists
// already is replaced by replace, one file at a time.
type pendingLink struct {
	dir     aliases.Arg
	name    string
	cap     string
	replace func() error
}

// linkBatch bounds the links of one directory change.
const linkBatch = 500

type fileJob struct {
	size int64 // bytes, -1 unknown
	run  func() error
}

// bigJobs bounds the files over bigFile bytes in flight: each costs the
// node a few MiB of segment buffers and share queues, a small file a few
// KiB.
const (
	bigJobs = 4
	bigFile = 1 << 20
)

func (cp *copier) run(srcs []aliases.Arg, dst aliases.Arg) error {
	// Is DST a directory to copy into?
	into := dst.Trailing || len(srcs) > 1
	if dst.IsGrid() {
		if e, err := statArg(cp.ctx, cp.c, dst); err == nil {
			into = into || e.IsDir()
		} else if !errors.Is(err, vdrive.ErrNotExist) {
			return fsError("cp", dst.String(), err)
		} else if into {
			return fsError("cp", dst.String(), err)
		}
	} else if st, err := os.Stat(dst.Local); err == nil {
		into = into || st.IsDir()
	} else if into {
		return fmt.Errorf("cp: %w", err)
	}
	for _, src := range srcs {
		if !src.IsGrid() && !dst.IsGrid() {
			return fmt.Errorf("cp: %s and %s are both local: use your system's cp", src, dst)
		}
		target := dst
		if into {
			target = joinArg(dst, baseOf(src))
		}
		var err error
		if src.IsGrid() {
			err = cp.planFromGrid(src, target)
		} else {
			err = cp.planFromLocal(src.Local, target)
		}
		if err != nil {
			return err
		}
	}
	for _, d := range cp.dirs {
		if err := d(); err != nil {
			return err
		}
	}
	if len(cp.files) > 1 || cp.total > 1<<20 {
		cp.bar = newBar(cp.total, fmt.Sprintf("cp %d files", len(cp.files)), fsFlags.quiet)
	}
	err := cp.runFiles()
	if err == nil {
		err = cp.linkAll()
	}
	if cp.bar != nil {
		cp.bar.Finish()
		fmt.Fprintln(os.Stderr)
	}
	return err
}

func (cp *copier) addLink(l pendingLink) {
	cp.mu.Lock()
	cp.links = append(cp.links, l)
	cp.mu.Unlock()
}

// linkAll links the stored files, directory by directory in batches.
func (cp *copier) linkAll() error {
	type key struct{ root, path string }
	var order []key
	byDir := map[key][]pendingLink{}
	for _, l := range cp.links {
		k := key{l.dir.Root, l.dir.Path}
		if _, ok := byDir[k]; !ok {
			order = append(order, k)
		}
		byDir[k] = append(byDir[k], l)
	}
	for _, k := range order {
		ls := byDir[k]
		for len(ls) > 0 {
			batch := ls[:min(len(ls), linkBatch)]
			ls = ls[len(batch):]
			m := make(map[string]string, len(batch))
			for _, l := range batch {
				m[l.name] = l.cap
			}
			err := cp.c.LinkMany(cp.ctx, k.root, k.path, m)
			if err == nil {
				continue
			}
			if !errors.Is(err, vdrive.ErrExist) {
				return fsError("cp: link in", batch[0].dir.String(), err)
			}
			// Some names exist: link the new ones in one change, then
			// replace the others one by one.
			have := map[string]string{}
			if err := cp.c.List(cp.ctx, k.root, k.path, func(e api.Entry) error {
				have[e.Name] = e.ReadCap
				return nil
			}); err != nil {
				return fsError("cp: list", batch[0].dir.String(), err)
			}
			fresh := map[string]string{}
			var old []pendingLink
			for _, l := range batch {
				if c, ok := have[norm.NFC.String(l.name)]; ok {
					// The same cap there is the same file: nothing to do.
					if c != l.cap {
						old = append(old, l)
					}
				} else {
					fresh[l.name] = l.cap
				}
			}
			if len(fresh) > 0 {
				if err := cp.c.LinkMany(cp.ctx, k.root, k.path, fresh); err != nil {
					return fsError("cp: link in", batch[0].dir.String(), err)
				}
			}
			for _, l := range old {
				if err := l.replace(); err != nil {
					return fsError("cp", l.dir.Join(l.name).String(), err)
				}
			}
		}
	}
	return nil
}

// parentOf splits a grid path into its directory and name.
func parentOf(a aliases.Arg) (aliases.Arg, string) {
	d := a
	d.Path = path.Dir(a.Path)
	d.Trailing = false
	return d, path.Base(a.Path)
}

func baseOf(a aliases.Arg) string {
	if a.IsGrid() {
		if a.Path == "/" {
			return ""
		}
		return path.Base(a.Path)
	}
	return filepath.Base(a.Local)
}

func joinArg(a aliases.Arg, name string) aliases.Arg {
	if name == "" {
		return a
	}
	if a.IsGrid() {
		return a.Join(name)
	}
	return aliases.Arg{Local: filepath.Join(a.Local, name)}
}

// runFiles runs the file copies, jobs at a time; the first error stops
// the rest.
func (cp *copier) runFiles() error {
	ctx, cancel := context.WithCancel(cp.ctx)
	defer cancel()
	work := make(chan fileJob)
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	big := make(chan struct{}, min(cp.jobs, bigJobs))
	for range cp.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				if j.size < 0 || j.size > bigFile {
					select {
					case big <- struct{}{}:
					case <-ctx.Done():
						continue
					}
				}
				if err := j.run(); err != nil {
					once.Do(func() { first = err; cancel() })
				}
				if j.size < 0 || j.size > bigFile {
					<-big
				}
			}
		}()
	}
	for _, j := range cp.files {
		select {
		case work <- j:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if first == nil && cp.ctx.Err() != nil {
		first = fmt.Errorf("cp: interrupted")
	}
	return first
}

// progress wraps r to move the bar.
func (cp *copier) progress(r io.Reader) io.Reader {
	if cp.bar == nil {
		return r
	}
	return io.TeeReader(r, cp.bar)
}

// planFromLocal plans copying the local path src to the grid path dst.
func (cp *copier) planFromLocal(src string, dst aliases.Arg) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	if st.IsDir() {
		// A symlink given as SRC is followed (links inside are not).
		if src, err = filepath.EvalSymlinks(src); err != nil {
			return fmt.Errorf("cp: %w", err)
		}
	}
	if !st.IsDir() {
		cp.addUpload(src, st, dst)
		return nil
	}
	if !cp.recursive {
		return fmt.Errorf("cp: %s is a directory (use cp -r)", src)
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("cp: %w", err)
		}
		rel, _ := filepath.Rel(src, p)
		target := dst
		if rel != "." {
			target = dst.Join(filepath.ToSlash(rel))
		}
		switch {
		case d.IsDir():
			top := rel == "."
			cp.dirs = append(cp.dirs, func() error {
				_, err := cp.c.Mkdir(cp.ctx, target.Root, target.Path, top)
				if err != nil && !top && errors.Is(err, vdrive.ErrExist) {
					e, serr := cp.c.Stat(cp.ctx, target.Root, target.Path)
					if serr == nil && e.IsDir() {
						return nil // copying into an existing tree
					}
				}
				if err != nil {
					return fsError("cp: mkdir", target.String(), err)
				}
				return nil
			})
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("cp: %w", err)
			}
			cp.addUpload(p, info, target)
		default:
			fmt.Fprintf(os.Stderr, "tarn: cp: skipping %s: not a regular file or directory\n", p)
		}
		return nil
	})
}

func (cp *copier) addUpload(src string, st fs.FileInfo, dst aliases.Arg) {
	size := st.Size()
	if !st.Mode().IsRegular() {
		// A pipe or a device named as SRC (tarn cp <(cmd) home:x): stat
		// says 0 bytes, and an empty file was stored, exit status 0. Its
		// size is unknown and it can be read only once: stored and
		// linked in one step below, never opened again.
		size = -1
	} else {
		cp.total += size
	}
	cp.files = append(cp.files, fileJob{size: size, run: func() error {
		// A name the drive would refuse fails before the upload, not
		// after it (an upload nothing links). A name over the limit for
		// new names that a file has already (an older version's) is
		// written in place: the node checks again.
		if err := vdrive.CheckNewPath(dst.Path); err != nil {
			if !errors.Is(err, vdrive.ErrNameTooLong) {
				return fsError("cp", src+" to "+dst.String(), err)
			}
			if e, serr := cp.c.Stat(cp.ctx, dst.Root, dst.Path); serr != nil || e.Type == "dir" {
				return fsError("cp", src+" to "+dst.String(), err)
			}
		}
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("cp: %w", err)
		}
		defer f.Close()
		write := func(r io.Reader, mtime time.Time) error {
			if _, err := cp.c.Write(cp.ctx, dst.Root, dst.Path, r, size, mtime); err != nil {
				return fsError("cp", src+" to "+dst.String(), err)
			}
			return nil
		}
		if fsFlags.preserve {
			// Stored, linked and given its time one file at a time.
			return write(cp.progress(f), st.ModTime())
		}
		if size < 0 {
			return write(cp.progress(f), time.Time{})
		}
		c, err := cp.c.Put(cp.ctx, cp.progress(f), size)
		if err != nil {
			return apiError("cp "+src, err)
		}
		dir, name := parentOf(dst)
		cp.addLink(pendingLink{dir: dir, name: name, cap: c, replace: func() error {
			f, err := os.Open(src)
			if err != nil {
				return err
			}
			defer f.Close()
			return write(f, time.Time{}) // the same bytes give the same cap
		}})
		return nil
	}})
}

// planFromGrid plans copying the grid path src to dst (local or grid).
func (cp *copier) planFromGrid(src aliases.Arg, dst aliases.Arg) error {
	e, err := statArg(cp.ctx, cp.c, src)
	if err != nil {
		return fsError("cp", src.String(), err)
	}
	if !e.IsDir() {
		cp.addFromGrid(src, *e, dst)
		return nil
	}
	if !cp.recursive {
		return fmt.Errorf("cp: %s is a directory (use cp -r)", src)
	}
	return cp.planGridDir(src, dst, true, map[string]string{e.ReadCap: src.String()})
}

// planGridDir plans the copy of the grid directory src. above maps the
// read caps of the directories being planned to their paths: a directory
// holding a link to itself or to one above it (tarn ln of an ancestor's
// cap) is refused, naming both, instead of being planned without end.
func (cp *copier) planGridDir(src aliases.Arg, dst aliases.Arg, top bool, above map[string]string) error {
	if dst.IsGrid() {
		cp.dirs = append(cp.dirs, func() error {
			_, err := cp.c.Mkdir(cp.ctx, dst.Root, dst.Path, top)
			if err != nil && !errors.Is(err, vdrive.ErrExist) {
				return fsError("cp: mkdir", dst.String(), err)
			}
			return nil
		})
	} else {
		local := dst.Local
		cp.dirs = append(cp.dirs, func() error {
			if err := os.MkdirAll(local, 0o755); err != nil {
				return fmt.Errorf("cp: %w", err)
			}
			return nil
		})
	}
	es, err := cp.c.ReadDir(cp.ctx, src.Root, src.Path)
	if err != nil {
		return fsError("cp", src.String(), err)
	}
	for _, c := range es {
		s, d := src.Join(c.Name), joinArg(dst, c.Name)
		if !dst.IsGrid() {
			local, err := localJoin(dst.Local, c.Name)
			if err != nil {
				return fmt.Errorf("cp: %s: %w", s, err)
			}
			d = aliases.Arg{Local: local}
		}
		if c.IsDir() {
			if first, loop := above[c.ReadCap]; loop && c.ReadCap != "" {
				return fmt.Errorf("cp: %s is a loop: the same directory as %s above it (tarn rm the link, or copy its parts)", s, first)
			}
			above[c.ReadCap] = s.String()
			err := cp.planGridDir(s, d, false, above)
			delete(above, c.ReadCap)
			if err != nil {
				return err
			}
			continue
		}
		cp.addFromGrid(s, c, d)
	}
	return nil
}

func (cp *copier) addFromGrid(src aliases.Arg, e api.Entry, dst aliases.Arg) {
	if dst.IsGrid() {
		// Grid to grid: a file is its cap; link it, no bytes move.
		link := e.ReadCap
		if e.WriteCap != "" {
			link = e.WriteCap
		}
		dir, name := parentOf(dst)
		cp.addLink(pendingLink{dir: dir, name: name, cap: link, replace: func() error {
			if err := cp.c.Remove(cp.ctx, dst.Root, dst.Path, false); err != nil && !errors.Is(err, vdrive.ErrNotExist) {
				return err
			}
			_, err := cp.c.Link(cp.ctx, dst.Root, dst.Path, link)
			return err
		}})
		return
	}
	if e.Size > 0 {
		cp.total += e.Size
	}
	cp.files = append(cp.files, fileJob{size: e.Size, run: func() error {
		return cp.download(src, e, dst.Local)
	}})
}

// download writes the grid file src to the local path out, whole or not
// at all (a temporary file renamed into place).
func (cp *copier) download(src aliases.Arg, e api.Entry, out string) error {
	var body io.ReadCloser
	var size int64
	var err error
	switch {
	case src.Path == "/" && !isDirCap(src.Root):
		body, size, err = cp.c.Get(cp.ctx, src.Root)
	case strings.HasPrefix(e.ReadCap, "tarn:chk:"), strings.HasPrefix(e.ReadCap, "tarn:lit:"):
		// An immutable file read by the cap its listing gave: no
		// directory is read again on the way.
		body, size, err = cp.c.Get(cp.ctx, e.ReadCap)
	default:
		body, size, err = cp.c.Read(cp.ctx, src.Root, src.Path, 0, -1)
	}
	if err != nil {
		return fsError("cp", src.String(), err)
	}
	defer body.Close()
	lo, err := createOut(out, ".tarn-cp-*")
	if err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	defer lo.abort()
	n, err := io.Copy(lo, cp.progress(body))
	if err == nil && size >= 0 && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = lo.commit(false)
	}
	if err != nil {
		return fmt.Errorf("cp %s to %s: %w", src, out, err)
	}
	if fsFlags.preserve && !e.Mtime.IsZero() {
		os.Chtimes(out, time.Time{}, e.Mtime)
	}
	return nil
}

// eachArg runs fn for each argument of a command that takes several
// (mkdir, rm, cat) and goes on after one fails, as rm and cat do: the
// first failure used to stop the rest, so "tarn rm a missing b" kept b and
// did not say so. Each failure but the last is printed here as one line;
// the last is returned (main prints it), and so the exit status is 1 when
// any failed. An interrupt stops it.
func eachArg(ctx context.Context, stderr io.Writer, args []string, fn func(s string) error) error {
	var last error
	for _, s := range args {
		if ctx.Err() != nil {
			if last == nil {
				last = context.Cause(ctx)
			}
			break
		}
		if err := fn(s); err != nil {
			if last != nil {
				fmt.Fprintf(stderr, "tarn: %v\n", last)
			}
			last = err
		}
	}
	return last
}
