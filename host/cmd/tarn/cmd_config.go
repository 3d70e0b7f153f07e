package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/pluginhost"
)

// tarn config check: everything a node would refuse at start, without
// starting it — the profile's own mistakes (conf.Load) and then the files it
// names: the node key, the secrets, plugin binaries and their pins, TLS
// files, account root caps.

var configCmd = &cobra.Command{
	Use:   "config",
	Short: "Check node profiles",
}

var configCheckCmd = &cobra.Command{
	Use:   "check [DIR]",
	Short: "Validate a node's profile and the files it names, without starting the node",
	Long: `Load DIR/tarn.toml (DIR defaults to $TARN_NODE, then ~/.tarn), check it and the
files it names, and print "DIR/tarn.toml: ok (roles: ...)" or every problem as
FILE:LINE: KEY: what is wrong, exiting non-zero.`,
	Example: `  tarn config check /var/lib/tarn/storage
  tarn config check /var/lib/tarn/storage && systemctl restart tarn-storage`,
	Args: cobra.MaximumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		dir, err := nodeDirFor(cmd, args)
		if err != nil {
			return err
		}
		return runConfigCheck(cmd.OutOrStdout(), cmd.ErrOrStderr(), dir)
	},
}

func init() {
	addNodeFlag(configCheckCmd)
	configCmd.AddCommand(configCheckCmd)
	rootCmd.AddCommand(configCmd)
}

// dirFlags holds the --node flag of the commands that take the node folder
// as an argument (run, config check, plugin list): the other commands
// spell it --node, and operators type it for these too.
var dirFlags = map[*cobra.Command]*string{}

// addNodeFlag gives c a --node flag, the same as its DIR argument.
func addNodeFlag(c *cobra.Command) {
	s := new(string)
	c.Flags().StringVar(s, "node", "", "node folder (the same as the DIR argument)")
	dirFlags[c] = s
}

// nodeDirFor is the node folder of c: its DIR argument or --node (not two
// different ones), else $TARN_NODE, else ~/.tarn.
func nodeDirFor(c *cobra.Command, args []string) (string, error) {
	if f := dirFlags[c]; f != nil && *f != "" {
		if len(args) > 0 && filepath.Clean(args[0]) != filepath.Clean(*f) {
			return "", fmt.Errorf("%s: two node folders: DIR %s and --node %s", cmdName(c), args[0], *f)
		}
		return *f, nil
	}
	return nodeDirArg(args)
}

// nodeDirArg is the node folder named on the command line, or $TARN_NODE,
// or ~/.tarn.
func nodeDirArg(args []string) (string, error) {
	if len(args) > 0 {
		return args[0], nil
	}
	if d := os.Getenv("TARN_NODE"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no node folder given and no home folder: %w", err)
	}
	return filepath.Join(home, ".tarn"), nil
}

func runConfigCheck(out, errOut io.Writer, dir string) error {
	p, err := conf.Load(dir)
	var list conf.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(errOut, e)
		}
		return fmt.Errorf("config check: %s: %d %s", list[0].File, len(list), plural(len(list), "problem"))
	}
	if err != nil {
		return fmt.Errorf("config check: %w", err)
	}
	problems, notes := checkFiles(p)
	if runningNode(p.Dir) == nil {
		notes = append(notes, probeListens(p)...)
		conf.ErrorList(notes).Sort()
	}
	for _, w := range append(p.Warnings(), notes...) {
		fmt.Fprintf(errOut, "warning: %v\n", w)
	}
	if len(problems) > 0 {
		for _, e := range problems {
			fmt.Fprintln(errOut, e)
		}
		return fmt.Errorf("config check: %s: %d %s", p.File, len(problems), plural(len(problems), "problem"))
	}
	fmt.Fprintf(out, "%s: ok (roles: %s)\n", p.File, strings.Join(p.Roles(), ", "))
	printNodeURLs(out, p)
	return nil
}

// printNodeURLs prints the URLs other nodes' profiles name this node by
// (grid.introducers, grid.servers), as the node will announce them.
func printNodeURLs(out io.Writer, p *conf.Profile) {
	id, err := identity.Load(p.Node.StateDir)
	if err != nil {
		return // checkFiles reported it
	}
	for _, r := range []struct {
		on               bool
		what             string
		announce, listen []string
		key              string
	}{
		{p.Introducer.Enabled, "introducer url", p.Introducer.Announce, p.Introducer.Listen, "grid.introducers"},
		{p.Storage.Enabled, "storage url", p.Storage.Announce, p.Storage.Listen, "grid.servers"},
	} {
		if !r.on {
			continue
		}
		u := nodelink.Addr{KeyHash: id.KeyHash(), Transports: conf.Announced(r.announce, r.listen)}.String()
		note := ""
		if strings.Contains(u, ":0,") || strings.HasSuffix(u, ":0") {
			note = "; port 0 is chosen at start, see tarn status"
		}
		fmt.Fprintf(out, "%s: %s (for other nodes' %s%s)\n", r.what, u, r.key, note)
	}
}

// checkFiles opens what the profile names, as the node would at start. It
// returns what the node would refuse, and warnings: what the node makes
// itself at start (an account's missing root cap file) but an operator may
// not mean.
func checkFiles(p *conf.Profile) (errs, warnings []*conf.Error) {
	add := func(key string, err error) {
		if err != nil {
			errs = append(errs, p.Errorf(key, "%v", err))
		}
	}
	_, err := identity.Load(p.Node.StateDir)
	add("node.state_dir", err)
	_, err = identity.LoadSecret(p.Grid.SecretFile)
	add("grid.secret_file", err)
	if p.Client.Enabled && p.Client.Convergence == "secret" {
		_, err = identity.LoadSecret(p.Client.ConvergenceSecretFile)
		add("client.convergence_secret_file", err)
	}
	for kind, pl := range map[string]*conf.Plugin{"codec": &p.Plugins.Codec, "storage": &p.Plugins.Storage, "transport": &p.Plugins.Transport} {
		if pl.Path != "" {
			add("plugins."+kind+".path", checkPlugin(pl))
		}
	}
	for i, w := range p.WebDAV {
		for key, path := range map[string]string{"tls_cert": w.TLSCert, "tls_key": w.TLSKey} {
			if path != "" {
				_, err := os.Stat(path)
				add(fmt.Sprintf("webdav[%d].%s", i, key), err)
			}
		}
	}
	for i, a := range p.Accounts {
		if a.RootCapFile == "" {
			continue
		}
		key := fmt.Sprintf("accounts[%d].root_cap_file", i)
		st, err := os.Stat(a.RootCapFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// The node makes a new empty root there at start (docs/webdav.md):
			// not a mistake, but a typo in the path would hide the account's
			// files behind an empty drive, so say so.
			if _, derr := os.Stat(filepath.Dir(a.RootCapFile)); derr != nil {
				add(key, fmt.Errorf("%s: its folder is missing: %w", a.RootCapFile, derr))
				break
			}
			warnings = append(warnings, p.Errorf(key, "%s does not exist: the node makes a new, empty root directory for account %q at start and writes its cap there", a.RootCapFile, a.Name))
		case err != nil:
			add(key, err)
		case st.IsDir():
			add(key, fmt.Errorf("%s is a folder: want a file holding the account's root cap", a.RootCapFile))
		}
	}
	if w := checkReserved(p); w != nil {
		warnings = append(warnings, w)
	}
	// Sorted by line, as conf.Load's own errors are.
	conf.ErrorList(errs).Sort()
	conf.ErrorList(warnings).Sort()
	return errs, warnings
}

// checkPlugin checks that an external plugin is an executable file and,
// when pinned, that its SHA-256 matches.
func checkPlugin(pl *conf.Plugin) error {
	st, err := os.Stat(pl.Path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || !pluginhost.Executable(pl.Path, st) {
		return fmt.Errorf("%s is not an executable file", pl.Path)
	}
	if pl.SHA256 == "" {
		return nil
	}
	f, err := os.Open(pl.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hash %s: %w", pl.Path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != pl.SHA256 {
		return fmt.Errorf("%s has sha256 %s, the profile pins %s", pl.Path, got, pl.SHA256)
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// checkReserved warns when a storage server's reserved space leaves it no
// room on the disk that holds its shares: the node starts, announces
// itself, and refuses every share (docs/operations.md), which is easy to
// miss from a client. Only for the built-in disk backend, whose folder is
// known here.
func checkReserved(p *conf.Profile) *conf.Error {
	if !p.Storage.Enabled || p.Plugins.Storage.Name != "disk" || p.Storage.ReservedSpace <= 0 {
		return nil
	}
	dir := filepath.Join(p.Node.StateDir, "shares")
	if s, ok := p.Plugins.Storage.Config["path"].(string); ok && s != "" {
		dir = s
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(p.Node.StateDir, dir)
		}
	}
	// The folder may not exist before the first start: ask its nearest
	// existing parent, which is on the same disk unless a mount intervenes.
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	total, free, err := diskSpace(dir)
	if err != nil {
		return nil
	}
	switch reserved := p.Storage.ReservedSpace; {
	case reserved >= total:
		return p.Errorf("storage.reserved_space", "%s is more than the whole disk holding %s (%s): this server will refuse every share", humanBytes(int64(reserved)), dir, humanBytes(int64(total)))
	case reserved >= free:
		return p.Errorf("storage.reserved_space", "the disk holding %s has %s free, no more than the %s reserved: this server refuses new shares until space is freed", dir, humanBytes(int64(free)), humanBytes(int64(reserved)))
	}
	return nil
}
