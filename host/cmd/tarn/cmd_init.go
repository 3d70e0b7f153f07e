package main

import (
	"errors"
	"fmt"
	"github.com/tarnfs/tarn/host/atomicfile"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/identity"
)

// tarn init: a new node folder with a commented profile, the node's key
// and its secrets. It never replaces a profile, a key or a secret; run it
// again on a folder whose tarn.toml was removed and it keeps the key and
// the secrets already there.

var initFlags struct {
	profile     string
	gridSecret  string
	introducers []string
	name        string
}

var initCmd = &cobra.Command{
	Use:   "init --profile introducer|storage|client|all [--grid-secret FILE] [--introducer URL]... DIR",
	Short: "Write a new node folder: a commented profile, the node key and its secrets",
	Long: `Write DIR/tarn.toml, a commented profile for the role, with the node's key
(DIR/private/node.key) and secrets (DIR/private/grid.secret and, for a
client, DIR/private/convergence.secret), all mode 0600.

To join an existing grid, pass the grid's secret file (--grid-secret) and its
introducer's node URL (--introducer), both from the introducer's node.`,
	Example: `  # the introducer, on its own machine
  tarn init --profile introducer --name intro /var/lib/tarn/introducer
  # a storage server joining its grid (secret and URL from the introducer)
  tarn init --profile storage --name storage-1 --grid-secret grid.secret \
      --introducer 'tarn://KEYHASH@tcp:intro.example.net:3458' /var/lib/tarn/storage`,
	Args: cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		return runInit(cmd.OutOrStdout(), args[0])
	},
}

func init() {
	f := initCmd.Flags()
	f.StringVar(&initFlags.profile, "profile", "", "role of the node: introducer, storage, client or all")
	f.StringVar(&initFlags.gridSecret, "grid-secret", "", "copy this grid secret file into the node (default: make a new grid secret)")
	f.StringArrayVar(&initFlags.introducers, "introducer", nil, "node URL of an introducer (tarn://KEYHASH@tcp:HOST:PORT); repeatable")
	f.StringVar(&initFlags.name, "name", "", "node name (default: the folder's name)")
	rootCmd.AddCommand(initCmd)
}

func runInit(out io.Writer, dir string) error {
	role := initFlags.profile
	if role == "" {
		return fmt.Errorf("init: --profile is required: introducer, storage, client or all")
	}
	if !oneOfStrings(role, conf.TemplateRoles) {
		return fmt.Errorf("init: unknown profile %q: want introducer, storage, client or all", role)
	}
	for i, u := range initFlags.introducers {
		// Pasted from node.json or a terminal, a URL may carry a space or
		// a newline at its ends.
		u = strings.TrimSpace(u)
		initFlags.introducers[i] = u
		if err := conf.CheckNodeURL(u); err != nil {
			return fmt.Errorf("init: --introducer: %w", err)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	profile := filepath.Join(abs, conf.FileName)
	if st, err := os.Stat(profile); err == nil && st.Size() > 0 {
		return fmt.Errorf("init: %s already exists and is not empty: refusing to overwrite it", profile)
	}
	var gridSecret []byte
	if initFlags.gridSecret != "" {
		raw, err := os.ReadFile(initFlags.gridSecret)
		if err != nil {
			return fmt.Errorf("init: --grid-secret: %w", err)
		}
		if gridSecret, err = identity.ParseSecret(raw); err != nil {
			return fmt.Errorf("init: --grid-secret %s: %w", initFlags.gridSecret, err)
		}
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return fmt.Errorf("init: %w", err)
	}

	// The key and secrets first, the profile last: a profile on disk means
	// the node folder is complete.
	id, keptKey, err := createOrKeep(abs)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	gridPath := filepath.Join(abs, identity.PrivateDir, "grid.secret")
	newGrid, err := ensureSecret(gridPath, gridSecret)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if role == "client" || role == "all" {
		if _, err := ensureSecret(filepath.Join(abs, identity.PrivateDir, "convergence.secret"), nil); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}

	name := initFlags.name
	if name == "" {
		name = filepath.Base(abs)
	}
	intros := initFlags.introducers
	selfURL := ""
	switch role {
	case "all":
		selfURL = "tarn://" + id.KeyHash() + "@tcp:127.0.0.1:3458"
		if len(intros) == 0 {
			intros = []string{selfURL}
		}
	case "introducer":
		host, _ := os.Hostname()
		if host == "" {
			host = "HOST"
		}
		selfURL = "tarn://" + id.KeyHash() + "@tcp:" + host + ":3458"
	}
	text, err := conf.Commented(conf.Template{Role: role, Name: name, Introducers: intros})
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := atomicfile.WriteFile(profile, text, 0o644); err != nil {
		return fmt.Errorf("init: write %s: %w", profile, err)
	}
	p, err := conf.Load(profile)
	if err != nil {
		// A bug in the template, not the operator's mistake.
		return fmt.Errorf("init: the written profile does not load: %w", err)
	}

	fmt.Fprintf(out, "wrote %s (roles: %s)\n", profile, strings.Join(p.Roles(), ", "))
	kept := ""
	if keptKey {
		kept = " (kept the existing key)"
	}
	fmt.Fprintf(out, "node id:  %s%s\nkey hash: %s\n", id.NodeID(), kept, id.KeyHash())
	switch role {
	case "introducer":
		fmt.Fprintf(out, "introducer url: %s\n  (set introducer.announce to the address others dial; give the URL to other nodes: tarn init --introducer URL)\n", selfURL)
	case "all":
		fmt.Fprintf(out, "introducer url: %s\n", selfURL)
	}
	switch {
	case gridSecret != nil && newGrid:
		fmt.Fprintf(out, "copied the grid secret of %s into %s\n", initFlags.gridSecret, gridPath)
	case gridSecret != nil:
		fmt.Fprintf(out, "kept the grid secret in %s (the same as %s)\n", gridPath, initFlags.gridSecret)
	case newGrid && role != "introducer" && role != "all":
		// A storage server or client on a grid of its own is rarely meant.
		fmt.Fprintf(out, "made a new grid secret in %s: to join an existing grid, use --grid-secret with that grid's secret file\n", gridPath)
	}
	if (role == "storage" || role == "client") && len(intros) == 0 {
		fmt.Fprintf(out, "no introducer given: set grid.introducers (or grid.servers) in %s\n", profile)
	}
	return nil
}

// createOrKeep creates the node key, or loads the one already there.
func createOrKeep(dir string) (*identity.Identity, bool, error) {
	id, err := identity.Create(dir)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, identity.ErrExist) {
		return nil, false, err
	}
	id, err = identity.Load(dir)
	return id, true, err
}

// ensureSecret writes want (or a new random secret when want is nil) to
// path unless a secret is there already; an existing secret that differs
// from want is an error, never replaced. It reports whether it wrote.
func ensureSecret(path string, want []byte) (bool, error) {
	have, err := identity.LoadSecret(path)
	switch {
	case err == nil:
		if want != nil && string(have) != string(want) {
			return false, fmt.Errorf("%s holds another secret: refusing to replace it", path)
		}
		return false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return false, err
	case want != nil:
		return true, identity.WriteSecret(path, want)
	default:
		_, err := identity.CreateSecret(path)
		return true, err
	}
}

func oneOfStrings(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}
