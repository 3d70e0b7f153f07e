//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/accounts"
	"github.com/tarnfs/tarn/host/aliases"
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/node"
)

// makeTree writes a local tree with nested and empty folders, zero-byte
// files, Unicode (NFC) and space names, and a multi-segment file.
func makeTree(t *testing.T, root string) {
	t.Helper()
	big := make([]byte, 2<<20+123)
	rand.Read(big)
	files := map[string][]byte{
		"top.txt":                    []byte("top\n"),
		"zero":                       nil,
		"a/b/c/deep.txt":             []byte(strings.Repeat("deep ", 30)),
		"a/b/zero too":               nil,
		"a/big.bin":                  big,
		"Ünïcødé dïr/naïve café.txt": []byte("crème brûlée\n"),
		"Ünïcødé dïr/日本語 ファイル.md":         []byte("# 見出し\n"),
		"with space/and more spaces .txt": []byte("spaces"),
	}
	for name, b := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"empty", "a/empty inside", "a/b/c/empty deep"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// treeOf maps each path under root to "dir" or the file's bytes.
func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = "file:" + string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, want, got string) {
	t.Helper()
	w, g := treeOf(t, want), treeOf(t, got)
	for p, v := range w {
		if g[p] != v {
			t.Errorf("%s: got %.40q, want %.40q", p, g[p], v)
		}
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			t.Errorf("%s: in the copy, not in the original", p)
		}
	}
}

// oneLine checks a failing command's exit and its one-line error.
func oneLine(t *testing.T, r result, has string) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("exit 0, want an error saying %q (stdout %q)", has, r.stdout)
		return
	}
	if !strings.Contains(r.stderr, has) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("stderr %q: want one line saying %q", r.stderr, has)
	}
}

func TestFSCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev grid")
	}
	bin := buildTarn(t)
	root := t.TempDir()
	dir := filepath.Join(root, "dev")
	d := startDev(t, bin, dir, 3)
	clientDir := d.ep.Client.NodeDir
	// mustFor runs tarn on the dev client for t, failing t on an error.
	mustFor := func(t *testing.T) func(args ...string) string {
		return func(args ...string) string {
			t.Helper()
			r := runFor(t, 2*time.Minute, bin, append(args, "--node", clientDir)...)
			if r.code != 0 {
				t.Fatalf("tarn %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
			}
			return r.stdout
		}
	}

	t.Run("dev root and account", func(t *testing.T) {
		if !strings.HasPrefix(d.ep.RootCap, "tarn:dir:") || d.ep.Account == nil || d.ep.Account.User != "dev" || len(d.ep.Account.Password) < 16 {
			t.Fatalf("endpoints.json: root_cap %q account %+v", d.ep.RootCap, d.ep.Account)
		}
		for _, f := range []string{DevRootCapFile, DevPasswordFile, DevROPasswordFile} {
			if m := mode(t, filepath.Join(dir, f)); m != 0o600 {
				t.Errorf("%s mode %v, want 0600", f, m)
			}
		}
		if c, err := aliases.Lookup(aliases.File(clientDir), "dev"); err != nil || c != d.ep.RootCap {
			t.Errorf("alias dev: %q %v, want the root cap", c, err)
		}
		p, err := conf.Load(clientDir)
		if err != nil {
			t.Fatalf("client profile after tarn dev: %v", err)
		}
		set, err := accounts.Load(p)
		if err != nil {
			t.Fatalf("accounts of the client profile: %v", err)
		}
		a, ok := set.Account("dev")
		if !ok || a.RootCap != d.ep.RootCap || a.ReadOnly {
			t.Fatalf("account dev: %+v %v", a, ok)
		}
		if _, err := set.CheckPassword(context.Background(), "dev", d.ep.Account.Password, "test"); err != nil {
			t.Errorf("the dev password does not log in: %v", err)
		}
		ro, err := set.CheckPassword(context.Background(), d.ep.Account.ReadOnlyUser, d.ep.Account.ReadOnlyPassword, "test")
		if err != nil || !ro.ReadOnly || !strings.HasPrefix(ro.RootCap, "tarn:dir-ro:") || d.ep.Account.ReadOnlyPassword == d.ep.Account.Password {
			t.Errorf("the read-only dev account: %+v, %v", ro, err)
		}
		if len(p.WebDAV) == 0 || len(p.SFTP) == 0 {
			t.Errorf("client profile has %d webdav and %d sftp frontends, want one each", len(p.WebDAV), len(p.SFTP))
		}
	})

	t.Run("cp -r round trip", func(t *testing.T) {
		must := mustFor(t)
		src := filepath.Join(root, "src tree")
		makeTree(t, src)
		must("cp", "-r", "-p", src, "dev:")
		back := filepath.Join(root, "back")
		must("cp", "-rp", "dev:src tree", back)
		sameTree(t, src, back)
		// Again into an existing folder: it lands inside, under its name.
		must("cp", "-rp", "dev:src tree/a", back)
		sameTree(t, filepath.Join(src, "a"), filepath.Join(back, "a"))
		// Modification times come back.
		st, _ := os.Stat(filepath.Join(src, "a/big.bin"))
		bt, _ := os.Stat(filepath.Join(back, "a/big.bin"))
		if !st.ModTime().Equal(bt.ModTime()) {
			t.Errorf("mtime %v came back as %v", st.ModTime(), bt.ModTime())
		}
		// Without -p: stored jobs at a time, linked per directory.
		must("mkdir", "dev:plain")
		must("cp", "-r", src, "dev:plain")
		back3 := filepath.Join(root, "back3")
		must("cp", "-r", "dev:plain/src tree", back3)
		sameTree(t, src, back3)
		// Again over the same names, one file changed: replaced.
		os.WriteFile(filepath.Join(src, "top.txt"), []byte("changed\n"), 0o644)
		must("cp", "-r", src, "dev:plain")
		if got := must("cat", "dev:plain/src tree/top.txt"); got != "changed\n" {
			t.Errorf("cp over an existing file left %q", got)
		}
		os.WriteFile(filepath.Join(src, "top.txt"), []byte("top\n"), 0o644)
		// The grid copy of a grid tree links caps: same listing.
		must("cp", "-r", "dev:src tree", "dev:copy")
		back2 := filepath.Join(root, "back2")
		must("cp", "-r", "dev:copy", back2)
		sameTree(t, src, back2)
	})

	t.Run("commands", func(t *testing.T) {
		must := mustFor(t)
		must("mkdir", "dev:work")
		must("put", filepath.Join(root, "src tree", "top.txt"), "dev:work/")
		fileCap := strings.TrimSpace(must("put", filepath.Join(root, "src tree", "a", "big.bin"), "dev:work/big.bin"))
		cases := []struct {
			name   string
			args   []string
			stdout string // exact, when not ""
			has    string // stdout contains
			errHas string // a one-line error saying this
		}{
			{name: "ls", args: []string{"ls", "dev:work"}, stdout: "big.bin\ntop.txt\n"},
			{name: "cat", args: []string{"cat", "dev:work/top.txt"}, stdout: "top\n"},
			{name: "cat by cap", args: []string{"cat", "tarn:lit:orxxacq"}, stdout: "top\n"},
			{name: "mkdir -p", args: []string{"mkdir", "-p", "dev:work/x/y/z"}, stdout: ""},
			{name: "mkdir exists", args: []string{"mkdir", "dev:work/x"}, errHas: "mkdir dev:work/x: already exists"},
			{name: "mkdir no parent", args: []string{"mkdir", "dev:work/nope/q"}, errHas: "no such file or directory"},
			{name: "ln", args: []string{"ln", fileCap, "dev:work/x/linked.bin"}, stdout: ""},
			{name: "ln exists", args: []string{"ln", "tarn:lit:orxxacq", "dev:work/x/linked.bin"}, errHas: "already exists"},
			{name: "ln bad cap", args: []string{"ln", "tarn:chk:zz", "dev:work/x/bad"}, errHas: "ln dev:work/x/bad"},
			{name: "mv rename", args: []string{"mv", "dev:work/top.txt", "dev:work/renamed.txt"}, stdout: ""},
			{name: "mv into dir", args: []string{"mv", "dev:work/renamed.txt", "dev:work/x"}, stdout: ""},
			{name: "mv missing", args: []string{"mv", "dev:work/renamed.txt", "dev:work/y"}, errHas: "no such file or directory"},
			{name: "tree", args: []string{"tree", "dev:work"}, stdout: "dev:work\n├── big.bin\n└── x/\n    ├── linked.bin\n    ├── renamed.txt\n    └── y/\n        └── z/\n\n3 directories, 3 files\n"},
			{name: "ls -l", args: []string{"ls", "-l", "dev:work"}, has: "-rw- 2097275 "},
			{name: "ls file", args: []string{"ls", "dev:work/big.bin"}, stdout: "big.bin\n"},
			{name: "ls missing", args: []string{"ls", "dev:nothing"}, errHas: "ls dev:nothing: no such file or directory"},
			{name: "ls local", args: []string{"ls", "justlocal"}, errHas: "not a grid path"},
			{name: "ls unknown alias", args: []string{"ls", "nope:x"}, errHas: "no such alias"},
			{name: "rm not empty", args: []string{"rm", "dev:work/x"}, errHas: "directory not empty"},
			{name: "rm root", args: []string{"rm", "-r", "dev:"}, errHas: "root directory"},
			{name: "cat dir", args: []string{"cat", "dev:work"}, errHas: "is a directory"},
			{name: "cp dir without -r", args: []string{"cp", "dev:work", filepath.Join(root, "w")}, errHas: "use cp -r"},
			{name: "cp to a name too long", args: []string{"cp", filepath.Join(root, "src tree", "top.txt"), "dev:work/" + strings.Repeat("n", 256)}, errHas: "name too long: 256 bytes"},
			{name: "cp local to local", args: []string{"cp", filepath.Join(root, "src tree", "top.txt"), filepath.Join(root, "t2")}, errHas: "both local"},
			{name: "rm -r", args: []string{"rm", "-r", "dev:work/x"}, stdout: ""},
			{name: "rm file", args: []string{"rm", "dev:work/big.bin"}, stdout: ""},
			{name: "ls empty", args: []string{"ls", "dev:work"}, stdout: ""},
			{name: "rm missing", args: []string{"rm", "dev:work/big.bin"}, errHas: "no such file or directory"},
		}
		for _, tc := range cases {
			r := runFor(t, 2*time.Minute, bin, append(tc.args, "--node", clientDir)...)
			if tc.errHas != "" {
				if r.code == 0 {
					t.Errorf("%s: exit 0, want an error saying %q", tc.name, tc.errHas)
				} else if !strings.Contains(r.stderr, tc.errHas) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
					t.Errorf("%s: stderr %q: want one line saying %q", tc.name, r.stderr, tc.errHas)
				}
				continue
			}
			if r.code != 0 {
				t.Errorf("%s: exit %d: %s", tc.name, r.code, r.stderr)
				continue
			}
			if tc.has != "" && !strings.Contains(r.stdout, tc.has) || tc.has == "" && r.stdout != tc.stdout {
				t.Errorf("%s: stdout %q, want %q", tc.name, r.stdout, tc.stdout+tc.has)
			}
		}
		// ls --json gives caps; a read cap linked is a read-only directory.
		var es []api.Entry
		out := must("ls", "--json", "dev:")
		if err := json.Unmarshal([]byte(out), &es); err != nil {
			t.Fatalf("ls --json: %v: %s", err, out)
		}
		var ro string
		for _, e := range es {
			if e.Name == "copy" {
				ro = e.ReadCap
			}
		}
		must("ln", ro, "dev:copy-ro")
		oneLine(t, runFor(t, time.Minute, bin, "mkdir", "dev:copy-ro/new", "--node", clientDir), "read-only")
		if got := must("cat", "dev:copy-ro/top.txt"); got != "top\n" {
			t.Errorf("cat through a read cap: %q", got)
		}
	})

	t.Run("webdav serves the dev root", func(t *testing.T) {
		must := mustFor(t)
		w := d.ep.WebDAV
		if w == nil {
			t.Skip("the client runs no WebDAV frontend")
		}
		f := filepath.Join(root, "dav.txt")
		os.WriteFile(f, []byte("top\n"), 0o644)
		must("put", f, "dev:dav.txt")
		do := func(method, user, pw, name string, body io.Reader) (int, string) {
			req, _ := http.NewRequest(method, w.URL+url.PathEscape(name), body)
			req.SetBasicAuth(user, pw)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := do("GET", w.User, w.Password, "dav.txt", nil); code != 200 || body != "top\n" {
			t.Errorf("webdav GET of a file cp put: %d %q", code, body)
		}
		if code, _ := do("PUT", w.User, w.Password, "from dav.txt", strings.NewReader("dav\n")); code != 201 && code != 204 {
			t.Errorf("webdav PUT as dev: %d", code)
		} else if got := must("cat", "dev:from dav.txt"); got != "dav\n" {
			t.Errorf("cat of a file put over webdav: %q", got)
		}
		if code, _ := do("PUT", w.ReadOnlyUser, w.ReadOnlyPassword, "ro.txt", strings.NewReader("x")); code != 403 {
			t.Errorf("webdav PUT as the read-only account: %d, want 403", code)
		}
		if code, _ := do("GET", w.User, "wrong", "dav.txt", nil); code != 401 {
			t.Errorf("webdav GET with a wrong password: %d, want 401", code)
		}
	})

	t.Run("aliases", func(t *testing.T) {
		must := mustFor(t)
		must("create-alias", "docs")
		list := must("alias", "list")
		if !strings.Contains(list, "docs: tarn:dir:") || !strings.Contains(list, "dev: "+d.ep.RootCap) {
			t.Errorf("alias list: %q", list)
		}
		must("mkdir", "docs:inbox")
		var m map[string]string
		json.Unmarshal([]byte(must("alias", "list", "--json")), &m)
		must("alias", "add", "docs-too", m["docs"])
		if got := must("ls", "docs-too:"); got != "inbox\n" {
			t.Errorf("ls through a second alias: %q", got)
		}
		if got := must("ls", m["docs"]+":/"); got != "inbox\n" {
			t.Errorf("ls by cap: %q", got)
		}
		oneLine(t, runFor(t, time.Minute, bin, "alias", "add", "docs", m["docs"], "--node", clientDir), "alias exists")
		oneLine(t, runFor(t, time.Minute, bin, "alias", "add", "bad name", m["docs"], "--node", clientDir), "bad alias name")
		oneLine(t, runFor(t, time.Minute, bin, "alias", "add", "x", "not-a-cap", "--node", clientDir), "alias x")
		oneLine(t, runFor(t, time.Minute, bin, "create-alias", "docs", "--node", clientDir), "alias exists")
		must("alias", "rm", "docs-too")
		oneLine(t, runFor(t, time.Minute, bin, "alias", "rm", "docs-too", "--node", clientDir), "no such alias")
		if m := mode(t, aliases.File(clientDir)); m != 0o600 {
			t.Errorf("alias file mode %v", m)
		}
	})

	t.Run("accounts", func(t *testing.T) {
		must := mustFor(t)
		cmd := exec.Command(bin, "account", "add", "alice", "--password-from-stdin", "--node", clientDir)
		cmd.Stdin = strings.NewReader("correct horse\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("account add alice: %v: %s", err, out)
		}
		gen := must("account", "add", "bob", "--generate-password", "--root", "dev:", "--read-only")
		pw, ok := strings.CutPrefix(strings.TrimSpace(gen), "password: ")
		if !ok || len(pw) != 24 {
			t.Fatalf("generated password line %q", gen)
		}
		must("mkdir", "-p", "dev:homes/carol")
		must("account", "add", "carol", "--generate-password", "--root", "dev:homes/carol")
		oneLine(t, runFor(t, time.Minute, bin, "account", "add", "dave", "--generate-password", "--root", "dev:homes/nobody", "--node", clientDir), "no such file or directory")
		oneLine(t, runFor(t, time.Minute, bin, "account", "add", "alice", "--generate-password", "--node", clientDir), "exists already")
		oneLine(t, runFor(t, time.Minute, bin, "account", "add", "erin", "--node", clientDir), "nobody could log in")
		oneLine(t, runFor(t, time.Minute, bin, "account", "add", "erin", "--generate-password", "--root", "tarn:lit:orxxacq", "--node", clientDir), "want a directory cap")
		p, err := conf.Load(clientDir)
		if err != nil {
			t.Fatalf("profile after account add: %v", err)
		}
		set, err := accounts.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := set.CheckPassword(context.Background(), "alice", "correct horse", "t"); err != nil {
			t.Errorf("alice cannot log in: %v", err)
		}
		b, ok := set.Account("bob")
		if _, err := set.CheckPassword(context.Background(), "bob", pw, "t"); err != nil || !ok || !b.ReadOnly || !strings.HasPrefix(b.RootCap, "tarn:dir-ro:") {
			t.Errorf("bob: %+v, login %v", b, err)
		}
		if a, _ := p.Account("alice"); a == nil || mode(t, a.RootCapFile) != 0o600 {
			t.Errorf("alice's root cap file: %+v", a)
		}
		var homes []api.Entry
		json.Unmarshal([]byte(must("ls", "--json", "dev:homes")), &homes)
		if c, ok := set.Account("carol"); !ok || len(homes) != 1 || c.RootCap != homes[0].WriteCap {
			t.Errorf("carol's root is not dev:homes/carol: %+v", c)
		}
		list := must("account", "list")
		for _, want := range []string{"alice\tpassword\tread-write", "bob\tpassword\tread-only", "dev\tpassword\tread-write"} {
			if !strings.Contains(list, want) {
				t.Errorf("account list %q lacks %q", list, want)
			}
		}
		if strings.Contains(list, "argon2") {
			t.Errorf("account list shows a hash: %q", list)
		}
		must("account", "rm", "alice")
		oneLine(t, runFor(t, time.Minute, bin, "account", "rm", "alice", "--node", clientDir), "no account")
		if p, err := conf.Load(clientDir); err != nil {
			t.Errorf("profile after account rm: %v", err)
		} else if _, ok := p.Account("alice"); ok {
			t.Errorf("alice still in the profile")
		}
	})

	t.Run("cap diminish", func(t *testing.T) {
		must := mustFor(t)
		out := must("cap", "diminish", d.ep.RootCap)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || lines[0] != "write:  "+d.ep.RootCap || !strings.HasPrefix(lines[1], "read:   tarn:dir-ro:") || !strings.HasPrefix(lines[2], "verify: tarn:dir-verify:") {
			t.Fatalf("cap diminish: %q", out)
		}
		ro := strings.TrimPrefix(lines[1], "read:   ")
		if out2 := must("cap", "diminish", ro); out2 != strings.Join(lines[1:], "\n")+"\n" {
			t.Errorf("diminish of the read cap: %q", out2)
		}
		if out := must("cap", "diminish", "tarn:lit:orxxacq"); out != "read:   tarn:lit:orxxacq\n" {
			t.Errorf("diminish of a literal: %q", out)
		}
		oneLine(t, runFor(t, time.Minute, bin, "cap", "diminish", "tarn:dir:short"), "cap diminish")
	})

	t.Run("two clients add 200 entries each", func(t *testing.T) {
		must := mustFor(t)
		other := joinClient(t, bin, root, d)
		must("mkdir", "dev:shared")
		// One tarn mkdir per client with 200 paths: 200 directory
		// changes each, the two clients at once.
		const per = 200
		var wg sync.WaitGroup
		errs := make([]error, 2)
		t0 := time.Now()
		for i, nd := range []string{clientDir, other} {
			args := []string{"mkdir", "--node", nd}
			for j := range per {
				args = append(args, fmt.Sprintf("dev:shared/c%d-%03d", i, j))
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := runFor(t, 5*time.Minute, bin, args...)
				if r.code != 0 {
					errs[i] = fmt.Errorf("client %d: exit %d: %s", i, r.code, r.stderr)
				}
			}()
		}
		wg.Wait()
		t.Logf("two clients added %d entries in %v", 2*per, time.Since(t0).Round(time.Millisecond))
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, nd := range []string{clientDir, other} {
			r := runFor(t, time.Minute, bin, "ls", "dev:shared", "--node", nd)
			names := strings.Fields(r.stdout)
			if len(names) != 2*per {
				t.Errorf("node %s lists %d entries, want %d", filepath.Base(nd), len(names), 2*per)
			}
			want := make([]string, 0, 2*per)
			for i := range 2 {
				for j := range per {
					want = append(want, fmt.Sprintf("c%d-%03d", i, j))
				}
			}
			sort.Strings(names)
			if strings.Join(names, ",") != strings.Join(want, ",") {
				t.Errorf("node %s: the names differ from the ones added", filepath.Base(nd))
			}
		}
		// Each entry is a directory of its own, usable from either client.
		must("cp", filepath.Join(root, "src tree", "top.txt"), "dev:shared/c1-199/")
		if r := runFor(t, time.Minute, bin, "cat", "dev:shared/c1-199/top.txt", "--node", other); r.stdout != "top\n" {
			t.Errorf("cat through the other client: %q %s", r.stdout, r.stderr)
		}
	})

	t.Run("dev restart keeps the root", func(t *testing.T) {
		must := mustFor(t)
		must("mkdir", "dev:before-restart")
		d.stop(t)
		d2 := startDev(t, bin, dir, 3)
		if d2.ep.RootCap != d.ep.RootCap || d2.ep.Account == nil || d2.ep.Account.Password != d.ep.Account.Password {
			t.Errorf("restart changed the dev root or password: %q -> %q", d.ep.RootCap, d2.ep.RootCap)
		}
		if got := must("ls", "dev:"); !strings.Contains(got, "before-restart\n") {
			t.Errorf("ls dev: after a restart: %q", got)
		}
	})
}

// joinClient makes and runs a second client node on the dev grid (its
// own keys and convergence secret), with the alias dev: too.
func joinClient(t *testing.T, bin, root string, d *devGrid) string {
	t.Helper()
	nd := filepath.Join(root, "client-2")
	r := runFor(t, time.Minute, bin, "init", "--profile", "client", "--name", "client-2",
		"--grid-secret", filepath.Join(d.ep.Dir, "grid.secret"), "--introducer", d.ep.Introducer, nd)
	if r.code != 0 {
		t.Fatalf("tarn init client-2: %s", r.stderr)
	}
	p, err := conf.Load(nd)
	if err != nil {
		t.Fatal(err)
	}
	dp, err := conf.Load(d.ep.Client.NodeDir)
	if err != nil {
		t.Fatal(err)
	}
	p.Grid.Name = dp.Grid.Name
	p.Client.APIListen = "127.0.0.1:0"
	p.Client.Shares = dp.Client.Shares
	if err := node.WriteProfile(p); err != nil {
		t.Fatal(err)
	}
	lf, err := os.Create(filepath.Join(nd, "node.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", nd)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); lf.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		in, err := node.ReadInfo(nd)
		if err == nil && in.Pid == cmd.Process.Pid {
			tok, _ := node.ReadToken(in.TokenFile)
			c := &api.Client{BaseURL: in.APIURL, Token: tok}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := c.Status(ctx)
			cancel()
			if err == nil && st.Known >= 3 {
				break
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(nd, "node.log"))
			t.Fatalf("client-2 exited: %s", b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(nd, "node.log"))
			t.Fatalf("client-2 does not see the 3 storage nodes after 60s: %s", bytes.TrimSpace(b))
		}
	}
	if r := runFor(t, time.Minute, bin, "alias", "add", "dev", d.ep.RootCap, "--node", nd); r.code != 0 {
		t.Fatalf("alias add on client-2: %s", r.stderr)
	}
	return nd
}
