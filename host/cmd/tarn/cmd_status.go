package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/node"
)

// EnvNode names the default node folder of the CLI.
const EnvNode = "TARN_NODE"

// nodeDir resolves the node folder: the flag, else $TARN_NODE, else ~/.tarn.
func nodeDir(flag string) (string, error) {
	if flag == "" {
		flag = os.Getenv(EnvNode)
	}
	if flag == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no node folder: use --node DIR or set %s (%v)", EnvNode, err)
		}
		flag = filepath.Join(home, ".tarn")
	}
	return filepath.Abs(flag)
}

// apiClient finds the running client node in dir and its API token.
func apiClient(flag string) (*api.Client, error) {
	return nodeClient(flag, true)
}

// nodeClient finds the running node in dir and its API token; with
// needClient, only a client node will do (the file routes are there).
func nodeClient(flag string, needClient bool) (*api.Client, error) {
	dir, err := nodeDir(flag)
	if err != nil {
		return nil, err
	}
	in, err := node.ReadInfo(dir)
	if err != nil {
		return nil, notRunning(dir, err)
	}
	if in.Pid > 0 && !processAlive(in.Pid) {
		return nil, fmt.Errorf("%s: %w (its node.json names pid %d, which is gone: it was killed; start it again)", dir, node.ErrNotRunning, in.Pid)
	}
	if needClient && !slices.Contains(in.Roles, "client") {
		return nil, fmt.Errorf("node %s runs no client (roles: %s): point --node at a client node", dir, strings.Join(in.Roles, ", "))
	}
	if in.APIURL == "" {
		return nil, fmt.Errorf("node %s serves no API (its node.json has no api_url: restart it with this tarn)", dir)
	}
	tok, err := node.ReadToken(in.TokenFile)
	if err != nil {
		return nil, err
	}
	return &api.Client{BaseURL: in.APIURL, Token: tok}, nil
}

// notRunning says more when a node folder has no node.json: that the
// folder does not exist, is a file, or holds no profile (a mistyped --node
// or TARN_NODE), rather than only that the node is not running.
func notRunning(dir string, err error) error {
	if !errors.Is(err, node.ErrNotRunning) {
		return err
	}
	st, serr := os.Stat(dir)
	switch {
	case errors.Is(serr, fs.ErrNotExist):
		return fmt.Errorf("no node folder %s (tarn init --profile ROLE %s makes one; --node or $%s names the folder)", dir, dir, EnvNode)
	case serr == nil && !st.IsDir():
		return fmt.Errorf("%s is not a node folder: give the folder holding %s", dir, conf.FileName)
	}
	if _, perr := os.Stat(filepath.Join(dir, conf.FileName)); errors.Is(perr, fs.ErrNotExist) {
		return fmt.Errorf("%w; %s has no %s either: is it a node folder?", err, dir, conf.FileName)
	}
	return err
}

// apiError makes a client error one clear line.
func apiError(op string, err error) error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return fmt.Errorf("%s: %s", op, ae.Msg)
	}
	return fmt.Errorf("%s: %w", op, err)
}

var statusFlags struct {
	node string
	json bool
}

var statusCmd = &cobra.Command{
	Use:   "status",
	Short: "Show a node's status: roles, plugins, servers, storage figures, rates",
	Long: `Print what the node's status page shows (GET /v1/status of its local API):
node id, roles, uptime, plugins with their health, the storage servers a
client or introducer knows, a storage server's figures, the last minute's
rates and recent operations. Works for any running node; --json prints the
API's JSON as is. The same page is served as HTML at the node's API URL
(node.json's api_url; ` + "`tarn dev`" + ` prints each node's).`,
	Example: `  tarn status --node /var/lib/tarn/client     # servers the client sees
  tarn status --node /var/lib/tarn/storage    # space, shares, plugins
  tarn status --json --node /var/lib/tarn/client | jq .servers_connected`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		c, err := nodeClient(statusFlags.node, false)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := c.Status(ctx)
		if err != nil {
			return apiError("status", err)
		}
		if statusFlags.json {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		printStatus(cmd.OutOrStdout(), st)
		printHints(cmd.OutOrStdout(), statusFlags.node, st)
		return nil
	},
}

func printStatus(out io.Writer, st *api.Status) {
	fmt.Fprintf(out, "node %s (%s), roles: %s, grid %q, %s, up %s\n", st.Name, st.NodeID,
		strings.Join(st.Roles, ", "), st.Grid, st.Version, time.Duration(st.Uptime*float64(time.Second)).Round(time.Second))
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	if st.Shares.N > 0 {
		fmt.Fprintf(out, "shares: k=%d h=%d n=%d\n", st.Shares.K, st.Shares.H, st.Shares.N)
	}
	if st.Shares.N > 0 || st.Introducer != nil {
		fmt.Fprintf(out, "storage servers: %d known, %d connected%s\n", st.Known, st.Conn, cachedNote(st))
	}
	printIntroducerLinks(out, st)
	if len(st.Servers) > 0 {
		fmt.Fprintln(tw, "  NAME\tNODE ID\tFREE\tLAST SEEN\tADDRESS")
		for _, s := range st.Servers {
			seen := "static"
			if !s.LastSeen.IsZero() {
				seen = time.Since(s.LastSeen).Round(time.Second).String() + " ago"
			}
			addr := s.Address
			if i := strings.IndexByte(addr, '@'); i >= 0 {
				addr = addr[i+1:]
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", s.Nickname, s.NodeID, s.FreeSpaceText(), seen, addr)
		}
	}
	tw.Flush()
	printSameNames(out, st.Servers)
	// Why a server is not usable is what an operator looks for next (a
	// pinned key that does not match, a refused dial, another grid).
	for _, s := range st.Servers {
		if !s.Connected && s.LastError != "" {
			name := s.Nickname
			if name == "" {
				name = s.NodeID
			}
			fmt.Fprintf(out, "  %s: not connected since %s: %s\n", name, s.LastFailure.Local().Format("15:04:05"), s.LastError)
		}
	}
	fmt.Fprintln(out, "plugins:")
	for _, p := range st.Plugins {
		fmt.Fprintf(tw, "  %s\t%s\t%s\tpid %d\t%s\trestarts %d", p.Kind, p.Name, p.Version, p.Pid, p.Health, p.Restarts)
		if p.LastErr != "" {
			fmt.Fprintf(tw, "\tlast error: %s", p.LastErr)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if s := st.Storage; s != nil {
		fmt.Fprintf(out, "storage: %s free of %s (%s reserved), %s, %d shares sealed since start, %d uploads open, %d aborted, %d corruption advisories (%d removed)\n",
			humanBytes(s.SpaceFree), humanBytes(s.SpaceTotal), humanBytes(s.Reserved), sharesHeld(s), s.SharesSealed, s.OpenUploads, s.UploadsAborted, s.CorruptionAdvice, s.CorruptRemoved)
		if s.HeldError != "" {
			fmt.Fprintf(out, "storage: shares held not counted: %s\n", s.HeldError)
		}
		if s.SpaceError != "" {
			fmt.Fprintf(out, "storage: free space unknown: %s\n", s.SpaceError)
		} else if s.SpaceTotal > 0 && s.SpaceFree <= s.Reserved {
			fmt.Fprintf(out, "storage: FULL: free space is at or below storage.reserved_space; new shares are refused until space is freed (or reserved_space is lowered and the node restarted)\n")
		}
	}
	if in := st.Introducer; in != nil {
		fmt.Fprintf(out, "introducer: %d announcements held, %d accepted\n", in.Held, in.Accepted)
	}
	if slices.Contains(st.Roles, "client") {
		c := st.Counters
		fmt.Fprintf(out, "api: %d uploads (%s in), %d downloads (%s out), %d failures\n",
			c.Uploads, humanBytes(c.BytesIn), c.Downloads, humanBytes(c.BytesOut), c.Failures)
	}
	if wb := st.WriteBehind; wb != nil {
		line := fmt.Sprintf("write-behind: %d links not yet made in %d folders", wb.Pending, wb.Folders)
		if wb.Pending > 0 {
			line += fmt.Sprintf(" (oldest %s)", (time.Duration(wb.OldestAge) * time.Second).String())
		}
		line += fmt.Sprintf(", %d folders failing", wb.Failing)
		if wb.Failing > 0 {
			line += fmt.Sprintf(" (%d links, retried until made)", wb.FailingLinks)
		}
		line += fmt.Sprintf(", %d failed links", wb.Failed)
		if wb.Failed > 0 {
			line += " (re-link them: tarn links)"
		}
		fmt.Fprintln(out, line)
	}
	if len(st.Rates) > 0 {
		names := make([]string, 0, len(st.Rates))
		for k := range st.Rates {
			names = append(names, k)
		}
		sort.Strings(names)
		var parts []string
		for _, k := range names {
			v := fmt.Sprintf("%.2f/s", st.Rates[k])
			if strings.Contains(k, "bytes") {
				v = humanBytes(int64(st.Rates[k])) + "/s"
			}
			parts = append(parts, k+" "+v)
		}
		fmt.Fprintf(out, "last %.0fs: %s\n", st.RatesOver, strings.Join(parts, ", "))
	}
	if len(st.Recent) > 0 {
		fmt.Fprintln(out, "recent operations:")
		for _, o := range st.Recent {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%.3fs\t%d", o.Time.Local().Format("15:04:05"), o.Op, o.Target, humanBytes(o.Bytes), o.Seconds, o.Status)
			if o.Error != "" {
				fmt.Fprintf(tw, "\t%s", o.Error)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func init() {
	f := statusCmd.Flags()
	f.StringVar(&statusFlags.node, "node", "", "node folder, of any role (default $TARN_NODE, then ~/.tarn)")
	f.BoolVar(&statusFlags.json, "json", false, "print the status as JSON")
	rootCmd.AddCommand(statusCmd)
}

// printHints adds what an operator should look at when the status shows a
// node that cannot work yet: a client that knows no storage server (its
// introducers unreachable, or none listed).
func printHints(out io.Writer, flag string, st *api.Status) {
	if !slices.Contains(st.Roles, "client") || st.Known > 0 {
		return
	}
	dir, err := nodeDir(flag)
	if err != nil {
		return
	}
	p, err := conf.Load(dir)
	if err != nil {
		return
	}
	switch {
	case len(p.Grid.Introducers) > 0:
		fmt.Fprintf(out, "hint: no storage server known yet: is the introducer reachable from here, and does it serve grid %q? (%s; the introducer lines above and the node's log say why)\n",
			p.Grid.Name, strings.Join(p.Grid.Introducers, ", "))
	case len(p.Grid.Servers) == 0 && !p.Introducer.Enabled:
		fmt.Fprintf(out, "hint: no storage server known: %s lists no grid.introducers and no grid.servers\n", p.File)
	}
}

// printSameNames notes servers that share a name (a node folder copied to
// another machine with its profile, or two nodes both named from a folder
// called "storage"): logs and this table name servers by it, so two of
// them look like one server seen twice.
func printSameNames(out io.Writer, servers []api.ServerStatus) {
	ids := map[string][]string{}
	var names []string
	for _, s := range servers {
		if s.Nickname == "" {
			continue
		}
		if len(ids[s.Nickname]) == 0 {
			names = append(names, s.Nickname)
		}
		ids[s.Nickname] = append(ids[s.Nickname], s.NodeID)
	}
	for _, n := range names {
		if len(ids[n]) > 1 {
			fmt.Fprintf(out, "  note: %d servers are named %q (%s): give each storage node its own node.name\n", len(ids[n]), n, strings.Join(ids[n], ", "))
		}
	}
}
