package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/node"
	"github.com/tarnfs/tarn/host/pluginhost"
	"github.com/tarnfs/tarn/plugins/builtin"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/transport"
)

// tarn plugin: the plugin mode of the binary (serve, run by a host) and a
// look at a node's plugins (list). tarn version also lives here, since it
// reports the plugin protocol versions this binary speaks.

var pluginCmd = &cobra.Command{
	Use:   "plugin",
	Short: "Inspect a node's plugins",
}

var pluginServeCmd = &cobra.Command{
	Use:    "serve KIND NAME",
	Short:  "Serve a built-in plugin (run by a tarn node, not by hand)",
	Hidden: true,
	Args:   cobra.ExactArgs(2),
	RunE: func(cmd *cobra.Command, args []string) error {
		return runPluginServe(args[0], args[1])
	},
}

var pluginListJSON bool

var pluginListCmd = &cobra.Command{
	Use:   "list [DIR]",
	Short: "Start a node's plugins, show kind, name, version, pid and health, and stop them",
	Long: `Load DIR/tarn.toml (DIR defaults to $TARN_NODE, then ~/.tarn), start the plugin
the profile names for each kind its roles use (codec: client, storage: storage,
transport: always), show what each
says of itself, and stop them. External plugins also show their path and
pinned sha256. Exits non-zero when a plugin cannot be started.`,
	Args: cobra.MaximumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, err := nodeDirFor(cmd, args)
		if err != nil {
			return err
		}
		return runPluginList(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), dir, pluginListJSON)
	},
}

var versionCmd = &cobra.Command{
	Use:   "version",
	Short: "Print tarn's version, commit and the plugin protocol versions it speaks",
	Args:  cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		fmt.Fprintln(cmd.OutOrStdout(), versionLine())
		return nil
	},
}

func init() {
	pluginListCmd.Flags().BoolVar(&pluginListJSON, "json", false, "print JSON instead of a table")
	addNodeFlag(pluginListCmd)
	pluginCmd.AddCommand(pluginServeCmd, pluginListCmd)
	rootCmd.AddCommand(pluginCmd, versionCmd)
}

// runPluginServe serves a built-in plugin. go-plugin itself refuses to run
// without its magic cookie, but with a paragraph meant for plugin authors;
// a person who typed the command gets one line instead.
func runPluginServe(kind, name string) error {
	if os.Getenv(pluginkit.MagicCookieKey) != pluginkit.MagicCookieValue {
		return fmt.Errorf("plugin serve: only a tarn node runs this (it speaks the plugin protocol on stdout); see `tarn plugin list DIR`")
	}
	e, ok := builtin.Lookup(pluginkit.Kind(kind), name)
	if !ok {
		var names []string
		for _, e := range builtin.All {
			names = append(names, string(e.Kind)+" "+e.Name)
		}
		return fmt.Errorf("plugin serve: no built-in %s plugin %q (built in: %s)", kind, name, strings.Join(names, ", "))
	}
	e.Serve()
	return nil
}

// pluginRow is one line of tarn plugin list: a status, or why it failed.
type pluginRow struct {
	pluginhost.Status
	Error string `json:"error,omitempty"`
}

func runPluginList(ctx context.Context, out, errOut io.Writer, dir string, asJSON bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	p, err := conf.Load(dir)
	if err != nil {
		var list conf.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(errOut, e)
			}
			return fmt.Errorf("plugin list: %s: profile has %d %s", list[0].File, len(list), plural(len(list), "problem"))
		}
		return fmt.Errorf("plugin list: %w", err)
	}
	// Only the plugins the node's roles run: a storage plugin started for a
	// client would create its shares folder.
	specs, err := node.PluginSpecs(p)
	if err != nil {
		return fmt.Errorf("plugin list: %s: %w", p.File, err)
	}
	// A running node's own plugins are what an operator asks about.
	if in := runningNode(p.Dir); in != nil {
		rows, err := runningPlugins(ctx, in, specs)
		if err != nil {
			return fmt.Errorf("plugin list: %w", err)
		}
		if asJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(rows)
		}
		writePluginTable(out, rows)
		return nil
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "tarn", Level: hclog.Warn, Output: errOut})
	var rows []pluginRow
	failed := 0
	// One host per plugin, so that one broken plugin does not hide the others.
	for _, s := range specs {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		h, err := pluginhost.New(sctx, pluginhost.Options{Logger: logger}, s)
		cancel()
		if err != nil {
			failed++
			row := pluginRow{Status: pluginhost.Status{Kind: s.Kind, Name: s.DisplayName(), Path: s.Path, Health: "failed"}, Error: err.Error()}
			if len(s.SHA256) > 0 {
				row.SHA256 = fmt.Sprintf("%x", s.SHA256)
			}
			rows = append(rows, row)
			continue
		}
		for _, st := range h.List() {
			rows = append(rows, pluginRow{Status: st})
		}
		h.Close()
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return err
		}
	} else {
		writePluginTable(out, rows)
	}
	if failed > 0 {
		if !asJSON {
			for _, r := range rows {
				if r.Error != "" {
					fmt.Fprintf(errOut, "%s\n", r.Error)
				}
			}
		}
		return fmt.Errorf("plugin list: %d of %d %s could not start", failed, len(rows), plural(len(rows), "plugin"))
	}
	return nil
}

func writePluginTable(out io.Writer, rows []pluginRow) {
	external := false
	for _, r := range rows {
		external = external || r.Path != ""
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	head := "KIND\tNAME\tVERSION\tPROTOCOL\tPID\tHEALTH"
	if external {
		head += "\tPATH\tSHA256"
	}
	fmt.Fprintln(tw, head)
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, r := range rows {
		pid := "-"
		if r.Pid > 0 && r.Health == "ok" {
			pid = fmt.Sprint(r.Pid)
		}
		line := fmt.Sprintf("%s\t%s\t%s\tv%d\t%s\t%s", r.Kind, r.Name, dash(r.Version), protocolOf(r.Kind), pid, r.Health)
		if external {
			line += fmt.Sprintf("\t%s\t%s", dash(r.Path), dash(r.SHA256))
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

func protocolOf(k pluginkit.Kind) uint {
	switch k {
	case pluginkit.KindCodec:
		return codec.ProtocolVersion
	case pluginkit.KindStorage:
		return storage.ProtocolVersion
	case pluginkit.KindTransport:
		return transport.ProtocolVersion
	}
	return 0
}

// version and commit are set by the Makefile with -ldflags -X; a plain
// `go build` or `go install` falls back to what the Go toolchain recorded.
var version, commit string

func versionLine() string {
	v, c, modified := version, commit, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true" && commit == ""
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if len(c) > 12 {
		c = c[:12]
	}
	if c == "" {
		c = "unknown"
	}
	if modified {
		c += "+modified"
	}
	return fmt.Sprintf("tarn %s (commit %s, %s, %s/%s; plugin protocols: codec v%d, storage v%d, transport v%d)",
		v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH,
		codec.ProtocolVersion, storage.ProtocolVersion, transport.ProtocolVersion)
}
