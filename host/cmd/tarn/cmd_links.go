package main

// tarn links: the links a client node's write-behind could not make
// (STATE/failed-links.jsonl, docs/operations.md): list them, re-link
// their files through the node's API, drop lines by hand.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/aliases"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/vdrive"
)

var linksFlags struct {
	node string
	json bool
	to   string
	all  bool
}

var linksCmd = &cobra.Command{
	Use:   "links",
	Short: "List the links the node's write-behind could not make (failed-links.jsonl)",
	Long: `A file a WebDAV or SFTP client wrote is answered once its link is in the
client node's journal; a link that can never be made (its folder was removed,
moved or replaced by another node, a directory took its name, or another node
changed the entry before a replay) is kept in STATE/failed-links.jsonl. The
file itself is intact on the grid.

  tarn links                        list them, numbered
  tarn links relink N... --to DIR   link entry N's file as DIR/NAME and drop its line
  tarn links relink --all           each back at its path, under the root it was written to
  tarn links drop N...              drop lines (after re-linking by hand with tarn ln)

DIR is ALIAS:path or CAP:/path. Without --to, relink puts a file back at its
folder's path under its root when that root is one of the node's aliases or
account roots (the folder must exist there; an existing name is not replaced).`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		state, err := linksState()
		if err != nil {
			return fmt.Errorf("links: %w", err)
		}
		fl, err := vdrive.ReadFailedLinks(state)
		if err != nil {
			return fmt.Errorf("links: %w", err)
		}
		out := cmd.OutOrStdout()
		if linksFlags.json {
			enc := json.NewEncoder(out)
			for _, f := range fl {
				if err := enc.Encode(f); err != nil {
					return err
				}
			}
			return nil
		}
		if len(fl) == 0 {
			fmt.Fprintln(out, "no failed links")
			return nil
		}
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tTIME (UTC)\tPATH\tSIZE\tCAP\tERROR")
		for i, f := range fl {
			p := failedPath(f)
			if f.Record != "" {
				p = "(unreadable journal record)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i+1, f.Time.UTC().Format("2006-01-02 15:04:05"), printable(p),
				humanBytes(f.Size), printable(f.Cap), printable(f.Error))
		}
		return tw.Flush()
	},
}

var linksRelinkCmd = &cobra.Command{
	Use:   "relink [N...] [--all] [--to DIR]",
	Short: "Link failed links' files again (at DIR/NAME, or back at their path) and drop their lines",
	RunE: func(cmd *cobra.Command, args []string) error {
		state, err := linksState()
		if err != nil {
			return fmt.Errorf("links relink: %w", err)
		}
		fl, err := vdrive.ReadFailedLinks(state)
		if err != nil {
			return fmt.Errorf("links relink: %w", err)
		}
		pick, err := linksPick(args, len(fl))
		if err != nil {
			return fmt.Errorf("links relink: %w", err)
		}
		fsFlags.node = linksFlags.node
		dir, c, err := fsSetup("links relink")
		if err != nil {
			return err
		}
		var to *aliases.Arg
		if linksFlags.to != "" {
			a, err := gridArg(dir, linksFlags.to)
			if err != nil {
				return fmt.Errorf("links relink: --to: %w", err)
			}
			to = &a
		}
		roots := nodeRoots(dir)
		ctx, stop := cliContext()
		defer stop()
		out := cmd.OutOrStdout()
		done := map[int]bool{}
		var failed int
		for _, i := range pick {
			f := fl[i]
			if f.Cap == "" || f.Name == "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "links relink: #%d: an unreadable journal record, nothing to link (drop it: tarn links drop %d)\n", i+1, i+1)
				failed++
				continue
			}
			var root, p, shown string
			if to != nil {
				root, p = to.Root, path.Join(to.Path, f.Name)
				shown = strings.TrimSuffix(to.String(), "/") + "/" + f.Name
			} else {
				r, ok := roots[f.Root]
				if !ok || f.Path == "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "links relink: #%d %s: its root is not one of this node's aliases or account roots; give --to DIR\n", i+1, printable(failedPath(f)))
					failed++
					continue
				}
				root, p = r.cap, path.Join(f.Path, f.Name)
				shown = r.label + ":" + p
			}
			shown = printable(shown)
			if _, err := c.Link(ctx, root, p, f.Cap); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), fsError("links relink: #"+strconv.Itoa(i+1), shown, err))
				failed++
				continue
			}
			done[i] = true
			fmt.Fprintf(out, "#%d linked at %s\n", i+1, shown)
		}
		if len(done) > 0 {
			made := map[string]bool{}
			for i := range done {
				made[failedKey(fl[i])] = true
			}
			if _, err := vdrive.RemoveFailedLinks(state, func(_ int, f vdrive.FailedLink) bool { return made[failedKey(f)] }); err != nil {
				return fmt.Errorf("links relink: linked, but dropping their lines failed (drop them: tarn links drop): %w", err)
			}
		}
		if failed > 0 {
			return fmt.Errorf("links relink: %d of %d not linked", failed, len(pick))
		}
		return nil
	},
}

var linksDropCmd = &cobra.Command{
	Use:   "drop N...",
	Short: "Drop failed links' lines (after linking their files by hand)",
	Args:  cobra.MinimumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		state, err := linksState()
		if err != nil {
			return fmt.Errorf("links drop: %w", err)
		}
		fl, err := vdrive.ReadFailedLinks(state)
		if err != nil {
			return fmt.Errorf("links drop: %w", err)
		}
		pick, err := linksPick(args, len(fl))
		if err != nil {
			return fmt.Errorf("links drop: %w", err)
		}
		drop := map[string]bool{}
		for _, i := range pick {
			drop[failedKey(fl[i])] = true
		}
		n, err := vdrive.RemoveFailedLinks(state, func(_ int, f vdrive.FailedLink) bool { return drop[failedKey(f)] })
		if err != nil {
			return fmt.Errorf("links drop: %w", err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "dropped %d %s\n", n, plural(n, "line"))
		return nil
	},
}

func init() {
	for _, c := range []*cobra.Command{linksCmd, linksRelinkCmd, linksDropCmd} {
		c.Flags().StringVar(&linksFlags.node, "node", "", "client node folder (default $"+EnvNode+" or ~/.tarn)")
	}
	linksCmd.Flags().BoolVar(&linksFlags.json, "json", false, "one JSON object a line, as the file holds them")
	linksRelinkCmd.Flags().StringVar(&linksFlags.to, "to", "", "link each file in this grid directory (ALIAS:path or CAP:/path)")
	linksRelinkCmd.Flags().BoolVar(&linksFlags.all, "all", false, "every failed link")
	linksCmd.AddCommand(linksRelinkCmd, linksDropCmd)
	rootCmd.AddCommand(linksCmd)
}

// linksState is the client node's state folder, where the failed links are.
func linksState() (string, error) {
	dir, err := nodeDir(linksFlags.node)
	if err != nil {
		return "", err
	}
	p, err := conf.Load(dir)
	if err != nil {
		return "", err
	}
	return p.Node.StateDir, nil
}

// linksPick parses entry numbers (1-based, as listed) into indexes; --all
// picks every entry.
func linksPick(args []string, n int) ([]int, error) {
	if linksFlags.all {
		if len(args) > 0 {
			return nil, errors.New("give entry numbers or --all, not both")
		}
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	if len(args) == 0 {
		return nil, errors.New("give entry numbers (tarn links lists them) or --all")
	}
	seen := map[int]bool{}
	var out []int
	for _, a := range args {
		v, err := strconv.Atoi(a)
		if err != nil || v < 1 || v > n {
			return nil, fmt.Errorf("no entry %q: there are %d (tarn links lists them)", a, n)
		}
		if !seen[v-1] {
			seen[v-1] = true
			out = append(out, v-1)
		}
	}
	return out, nil
}

// printable is s, quoted when it holds a character a terminal would
// not show as itself (a name may hold newlines, tabs, escapes): one line
// per entry, and nothing from a name reaches the terminal as control.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// failedPath is where a failed link's file was written.
func failedPath(f vdrive.FailedLink) string {
	if f.Path == "" {
		return f.Name
	}
	return path.Join(f.Path, f.Name)
}

// failedKey tells a line from the others when the file changes under us.
func failedKey(f vdrive.FailedLink) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// nodeRoot is a root the node knows by its read cap: its write cap and
// how to name it.
type nodeRoot struct{ cap, label string }

// nodeRoots are the node's aliases and account root caps, by read cap.
func nodeRoots(dir string) map[string]nodeRoot {
	out := map[string]nodeRoot{}
	add := func(s, label string) {
		c, err := cap.Parse(strings.TrimSpace(s))
		if err != nil {
			return
		}
		if w, ok := c.(cap.DirWrite); ok {
			if _, dup := out[w.ReadCap().String()]; !dup {
				out[w.ReadCap().String()] = nodeRoot{cap: w.String(), label: label}
			}
		}
	}
	if list, err := aliases.Load(aliases.File(dir)); err == nil {
		for _, a := range list {
			add(a.Cap, a.Name)
		}
	}
	if p, err := conf.Load(dir); err == nil {
		for _, a := range p.Accounts {
			if a.RootCapFile == "" {
				continue
			}
			if b, err := os.ReadFile(a.RootCapFile); err == nil {
				add(string(b), "account "+a.Name)
			}
		}
	}
	return out
}
