package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/host/aliases"
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/checker"
)

var checkFlags struct {
	node     string
	verify   bool
	repair   bool
	addLease bool
	json     bool
}

// errNotHealthy ends a check whose objects are not all healthy (exit 1).
var errNotHealthy = errors.New("not healthy")

var checkCmd = &cobra.Command{
	Use:   "check [--verify] [--repair] [--add-lease] [--json] CAP|PATH...",
	Short: "Check a file or directory: which shares exist, and with --verify every block",
	Long: `Check asks every storage server which shares of the file exist and reports
shares needed, found and good, the servers of happiness, and an outcome:
healthy, unhealthy, repaired or unrecoverable. --verify also reads and checks
every block of every share (a verify cap is enough) and names each corrupt
share and its server; the server is told, and removes a share it can prove
corrupt. --repair rebuilds missing or corrupt shares from K good ones and
places them to restore happiness (it implies --verify). --add-lease renews
this client's lease on every server holding a share.

CAP|PATH is a cap (tarn:chk:..., tarn:chk-verify:..., tarn:mut:..., tarn:dir:...)
or a path under an alias or directory cap (ALIAS:docs/report.pdf).
The exit status is 1 when something checked is not healthy or repaired.`,
	Args: cobra.MinimumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, c, err := checkSetup("check")
		if err != nil {
			return err
		}
		ctx, cancel := cliContext()
		defer cancel()
		out := cmd.OutOrStdout()
		bad := 0
		var reports []*checker.Report
		for _, s := range args {
			a, err := checkArg(dir, s)
			if err != nil {
				return fmt.Errorf("check: %w", err)
			}
			r, err := c.Check(ctx, checkRequest(a))
			if err != nil {
				return apiError("check "+a.String(), err)
			}
			r.Path = checkLabel(a) // as the user wrote it (the node knows only the path)
			if !r.Healthy() {
				bad++
			}
			if checkFlags.json {
				reports = append(reports, r)
				continue
			}
			printReport(out, r)
		}
		if checkFlags.json {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			var v any = reports
			if len(reports) == 1 {
				v = reports[0]
			}
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
		if bad > 0 {
			return fmt.Errorf("check: %d of %d %w", bad, len(args), errNotHealthy)
		}
		return nil
	},
}

var deepCheckCmd = &cobra.Command{
	Use:   "deep-check [--verify] [--repair] [--add-lease] [--json] [PATH...]",
	Short: "Check every file and directory under a directory (all aliases when no PATH)",
	Long: `Deep-check walks the tree under each PATH (an alias, ALIAS:path or a
directory cap), checks every directory and file as tarn check does, prints a
line per object as it goes, and ends with a summary: objects healthy,
unhealthy, repaired and unrecoverable. Without PATH it walks every alias, so
"tarn deep-check --add-lease" renews the leases of everything this client
can reach. --json prints one JSON object per line: {"report": ...} per
object, then {"summary": ...}.
The exit status is 1 when something is not healthy or repaired.`,
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, c, err := checkSetup("deep-check")
		if err != nil {
			return err
		}
		if len(args) == 0 {
			list, err := aliases.Load(aliases.File(dir))
			if err != nil {
				return fmt.Errorf("deep-check: %w", err)
			}
			for _, a := range list {
				args = append(args, a.Name+":")
			}
			if len(args) == 0 {
				return errors.New("deep-check: no PATH given and no aliases (tarn alias add NAME CAP)")
			}
		}
		ctx, cancel := cliContext()
		defer cancel()
		out := cmd.OutOrStdout()
		var total checker.Summary
		enc := json.NewEncoder(out)
		for _, s := range args {
			a, err := checkArg(dir, s)
			if err != nil {
				return fmt.Errorf("deep-check: %w", err)
			}
			prefix := strings.TrimSuffix(a.String(), a.Path)
			if a.Alias == "" {
				prefix = ""
			}
			sum, err := c.DeepCheck(ctx, checkRequest(a), func(r *checker.Report) {
				if checkFlags.json {
					enc.Encode(api.DeepCheckLine{Report: r})
					return
				}
				fmt.Fprintf(out, "%-13s %s%s%s\n", r.Outcome, prefix, strings.TrimPrefix(r.Path, "/"), brief(r))
			})
			if err != nil {
				return apiError("deep-check "+a.String(), err)
			}
			addSummary(&total, sum)
		}
		if checkFlags.json {
			enc.Encode(api.DeepCheckLine{Summary: &total})
		} else {
			fmt.Fprintf(out, "\n%d objects (%d directories, %d files): %d healthy, %d unhealthy, %d repaired, %d unrecoverable\n",
				total.Objects, total.Directories, total.Files, total.Healthy, total.Unhealthy, total.Repaired, total.Unrecoverable)
		}
		if bad := total.Unhealthy + total.Unrecoverable; bad > 0 {
			return fmt.Errorf("deep-check: %d of %d objects %w", bad, total.Objects, errNotHealthy)
		}
		return nil
	},
}

func checkSetup(op string) (string, *api.Client, error) {
	if checkFlags.repair {
		checkFlags.verify = true
	}
	dir, err := nodeDir(checkFlags.node)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", op, err)
	}
	c, err := apiClient(checkFlags.node)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", op, err)
	}
	return dir, c, nil
}

// checkArg parses CAP, ALIAS:path or DIRCAP/path.
func checkArg(dir, s string) (aliases.Arg, error) {
	a, err := parseArg(dir, s)
	if err != nil {
		return a, err
	}
	if !a.IsGrid() {
		return a, fmt.Errorf("%s is not a cap or grid path: write a cap, ALIAS:path or DIRCAP/path", s)
	}
	return a, nil
}

// checkLabel names what a check is about: ALIAS:path, DIRCAP…:/path, or
// a bare cap (shortened) without the meaningless ":/" of its root.
func checkLabel(a aliases.Arg) string {
	s := a.String()
	if a.Alias == "" && strings.Trim(a.Path, "/") == "" {
		s = strings.TrimSuffix(s, ":"+a.Path)
	}
	return s
}

func checkRequest(a aliases.Arg) api.CheckRequest {
	return api.CheckRequest{Root: a.Root, Path: a.Path, Verify: checkFlags.verify, Repair: checkFlags.repair, AddLease: checkFlags.addLease}
}

func addSummary(t *checker.Summary, s *checker.Summary) {
	t.Objects += s.Objects
	t.Files += s.Files
	t.Directories += s.Directories
	t.Healthy += s.Healthy
	t.Unhealthy += s.Unhealthy
	t.Repaired += s.Repaired
	t.Unrecoverable += s.Unrecoverable
	t.Errors += s.Errors
}

// brief is the short tail of a deep-check line.
func brief(r *checker.Report) string {
	if r.Kind == "lit" {
		return ""
	}
	s := fmt.Sprintf("  (%s: %d/%d good, happiness %d/%d", r.Kind, r.Good, r.Total, r.Happiness, r.HappinessWanted)
	if n := len(r.Corrupt); n > 0 {
		s += fmt.Sprintf(", %d corrupt", n)
	}
	if r.Repair != nil {
		s += fmt.Sprintf(", after repair %d/%d good, happiness %d", r.Repair.GoodAfter, r.Total, r.Repair.HappinessAfter)
	}
	if r.LeasesRenewed > 0 {
		s += fmt.Sprintf(", %d leases renewed", r.LeasesRenewed)
	}
	return s + ")"
}

// printReport writes a check report for people.
func printReport(w io.Writer, r *checker.Report) {
	fmt.Fprintf(w, "%s: %s\n", r.Path, r.Outcome)
	if r.Kind == "lit" {
		fmt.Fprintln(w, "  a literal file: its bytes are in the cap, nothing is stored")
		return
	}
	fmt.Fprintf(w, "  kind: %s", r.Kind)
	if r.Version > 0 {
		fmt.Fprintf(w, " (version %d)", r.Version)
	}
	fmt.Fprintf(w, "\n  verify cap: %s\n", r.Cap)
	verified := "listed"
	if r.Verified {
		verified = "verified"
	}
	fmt.Fprintf(w, "  shares: %d needed, %d total, %d found, %d good (%s)\n", r.Needed, r.Total, r.Found, r.Good, verified)
	if len(r.Missing) > 0 {
		fmt.Fprintf(w, "  missing: %s\n", ints(r.Missing))
	}
	fmt.Fprintf(w, "  happiness: %d (wanted %d), good shares on %d servers\n", r.Happiness, r.HappinessWanted, r.Servers)
	for _, c := range r.Corrupt {
		extra := ""
		if c.Removed {
			extra = " (removed by its server)"
		}
		fmt.Fprintf(w, "  %s: share %d on %s: %s%s\n", c.State, c.Share, c.Server, c.Problem, extra)
	}
	for _, u := range r.Unreachable {
		fmt.Fprintf(w, "  unreachable: %s\n", u)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	if r.LeasesRenewed > 0 {
		fmt.Fprintf(w, "  leases renewed on %d servers\n", r.LeasesRenewed)
	}
	if rp := r.Repair; rp != nil {
		if len(rp.Rebuilt) > 0 {
			fmt.Fprintf(w, "  repair: rebuilt shares %s\n", ints(rp.Rebuilt))
		}
		if len(rp.Copied) > 0 {
			fmt.Fprintf(w, "  repair: copied shares %s\n", ints(rp.Copied))
		}
		for _, p := range rp.Placed {
			fmt.Fprintf(w, "  repair: share %d -> %s\n", p.Share, p.Server)
		}
		for _, e := range rp.Errors {
			fmt.Fprintf(w, "  repair error: %s\n", e)
		}
		fmt.Fprintf(w, "  after repair: %d good, happiness %d\n", rp.GoodAfter, rp.HappinessAfter)
	}
	for _, ch := range r.Children {
		if ch.Path == "" {
			ch.Path = r.Path + " (chunk)"
		}
		printReport(w, ch)
	}
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, " ")
}

func init() {
	for _, c := range []*cobra.Command{checkCmd, deepCheckCmd} {
		f := c.Flags()
		f.StringVar(&checkFlags.node, "node", "", "client node folder (default $TARN_NODE, then ~/.tarn)")
		f.BoolVar(&checkFlags.verify, "verify", false, "read and check every block of every share")
		f.BoolVar(&checkFlags.repair, "repair", false, "rebuild and place missing or corrupt shares (implies --verify)")
		f.BoolVar(&checkFlags.addLease, "add-lease", false, "renew this client's lease on every server holding a share")
		f.BoolVar(&checkFlags.json, "json", false, "print JSON")
		rootCmd.AddCommand(c)
	}
}
