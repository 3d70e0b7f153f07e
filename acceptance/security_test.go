//go:build acceptance

package acceptance

// Security acceptance: the claims of docs/security.md that need real tarn
// processes on a real grid. What a storage server keeps on disk, what a
// node of another grid and a man in the middle get, the modes of secret
// files and the refusal to start with open ones, and what a read-only SFTP
// account cannot do. (A read-only WebDAV account is TestWebDAV's testLogins;
// a plugin with a wrong SHA-256 pin is TestExternalPlugin.)

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/aliases"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/identity"
)

// TestSecurityStoredBytesHoldNoSecrets uploads a file whose every 64 KiB
// block starts with a plaintext marker, makes a directory holding a CHK
// file, a literal file (kept inside the directory's entries) and a
// subdirectory, then scans every file under every storage node's folder
// (shares, slots, leases, logs; not its own private/ folder): none may hold
// the plaintext, the file's key, the client's convergence secret, the
// directory's write cap or any key or secret in it, nor the directory's
// read key.
func TestSecurityStoredBytesHoldNoSecrets(t *testing.T) {
	g := startGrid(t, GridOptions{})
	cl := g.Client.Dir
	data := genBytes(1200, 1<<20+333)
	fileCap := g.mustPut(t, g.Client, bytes.NewReader(data))
	parsed, err := cap.Parse(fileCap)
	if err != nil {
		t.Fatal(err)
	}
	chk, ok := parsed.(cap.CHK)
	if !ok {
		t.Fatalf("cap %s is a %s cap, want chk", fileCap, parsed.Kind())
	}

	mustTarn(t, CLI{}, "create-alias", "--node", cl, "sec")
	small := []byte("TARN-LITERAL-MARKER-in-a-dir") // a literal cap: its bytes live in the entry
	mustTarn(t, CLI{Stdin: bytes.NewReader(genBytes(1201, 200_000)), Timeout: 5 * time.Minute}, "put", "--node", cl, "-", "sec:inside.bin")
	mustTarn(t, CLI{Stdin: bytes.NewReader(small), Timeout: time.Minute}, "put", "--node", cl, "-", "sec:small.txt")
	mustTarn(t, CLI{Timeout: time.Minute}, "mkdir", "--node", cl, "sec:sub")
	dirCap, err := aliases.Lookup(aliases.File(cl), "sec")
	if err != nil {
		t.Fatal(err)
	}
	dp, err := cap.Parse(dirCap)
	if err != nil {
		t.Fatal(err)
	}
	dw, ok := dp.(cap.DirWrite)
	if !ok {
		t.Fatalf("alias sec is a %s cap, want a directory write cap", dp.Kind())
	}
	convFile, err := os.ReadFile(filepath.Join(cl, "private", "convergence.secret"))
	if err != nil {
		t.Fatal(err)
	}
	conv, err := identity.ParseSecret(convFile)
	if err != nil {
		t.Fatal(err)
	}
	wk := dw.Slot.WriteKey()
	rk := dw.ReadCap().Slot.ReadKey
	secrets := map[string][]byte{
		"plaintext marker":                []byte(marker),
		"literal file's bytes":            small,
		"file key":                        chk.Key[:],
		"file read cap":                   []byte(fileCap),
		"convergence secret":              conv,
		"convergence secret file":         bytes.TrimSpace(convFile),
		"directory write cap":             []byte(dirCap),
		"directory write secret":          dw.Slot.Secret[:],
		"directory write key":             wk[:],
		"directory signing key":           dw.Slot.SigningKey().Seed(),
		"directory read key":              rk[:],
		"directory read cap":              []byte(dw.ReadCap().String()),
		"mutable write cap of the dir":    []byte(dw.Slot.String()),
		"convergence secret (first half)": conv[:len(conv)/2],
	}

	// Control: the client's own private folder holds some of them (the
	// alias file, the convergence secret), so the scan below can see them.
	found := map[string]bool{}
	for _, f := range findFiles(filepath.Join(cl, "private"), func(string) bool { return true }) {
		b, _ := os.ReadFile(f)
		for what, s := range secrets {
			found[what] = found[what] || bytes.Contains(b, s)
		}
	}
	if !found["directory write cap"] || !found["convergence secret file"] {
		t.Fatalf("control: the client's private folder shows none of the secrets (%v): the scan cannot work", found)
	}

	var shares, slots, scanned int
	for _, n := range g.Storage() {
		err := filepath.WalkDir(n.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(n.Dir, p)
			if d.IsDir() {
				if rel == "private" {
					return filepath.SkipDir // the node's own key and grid secret
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			scanned++
			slash := filepath.ToSlash(rel)
			switch {
			case shareRe.MatchString(slash):
				shares++
			case packRe.MatchString(slash):
				shares += packedIn(p)
			case strings.Contains("/"+slash, "/slots/"):
				slots++
			}
			for what, s := range secrets {
				if bytes.Contains(b, s) {
					t.Errorf("%s: %s holds the %s", n.Name, rel, what)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// 5 shares of the file, 5 of inside.bin, and 5 slots for each of the
	// two directories (sec and sec:sub).
	if shares < 10 || slots < 10 {
		t.Fatalf("scanned %d share files and %d slot files (%d files in all), want at least 10 of each", shares, slots, scanned)
	}
	figure(t, "scanned %d files on %d storage nodes (%d shares, %d slots): no plaintext, key or secret", scanned, len(g.Storage()), shares, slots)
}

// outsiderProfile writes a client node folder made by tarn init with its
// own new grid secret, whose profile g's edits then change.
func (g *Grid) outsiderNode(t *testing.T, name string, args []string, edit func(string) string) *Node {
	t.Helper()
	dir := filepath.Join(g.Dir, name)
	mustTarn(t, CLI{}, append(append([]string{"init", "--profile", "client", "--name", name}, args...), dir)...)
	prof := filepath.Join(dir, "tarn.toml")
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	p := setTOML(string(b), "grid", "name", fmt.Sprintf("%q", g.Name))
	p = setTOML(p, "client", "api_listen", `"127.0.0.1:0"`)
	p = setTOML(p, "client", "server_timeout", `"5s"`)
	p = setTOML(p, "client.shares", "k", "1")
	p = setTOML(p, "client.shares", "h", "1")
	p = setTOML(p, "client.shares", "n", "1")
	p = edit(p)
	if err := os.WriteFile(prof, []byte(p), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &Node{Name: name, Role: "client", Dir: dir}
	g.Nodes = append(g.Nodes, n)
	g.runNode(t, n)
	return n
}

// dirCapOf returns the cap of a client's alias.
func dirCapOf(t *testing.T, clientDir, alias string) string {
	t.Helper()
	c, err := aliases.Lookup(aliases.File(clientDir), alias)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// storageAddr returns a running storage node's transport address and key
// hash, from its node.json.
func storageAddr(t *testing.T, n *Node) (addr, keyHash string) {
	t.Helper()
	var info NodeInfo
	b, err := os.ReadFile(filepath.Join(n.Dir, "node.json"))
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	if err != nil {
		t.Fatal(err)
	}
	return info.StorageURL[strings.Index(info.StorageURL, "@")+1:], info.KeyHash
}

// TestSecurityOtherGrid: a client node with another grid secret, given the
// grid's introducer and one storage server by address and key, learns no
// server from the introducer (it cannot read announcements), stores no
// share, and says why: its log names the refusal of its membership. A
// storage node with another grid secret cannot announce itself: the grid's
// client never lists it, and its log names the refusal.
func TestSecurityOtherGrid(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true})
	target := g.Storage()[0]
	addr, kh := storageAddr(t, target)
	before := len(g.allShares(""))
	n := g.outsiderNode(t, "outsider", []string{"--introducer", g.Introducer}, func(p string) string {
		return p + fmt.Sprintf("\n[[grid.servers]]\nname = %q\naddress = %q\nkey_hash = %q\n", target.Name, addr, kh)
	})

	// Give the subscription time to be refused, then look: only the one
	// static server is known, none from the introducer.
	time.Sleep(3 * time.Second)
	st, r := g.status(t, n)
	if r.Code != 0 {
		t.Fatalf("status: %v", r)
	}
	if st.Known > 1 {
		t.Errorf("the outsider knows %d servers: it read the introducer's announcements", st.Known)
	}

	_, r = g.put(t, n, bytes.NewReader(genBytes(1300, 100_000)))
	if r.Code == 0 {
		t.Fatalf("a client of another grid stored a file on %s: %v", target.Name, r)
	}
	if after := len(g.allShares("")); after != before {
		t.Errorf("share files went from %d to %d after the outsider's upload", before, after)
	}
	line := lastLine(r.Stderr)
	t.Logf("outsider's put: %s", line)
	log := g.logText(n)
	if !strings.Contains(log, "not a member of this grid") {
		t.Errorf("the outsider's log does not say its membership was refused:\n%s", tail(log, 3000))
	}

	// A storage node of another grid cannot announce itself: the grid's
	// client never lists it.
	dir := filepath.Join(g.Dir, "outsider-storage")
	mustTarn(t, CLI{}, "init", "--profile", "storage", "--name", "outsider-storage", "--introducer", g.Introducer, dir)
	prof := filepath.Join(dir, "tarn.toml")
	pb, _ := os.ReadFile(prof)
	sp := setTOML(string(pb), "grid", "name", fmt.Sprintf("%q", g.Name))
	sp = setTOML(sp, "storage", "listen", `["tcp:127.0.0.1:0"]`)
	sp = setTOML(sp, "storage", "reserved_space", `"0"`)
	if err := os.WriteFile(prof, []byte(sp), 0o644); err != nil {
		t.Fatal(err)
	}
	sn := &Node{Name: "outsider-storage", Role: "outsider", Dir: dir}
	g.Nodes = append(g.Nodes, sn)
	g.runNode(t, sn)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		st, r := g.status(t, g.Client)
		if r.Code == 0 && st.Known > len(g.Storage()) {
			t.Fatalf("the grid's client lists %d servers, %d of them the grid's: a storage node of another grid announced itself", st.Known, len(g.Storage()))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if slog := g.logText(sn); !strings.Contains(slog, "not a member of this grid") {
		t.Errorf("the outsider storage node's log does not say the introducer refused it:\n%s", tail(slog, 3000))
	}

	if !strings.Contains(strings.ToLower(line), "refused this node") {
		t.Errorf("the put error does not say the membership was refused: %s", line)
	}

	// A client of another grid that knows servers only through the
	// introducer learns none, and its put says the introducer refused it
	// (not only "0 of 0 servers answered").
	lone := g.outsiderNode(t, "outsider-intro-only", []string{"--introducer", g.Introducer}, func(p string) string { return p })
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, r = g.put(t, lone, bytes.NewReader(genBytes(1301, 10_000)))
		line = lastLine(r.Stderr)
		if r.Code == 0 {
			t.Fatalf("a client of another grid stored a file through the introducer's list: %v", r)
		}
		if strings.Contains(line, "introducer 0 refused this node: not a member of this grid") || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("introducer-only outsider's put: %s", line)
	if !strings.Contains(line, "introducer 0 refused this node: not a member of this grid") {
		t.Errorf("the introducer-only outsider's put does not say the introducer refused it: %s", line)
	}
}

// TestSecurityManInTheMiddle: a client whose grid.servers entry has a
// storage node's address but another node's key hash (a man in the middle
// with his own key) never uploads to it, and says the key did not match.
func TestSecurityManInTheMiddle(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true})
	target, other := g.Storage()[0], g.Storage()[1]
	addr, realKH := storageAddr(t, target)
	_, otherKH := storageAddr(t, other)
	secret := filepath.Join(g.Dir, "introducer", "private", "grid.secret")
	before := len(g.shares(target, ""))
	n := g.outsiderNode(t, "pinned-wrong", []string{"--grid-secret", secret}, func(p string) string {
		return p + fmt.Sprintf("\n[[grid.servers]]\nname = %q\naddress = %q\nkey_hash = %q\n", target.Name, addr, otherKH)
	})
	_, r := g.put(t, n, bytes.NewReader(genBytes(1301, 100_000)))
	if r.Code == 0 {
		t.Fatalf("an upload succeeded through a pin that %s's key does not match: %v", target.Name, r)
	}
	if after := len(g.shares(target, "")); after != before {
		t.Errorf("%s took shares through a wrong pin: %d -> %d", target.Name, before, after)
	}
	line := lastLine(r.Stderr)
	t.Logf("put through the wrong pin: %s", line)
	log := g.logText(n)
	re := regexp.MustCompile(`does not match the pinned key hash: expected ` + regexp.QuoteMeta(otherKH) + `, actual ` + regexp.QuoteMeta(realKH))
	if !re.MatchString(log) {
		t.Errorf("the client's log does not name the key mismatch (expected %s, actual %s):\n%s", otherKH, realKH, tail(log, 3000))
	}
	if !strings.Contains(line, "does not match the pinned key hash") {
		t.Errorf("the put error does not name the key mismatch: %s", line)
	}
}

// TestSecurityFileModes: tarn init writes the node key, grid secret and
// convergence secret 0600, tarn create-alias the alias file 0600, tarn
// account add the account's root cap file 0600; tarn run refuses a node
// whose key or secret is readable by others, in one line naming the file
// and the chmod that fixes it, and leaves no node.json.
func TestSecurityFileModes(t *testing.T) {
	g := startGrid(t, GridOptions{})
	cl := g.Client.Dir
	mustTarn(t, CLI{}, "create-alias", "--node", cl, "modes")
	mustTarn(t, CLI{Timeout: time.Minute}, "account", "add", "--node", cl, "--generate-password", "modes-user")
	mustTarn(t, CLI{Timeout: time.Minute}, "account", "add", "--node", cl, "--generate-password", "--read-only", "modes-reader")

	dir := filepath.Join(t.TempDir(), "all")
	mustTarn(t, CLI{}, "init", "--profile", "all", dir)
	created := []string{
		filepath.Join(dir, "private", "node.key"),
		filepath.Join(dir, "private", "grid.secret"),
		filepath.Join(dir, "private", "convergence.secret"),
		aliases.File(cl),
	}
	accounts, _ := filepath.Glob(filepath.Join(cl, "private", "accounts", "*"))
	if len(accounts) < 2 {
		t.Fatalf("found account files %v, want the two accounts' root cap files", accounts)
	}
	created = append(created, accounts...)
	for _, p := range created {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := st.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s created with mode %04o, want 0600", p, perm)
		}
	}

	prof := filepath.Join(dir, "tarn.toml")
	b, _ := os.ReadFile(prof)
	p := setTOML(string(b), "introducer", "listen", `["tcp:127.0.0.1:0"]`)
	p = setTOML(p, "storage", "listen", `["tcp:127.0.0.1:0"]`)
	p = setTOML(p, "client", "api_listen", `"127.0.0.1:0"`)
	if err := os.WriteFile(prof, []byte(p), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("account root cap file", func(t *testing.T) {
		mustTarn(t, CLI{}, "account", "add", "--node", dir, "--root", dirCapOf(t, cl, "modes"), "--generate-password", "acct")
		files, _ := filepath.Glob(filepath.Join(dir, "private", "accounts", "*"))
		if len(files) != 1 {
			t.Fatalf("account files %v, want one", files)
		}
		f := files[0]
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v, want 0600", f, err, st.Mode().Perm())
		}
		b, _ := os.ReadFile(prof)
		p := string(b) + "\n[[webdav]]\nenabled = true\nlisten = \"127.0.0.1:0\"\naccounts = [\"acct\"]\n"
		if err := os.WriteFile(prof, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(f, 0o600)
		r := tarn(t, CLI{Timeout: 15 * time.Second}, "run", dir)
		os.Remove(filepath.Join(dir, "node.json"))
		msg := lastLine(r.Stderr)
		if r.Code == 0 || r.Code == -1 || !strings.Contains(msg, f) || !strings.Contains(msg, "chmod 600") {
			t.Fatalf("a node with WebDAV started on an account whose root cap file is mode 0644, or its refusal does not name the file and chmod 600 (exit %d): %s", r.Code, msg)
		}
	})
	for _, f := range created[:3] {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if err := os.Chmod(f, 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(f, 0o600)
			r := tarn(t, CLI{Timeout: time.Minute}, "run", dir)
			if r.Code == 0 || r.Code == -1 {
				t.Fatalf("tarn run started with %s mode 0644: %v", f, r)
			}
			// tarn run checks the profile's files first, as tarn config
			// check does: one FILE:LINE: KEY line per problem naming the
			// file and the fix, then the count as the last line.
			msg := ""
			for _, l := range strings.Split(r.Stderr, "\n") {
				if strings.Contains(l, f) && strings.Contains(l, "chmod 600") {
					msg = l
				}
			}
			if msg == "" || !strings.HasPrefix(lastLine(r.Stderr), "tarn: ") {
				t.Errorf("refusal does not name %s and chmod 600 on one line, or does not end in a tarn: line:\n%s", f, r.Stderr)
			}
			if strings.Contains(r.Stderr, "panic") || strings.Contains(r.Stderr, "goroutine ") {
				t.Errorf("tarn run panicked:\n%s", r.Stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "node.json")); err == nil {
				t.Errorf("a node refused at start left node.json")
			}
			t.Logf("%s", msg)
		})
	}
}

// TestSecuritySFTPReadOnly: the read-only SFTP account of tarn dev lists
// and reads, and every change (put, mkdir, rm, rmdir, rename, chmod, ln)
// gets "Permission denied"; the tree is unchanged afterwards.
func TestSecuritySFTPReadOnly(t *testing.T) {
	_, ep := sftpGrid(t, "sftp", "sshpass")
	if ep.ReadOnlyUser == "" {
		t.Skip("tarn dev names no read-only SFTP account")
	}
	local := t.TempDir()
	src := filepath.Join(local, "f.txt")
	if err := os.WriteFile(src, []byte("read-only test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	setup := "-mkdir ro\nput " + src + " ro/f.txt\n-mkdir ro/d\n"
	if out, err := sftpBatch(t, ep, ep.User, ep.Password, setup); err != nil {
		t.Fatalf("setup as %s: %v\n%s", ep.User, err, out)
	}
	if out, err := sftpBatch(t, ep, ep.ReadOnlyUser, ep.ReadOnlyPassword, "ls ro\nget ro/f.txt "+filepath.Join(local, "back.txt")+"\n"); err != nil {
		t.Fatalf("read-only account cannot read: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(local, "back.txt")); string(b) != "read-only test\n" {
		t.Fatalf("read-only get gave %q", b)
	}
	for _, tc := range []struct{ name, cmd string }{
		{"put new", "put " + src + " ro/new.txt"},
		{"put over", "put " + src + " ro/f.txt"},
		{"mkdir", "mkdir ro/newdir"},
		{"rm", "rm ro/f.txt"},
		{"rmdir", "rmdir ro/d"},
		{"rename", "rename ro/f.txt ro/g.txt"},
		{"chmod", "chmod 600 ro/f.txt"},
		{"symlink", "ln -s ro/f.txt ro/link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := sftpBatch(t, ep, ep.ReadOnlyUser, ep.ReadOnlyPassword, tc.cmd+"\n")
			if err == nil {
				t.Fatalf("read-only %s succeeded:\n%s", tc.name, out)
			}
			if !strings.Contains(out, "Permission denied") {
				t.Errorf("read-only %s: %v, want Permission denied:\n%s", tc.name, err, out)
			}
		})
	}
	out, err := sftpBatch(t, ep, ep.User, ep.Password, "ls -1 ro\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "f.txt") || strings.Contains(out, "new.txt") || strings.Contains(out, "g.txt") || strings.Contains(out, "newdir") {
		t.Errorf("the tree changed under the read-only account:\n%s", out)
	}
}
