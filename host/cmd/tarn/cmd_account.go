package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tarnfs/tarn/host/atomicfile"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/accounts"
	"github.com/tarnfs/tarn/host/aliases"
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/node"
)

var accountFlags struct {
	node          string
	passwordStdin bool
	genPassword   bool
	root          string
	newRoot       bool
	readOnly      bool
	sshKeys       []string
	json          bool
}

var accountCmd = &cobra.Command{
	Use:   "account",
	Short: "Manage the accounts the WebDAV and SFTP frontends let in",
	Long: `Accounts live in the client node's profile ([[accounts]] in tarn.toml):
a name, a password hash and/or SSH public keys, a root directory cap (kept
in a 0600 file under private/accounts/, named by root_cap_file) and a
read-only flag. Restart the node for its frontends to see a change.`,
}

// accountCapDir is where account root caps are kept.
func accountCapDir(nodeDir string) string { return filepath.Join(nodeDir, "private", "accounts") }

// loadProfile loads the node's profile for an account change.
func loadProfile(op string) (*conf.Profile, error) {
	dir, err := nodeDir(accountFlags.node)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	p, err := conf.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return p, nil
}

// randomPassword is 24 characters from a 56-letter alphabet without
// look-alikes (about 139 bits).
func randomPassword() (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

// readPassword takes the first line of r.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("empty password on standard input")
	}
	return pw, nil
}

// readKeys reads OpenSSH public key lines from a file (comments and blank
// lines skipped).
func readKeys(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			return nil, fmt.Errorf("%s line %d: not an OpenSSH public key: %w", file, i+1, err)
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no public key", file)
	}
	return out, nil
}

// writeSecretFile writes b to path, 0600, atomically, making the folder
// 0700.
func writeSecretFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}

var accountAddCmd = &cobra.Command{
	Use:   "add NAME",
	Short: "Add an account (with a new root directory unless --root is given)",
	Long: `Add the account NAME to the client node's profile. Logins: a password
(--password-from-stdin, or --generate-password which prints it once) and/or
SSH public keys (--ssh-key FILE, repeatable). The root is --root CAP (a
directory cap, or ALIAS: for an alias's directory) or, by default, a new
empty directory made on the grid (the node must be running). --read-only
keeps only the root's read cap.`,
	Args: cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		name := args[0]
		f := accountFlags
		p, err := loadProfile("account add")
		if err != nil {
			return err
		}
		if _, ok := p.Account(name); ok {
			return fmt.Errorf("account add: account %q exists already (tarn account rm %s first)", name, name)
		}
		if f.passwordStdin && f.genPassword {
			return errors.New("account add: give --password-from-stdin or --generate-password, not both")
		}
		if f.root != "" && f.newRoot {
			return errors.New("account add: give --root or --new-root, not both")
		}
		acct := conf.Account{Name: name, ReadOnly: f.readOnly}
		var password string
		switch {
		case f.passwordStdin:
			if password, err = readPassword(cmd.InOrStdin()); err != nil {
				return fmt.Errorf("account add: %w", err)
			}
		case f.genPassword:
			if password, err = randomPassword(); err != nil {
				return fmt.Errorf("account add: %w", err)
			}
		}
		if password != "" {
			if acct.PasswordHash, err = accounts.HashPassword(password); err != nil {
				return fmt.Errorf("account add: %w", err)
			}
		}
		for _, k := range f.sshKeys {
			keys, err := readKeys(k)
			if err != nil {
				return fmt.Errorf("account add: --ssh-key: %w", err)
			}
			acct.AuthorizedKeys = append(acct.AuthorizedKeys, keys...)
		}
		if acct.PasswordHash == "" && len(acct.AuthorizedKeys) == 0 {
			return errors.New("account add: nobody could log in: give --password-from-stdin, --generate-password or --ssh-key FILE")
		}
		root, err := accountRoot(p.Dir, f.root)
		if err != nil {
			return fmt.Errorf("account add: %w", err)
		}
		if f.readOnly {
			c, _ := cap.Parse(root)
			rc, err := cap.ReadOnly(c)
			if err != nil {
				return fmt.Errorf("account add: --root: %w", err)
			}
			root = rc.String()
		}
		acct.RootCapFile = filepath.Join(accountCapDir(p.Dir), name+".cap")
		if err := writeSecretFile(acct.RootCapFile, []byte(root+"\n")); err != nil {
			return fmt.Errorf("account add: %w", err)
		}
		p.Accounts = append(p.Accounts, acct)
		if err := node.WriteProfile(p); err != nil {
			os.Remove(acct.RootCapFile)
			return fmt.Errorf("account add: %w", err)
		}
		if f.genPassword {
			fmt.Fprintf(cmd.OutOrStdout(), "password: %s\n", password)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "account %s added to %s (restart the node for its frontends to see it)\n", name, p.File)
		return nil
	},
}

// accountRoot is the root cap for a new account: --root (a directory cap,
// ALIAS: or ALIAS:path), else a new directory made through the running
// node.
func accountRoot(dir, flag string) (string, error) {
	if flag != "" {
		a, err := parseArg(dir, flag)
		if err == nil && !a.IsGrid() && aliases.ValidName(flag) {
			// A bare alias name, without its colon.
			a, err = aliases.ParseArg(flag+":", aliases.Resolver(dir))
		}
		if err != nil {
			return "", fmt.Errorf("--root: %w", err)
		}
		if !a.IsGrid() {
			return "", fmt.Errorf("--root %s: want a directory cap or ALIAS:", flag)
		}
		s := a.Root
		if a.Path != "/" {
			// A directory below an alias: its own cap, from the node.
			cl, err := apiClient(accountFlags.node)
			if err != nil {
				return "", fmt.Errorf("--root %s: %w", flag, err)
			}
			ctx, stop := cliContext()
			defer stop()
			e, err := cl.Stat(ctx, a.Root, a.Path)
			if err != nil {
				return "", fsError("--root", a.String(), err)
			}
			if s = e.WriteCap; s == "" {
				s = e.ReadCap
			}
		}
		c, err := cap.Parse(s)
		if err != nil {
			return "", fmt.Errorf("--root: %w", err)
		}
		switch c.(type) {
		case cap.DirWrite, cap.DirRead:
		default:
			return "", fmt.Errorf("--root: a %s cap, want a directory cap (tarn:dir: or tarn:dir-ro:)", c.Kind())
		}
		return c.String(), nil
	}
	cl, err := apiClient(accountFlags.node)
	if err != nil {
		return "", fmt.Errorf("a new root directory needs the running node (or give --root CAP): %w", err)
	}
	ctx, stop := cliContext()
	defer stop()
	dc, err := cl.NewDir(ctx)
	if err != nil {
		return "", apiError("make a root directory", err)
	}
	return dc.WriteCap, nil
}

// accountInfo is one account as list shows it.
type accountInfo struct {
	Name        string `json:"name"`
	Password    bool   `json:"password"`
	SSHKeys     int    `json:"ssh_keys"`
	ReadOnly    bool   `json:"read_only"`
	RootCapFile string `json:"root_cap_file,omitempty"`
	RootAlias   string `json:"root_alias,omitempty"`
}

var accountListCmd = &cobra.Command{
	Use:     "list",
	Aliases: []string{"ls"},
	Short:   "List the accounts (never their secrets)",
	Args:    cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		p, err := loadProfile("account list")
		if err != nil {
			return err
		}
		list := []accountInfo{}
		for _, a := range p.Accounts {
			list = append(list, accountInfo{Name: a.Name, Password: a.PasswordHash != "", SSHKeys: len(a.AuthorizedKeys),
				ReadOnly: a.ReadOnly, RootCapFile: a.RootCapFile, RootAlias: a.RootAlias})
		}
		out := cmd.OutOrStdout()
		if accountFlags.json {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(list)
		}
		for _, a := range list {
			var logins []string
			if a.Password {
				logins = append(logins, "password")
			}
			if a.SSHKeys > 0 {
				logins = append(logins, fmt.Sprintf("%d ssh keys", a.SSHKeys))
			}
			mode := "read-write"
			if a.ReadOnly {
				mode = "read-only"
			}
			root := a.RootCapFile
			if a.RootAlias != "" {
				root = "alias " + a.RootAlias
			}
			fmt.Fprintf(out, "%s\t%s\t%s\troot %s\n", a.Name, strings.Join(logins, "+"), mode, root)
		}
		return nil
	},
}

var accountRmCmd = &cobra.Command{
	Use:     "rm NAME",
	Aliases: []string{"remove"},
	Short:   "Remove an account (its root directory stays on the grid)",
	Args:    cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		name := args[0]
		p, err := loadProfile("account rm")
		if err != nil {
			return err
		}
		i := slices.IndexFunc(p.Accounts, func(a conf.Account) bool { return a.Name == name })
		if i < 0 {
			return fmt.Errorf("account rm: no account %q (tarn account list)", name)
		}
		capFile := p.Accounts[i].RootCapFile
		p.Accounts = slices.Delete(p.Accounts, i, i+1)
		// Frontends that named it no longer do.
		for j := range p.WebDAV {
			p.WebDAV[j].Accounts = slices.DeleteFunc(p.WebDAV[j].Accounts, func(s string) bool { return s == name })
		}
		for j := range p.SFTP {
			p.SFTP[j].Accounts = slices.DeleteFunc(p.SFTP[j].Accounts, func(s string) bool { return s == name })
		}
		if err := node.WriteProfile(p); err != nil {
			return fmt.Errorf("account rm: %w", err)
		}
		// The cap file goes too when tarn made it (a copy of a write cap
		// is authority best not left lying around).
		if capFile != "" && filepath.Dir(capFile) == accountCapDir(p.Dir) {
			os.Remove(capFile)
		}
		return nil
	},
}

func init() {
	accountCmd.PersistentFlags().StringVar(&accountFlags.node, "node", "", "client node folder (default $TARN_NODE, then ~/.tarn)")
	f := accountAddCmd.Flags()
	f.BoolVar(&accountFlags.passwordStdin, "password-from-stdin", false, "read the password from the first line of standard input")
	f.BoolVar(&accountFlags.genPassword, "generate-password", false, "make a random password and print it once")
	f.StringVar(&accountFlags.root, "root", "", "root directory: a directory cap or ALIAS: (default: a new directory)")
	f.BoolVar(&accountFlags.newRoot, "new-root", false, "make a new empty root directory (the default)")
	f.BoolVar(&accountFlags.readOnly, "read-only", false, "the account may read but not change anything")
	f.StringArrayVar(&accountFlags.sshKeys, "ssh-key", nil, "file of OpenSSH public keys the account may log in with (repeatable)")
	accountListCmd.Flags().BoolVar(&accountFlags.json, "json", false, "print JSON")
	accountCmd.AddCommand(accountAddCmd, accountListCmd, accountRmCmd)
	rootCmd.AddCommand(accountCmd)
}

// ---- tarn dev's root directory and account ----

// Files of the dev folder that keep the dev root and account across runs.
const (
	DevRootCapFile    = "root_cap"        // the root directory's write cap, 0600
	DevPasswordFile   = "dev.password"    // the dev account's password, 0600
	DevROPasswordFile = "dev-ro.password" // the read-only dev account's, 0600
	DevUser           = "dev"
	DevROUser         = "dev-ro" // the same root, read-only
)

// devSetup is what devAccount made or found.
type devSetup struct {
	RootCap    string
	Password   string
	ROPassword string // of DevROUser
	// WebDAVListen and SFTPListen are the frontends' addresses in the
	// client profile ("" when the profile has none).
	WebDAVListen, SFTPListen string
}

// devAccount makes (once) the dev grid's root directory, through the
// running client's API, and the dev account whose root it is; it puts the
// account and loopback [[webdav]] and [[sftp]] frontends for it in the
// client's profile (frontends only if the profile then still loads) and
// the alias "dev" in the client's alias file. changed says the profile
// was rewritten: the client must restart to see it.
func devAccount(ctx context.Context, dir, clientDir string, c *api.Client) (ds devSetup, changed bool, err error) {
	rootFile := filepath.Join(dir, DevRootCapFile)
	if b, err := os.ReadFile(rootFile); err == nil {
		ds.RootCap = strings.TrimSpace(string(b))
		if _, err := cap.Parse(ds.RootCap); err != nil {
			return ds, false, fmt.Errorf("%s: %w (delete it to make a new root directory)", rootFile, err)
		}
	} else if errors.Is(err, os.ErrNotExist) {
		dc, err := c.NewDir(ctx)
		if err != nil {
			return ds, false, apiError("make the dev root directory", err)
		}
		ds.RootCap = dc.WriteCap
		if err := writeSecretFile(rootFile, []byte(ds.RootCap+"\n")); err != nil {
			return ds, false, err
		}
	} else {
		return ds, false, err
	}
	if ds.Password, err = devPassword(filepath.Join(dir, DevPasswordFile)); err != nil {
		return ds, false, err
	}
	if ds.ROPassword, err = devPassword(filepath.Join(dir, DevROPasswordFile)); err != nil {
		return ds, false, err
	}
	if err := aliases.Add(aliases.File(clientDir), DevUser, ds.RootCap); err != nil && !errors.Is(err, aliases.ErrExist) {
		return ds, false, err
	}

	p, err := conf.Load(clientDir)
	if err != nil {
		return ds, false, err
	}
	for _, u := range []struct {
		name, pw string
		ro       bool
	}{{DevUser, ds.Password, false}, {DevROUser, ds.ROPassword, true}} {
		acct, ok := p.Account(u.name)
		good := ok && acct.RootCapFile == rootFile && acct.ReadOnly == u.ro
		if good {
			match, err := accounts.VerifyPassword(acct.PasswordHash, u.pw)
			good = err == nil && match
		}
		if good {
			continue
		}
		hash, err := accounts.HashPassword(u.pw)
		if err != nil {
			return ds, false, err
		}
		a := conf.Account{Name: u.name, PasswordHash: hash, RootCapFile: rootFile, ReadOnly: u.ro}
		if ok {
			*acct = a
		} else {
			p.Accounts = append(p.Accounts, a)
		}
		changed = true
	}
	webdav, sftp := slices.Clone(p.WebDAV), slices.Clone(p.SFTP)
	// Frontends made by an earlier tarn dev gain the read-only account.
	for i := range p.WebDAV {
		if a := p.WebDAV[i].Accounts; slices.Contains(a, DevUser) && !slices.Contains(a, DevROUser) {
			p.WebDAV[i].Accounts = append(slices.Clone(a), DevROUser)
			changed = true
		}
	}
	for i := range p.SFTP {
		if a := p.SFTP[i].Accounts; slices.Contains(a, DevUser) && !slices.Contains(a, DevROUser) {
			p.SFTP[i].Accounts = append(slices.Clone(a), DevROUser)
			changed = true
		}
	}
	if len(p.WebDAV) == 0 {
		port, err := freePort()
		if err != nil {
			return ds, false, err
		}
		p.WebDAV = append(p.WebDAV, conf.WebDAV{Enabled: true, Listen: "127.0.0.1:" + port, Prefix: "/",
			Accounts: []string{DevUser, DevROUser}, LockTimeout: conf.Duration(10 * time.Minute), AppleDouble: "keep"})
		changed = true
	}
	if len(p.SFTP) == 0 {
		port, err := freePort()
		if err != nil {
			return ds, false, err
		}
		p.SFTP = append(p.SFTP, conf.SFTP{Enabled: true, Listen: "127.0.0.1:" + port, Accounts: []string{DevUser, DevROUser},
			HostKeys:    []string{filepath.Join(clientDir, "private", "ssh_host_ed25519_key")},
			IdleTimeout: conf.Duration(15 * time.Minute), MaxSessions: 64})
		changed = true
	}
	if changed {
		if err := node.WriteProfile(p); err != nil {
			// This conf cannot take the frontends: the account alone.
			p.WebDAV, p.SFTP = webdav, sftp
			if err := node.WriteProfile(p); err != nil {
				return ds, false, fmt.Errorf("client profile: %w", err)
			}
		}
	}
	for _, w := range p.WebDAV {
		if w.Enabled && slices.Contains(w.Accounts, DevUser) {
			ds.WebDAVListen = w.Listen
			break
		}
	}
	for _, s := range p.SFTP {
		if s.Enabled && slices.Contains(s.Accounts, DevUser) {
			ds.SFTPListen = s.Listen
			break
		}
	}
	return ds, changed, nil
}

// devPassword reads the password kept in file, or makes one and keeps it
// there (0600).
func devPassword(file string) (string, error) {
	if b, err := os.ReadFile(file); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	pw, err := randomPassword()
	if err != nil {
		return "", err
	}
	return pw, writeSecretFile(file, []byte(pw+"\n"))
}

// listening reports whether something accepts TCP connections at addr,
// trying for up to wait.
func listening(addr string, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
