package sftp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// The real OpenSSH clients against the in-process server: sftp in batch
// mode (password through sshpass, and key), scp in SFTP and legacy (-O)
// modes, recursive both ways.

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

// keyFile writes the test key for OpenSSH's -i.
func (e *env) keyFile(t *testing.T) string {
	block, err := ssh.MarshalPrivateKey(e.key, "test")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) port() string {
	_, port, _ := net.SplitHostPort(e.srv.Addr())
	return port
}

var sshOpts = []string{"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish in 3 minutes:\n%s", name, out.String())
		return "", nil
	}
}

// makeTree writes a tree with nested and empty folders, zero-byte files,
// Unicode and space names; it returns path -> sha256 ("dir" for folders).
func makeTree(t *testing.T, root string) map[string]string {
	files := map[string]int{
		"a.txt":                    100,
		"zero":                     0,
		"with space.bin":           70_000,
		"ünïcødé ✓.txt":            3,
		"nested/b.bin":             200_000,
		"nested/deeper/c.txt":      10,
		"nested/deeper/zero too":   0,
		"nested/deeper/deepest/dd": 5,
	}
	dirs := []string{"empty", "nested/empty inner"}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, n := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, pseudo(byte(n), n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return treeOf(t, root)
}

func treeOf(t *testing.T, root string) map[string]string {
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		out[rel] = hex.EncodeToString(h[:8])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffTrees(want, got map[string]string) string {
	var d []string
	for p, h := range want {
		if got[p] != h {
			d = append(d, fmt.Sprintf("%s: want %s, got %q", p, h, got[p]))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			d = append(d, p+": unexpected")
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

// TestOpenSSHBatch drives OpenSSH's sftp with a batch file: put, get,
// ls -l, mkdir, rename, chmod, df, reput, reget, rm, rmdir.
func TestOpenSSHBatch(t *testing.T) {
	needTools(t, "sftp", "sshpass")
	e := newEnv(t, envOptions{})
	local := t.TempDir()
	big := pseudo(9, 3<<20+17)
	os.WriteFile(filepath.Join(local, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(local, "small.txt"), []byte("small\n"), 0o644)
	os.WriteFile(filepath.Join(local, "half.bin"), big[:1<<20], 0o644)
	os.Mkdir(filepath.Join(local, "out"), 0o755)
	os.WriteFile(filepath.Join(local, "out", "resumed.bin"), big[:(1<<20)+5], 0o644)
	batch := strings.Join([]string{
		"mkdir d",
		"mkdir e",
		"put " + local + "/big.bin d/big.bin",
		"put " + local + "/small.txt",
		"ls -l",
		"ls -l d",
		"rename small.txt d/renamed.txt",
		"chmod 600 d/renamed.txt",
		"ls -l d",
		"get d/big.bin " + local + "/out/big.bin",
		"get d/renamed.txt " + local + "/out/renamed.txt",
		"df",
		"put " + local + "/half.bin resume.bin",
		"reput " + local + "/big.bin resume.bin",
		"reget d/big.bin " + local + "/out/resumed.bin",
		"-rmdir d",
		"rmdir e",
		"rm d/renamed.txt",
		"-ln -s d/big.bin link",
		"ls -l",
	}, "\n") + "\n"
	bf := filepath.Join(local, "batch")
	os.WriteFile(bf, []byte(batch), 0o644)
	args := append([]string{"-p", alicePW, "sftp", "-o", "BatchMode=no", "-b", bf}, sshOpts...)
	args = append(args, "-P", e.port(), "alice@127.0.0.1")
	out, err := run(t, "sshpass", args...)
	if err != nil {
		t.Fatalf("sftp batch: %v\n%s", err, out)
	}
	t.Logf("sftp output:\n%s", out)
	for _, want := range []string{
		"-rw-------", // chmod 600 shown by ls -l
		"big.bin",
		"Size", // df's header
		`remote rmdir "/d": Failure`, "Operation unsupported",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for name, want := range map[string][]byte{"big.bin": big, "renamed.txt": []byte("small\n"), "resumed.bin": big} {
		got, _ := os.ReadFile(filepath.Join(local, "out", name))
		if !bytes.Equal(got, want) {
			t.Errorf("local %s: %d bytes, want %d identical", name, len(got), len(want))
		}
	}
	d := e.drive("alice")
	if got, err := e.get(d, "/resume.bin"); err != nil || !bytes.Equal(got, big) {
		t.Errorf("reput result: %d bytes (%v), want %d identical", len(got), err, len(big))
	}
	if _, err := d.Stat(ctxT(t), "/e"); err == nil {
		t.Error("rmdir e left it")
	}
	if _, err := d.Stat(ctxT(t), "/link"); err == nil {
		t.Error("a symlink was made")
	}

	// Key login, non-interactive.
	bf2 := filepath.Join(local, "batch2")
	os.WriteFile(bf2, []byte("ls\n"), 0o644)
	args = append([]string{"-b", bf2, "-i", e.keyFile(t)}, sshOpts...)
	args = append(args, "-P", e.port(), "alice@127.0.0.1")
	if out, err := run(t, "sftp", args...); err != nil || !strings.Contains(out, "resume.bin") {
		t.Fatalf("sftp with a key: %v\n%s", err, out)
	}
	// Read-only account: reads work, writes are "Permission denied".
	e.put(e.drive("bob"), "/shared.txt", []byte("for bob"))
	bf3 := filepath.Join(local, "batch3")
	os.WriteFile(bf3, []byte("get shared.txt "+local+"/out/shared.txt\n-put "+local+"/small.txt\n-mkdir x\n-rm shared.txt\n"), 0o644)
	args = append([]string{"-p", bobPW, "sftp", "-o", "BatchMode=no", "-b", bf3}, sshOpts...)
	args = append(args, "-P", e.port(), "bob@127.0.0.1")
	out, err = run(t, "sshpass", args...)
	if err != nil || strings.Count(out, "Permission denied") != 3 {
		t.Fatalf("read-only batch: %v, want 3 refusals:\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(local, "out", "shared.txt")); string(b) != "for bob" {
		t.Fatalf("read-only get: %q", b)
	}
	// Wrong password.
	args = append([]string{"-p", "wrong", "sftp", "-o", "BatchMode=no", "-b", bf2}, sshOpts...)
	args = append(args, "-P", e.port(), "alice@127.0.0.1")
	if out, err := run(t, "sshpass", args...); err == nil {
		t.Fatalf("a wrong password logged in:\n%s", out)
	}
}

// TestSCP copies a tree up and down with OpenSSH's scp, in SFTP mode and
// with the legacy protocol (-O), with -r and -p.
func TestSCP(t *testing.T) {
	needTools(t, "scp")
	e := newEnv(t, envOptions{})
	key := e.keyFile(t)
	src := filepath.Join(t.TempDir(), "tree")
	want := makeTree(t, src)
	for _, mode := range []struct {
		name string
		flag []string
	}{
		{"sftp", nil},
		{"legacy", []string{"-O"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			base := append(append([]string{"-i", key, "-P", e.port()}, sshOpts...), mode.flag...)
			remote := "alice@127.0.0.1:/" + mode.name
			if out, err := run(t, "scp", append(base, "-r", "-p", src, remote)...); err != nil {
				t.Fatalf("scp up: %v\n%s", err, out)
			}
			dst := filepath.Join(t.TempDir(), "down")
			if out, err := run(t, "scp", append(base, "-r", "-p", remote, dst)...); err != nil {
				t.Fatalf("scp down: %v\n%s", err, out)
			}
			if d := diffTrees(want, treeOf(t, dst)); d != "" {
				t.Fatalf("tree after the round trip differs:\n%s", d)
			}
			// -p kept the mtimes.
			st1, _ := os.Stat(filepath.Join(src, "a.txt"))
			st2, _ := os.Stat(filepath.Join(dst, "a.txt"))
			if st1.ModTime().Unix() != st2.ModTime().Unix() {
				t.Errorf("mtime %v, want %v", st2.ModTime(), st1.ModTime())
			}
			// One file to a new name, and back.
			one := filepath.Join(t.TempDir(), "one")
			if out, err := run(t, "scp", append(base, filepath.Join(src, "with space.bin"), remote+"/single.bin")...); err != nil {
				t.Fatalf("scp a file: %v\n%s", err, out)
			}
			if out, err := run(t, "scp", append(base, remote+"/single.bin", one)...); err != nil {
				t.Fatalf("scp a file down: %v\n%s", err, out)
			}
			a, _ := os.ReadFile(filepath.Join(src, "with space.bin"))
			b, _ := os.ReadFile(one)
			if !bytes.Equal(a, b) {
				t.Fatal("single file differs")
			}
			// A missing source fails with a message.
			if out, err := run(t, "scp", append(base, remote+"/missing", one)...); err == nil {
				t.Fatalf("scp of a missing file succeeded:\n%s", out)
			}
		})
	}
}

// TestRclone copies a tree up with rclone's sftp backend, checks it
// (comparing bytes) and copies it back.
func TestRclone(t *testing.T) {
	needTools(t, "rclone")
	e := newEnv(t, envOptions{})
	obscured, err := exec.Command("rclone", "obscure", alicePW).Output()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"RCLONE_CONFIG=" + filepath.Join(t.TempDir(), "rclone.conf"),
		"RCLONE_CONFIG_T_TYPE=sftp",
		"RCLONE_CONFIG_T_HOST=127.0.0.1",
		"RCLONE_CONFIG_T_PORT=" + e.port(),
		"RCLONE_CONFIG_T_USER=alice",
		"RCLONE_CONFIG_T_PASS=" + strings.TrimSpace(string(obscured)),
		"RCLONE_CONFIG_T_SHELL_TYPE=none",
		"RCLONE_CONFIG_T_DISABLE_HASHCHECK=true",
	}
	rclone := func(args ...string) (string, error) {
		cmd := exec.Command("rclone", args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	src := filepath.Join(t.TempDir(), "tree")
	want := makeTree(t, src)
	out, err := rclone("copy", "--create-empty-src-dirs", src, "t:/rc")
	if err != nil {
		t.Fatalf("rclone copy up: %v\n%s", err, out)
	}
	// host/grid refuses a directory read that races this node's own
	// publish of the next version as a rollback; rclone retries and
	// succeeds, but may then skip the mtime it failed to set.
	raced := strings.Contains(out, "older than a version already seen")
	if raced {
		t.Logf("rclone met the host/grid rollback race (retried):\n%s", out)
	}
	if out, err := rclone("check", "--download", src, "t:/rc"); err != nil {
		t.Fatalf("rclone check: %v\n%s", err, out)
	}
	dst := filepath.Join(t.TempDir(), "down")
	if out, err := rclone("copy", "--create-empty-src-dirs", "t:/rc", dst); err != nil {
		t.Fatalf("rclone copy down: %v\n%s", err, out)
	}
	if d := diffTrees(want, treeOf(t, dst)); d != "" {
		t.Fatalf("tree after the round trip differs:\n%s", d)
	}
	st1, _ := os.Stat(filepath.Join(src, "nested/b.bin"))
	st2, _ := os.Stat(filepath.Join(dst, "nested/b.bin"))
	if !raced && !st1.ModTime().Truncate(time.Second).Equal(st2.ModTime().Truncate(time.Second)) {
		t.Errorf("mtime %v, want %v", st2.ModTime(), st1.ModTime())
	}
	if out, err := rclone("about", "t:"); err != nil || !strings.Contains(out, "Free") {
		t.Errorf("rclone about: %v\n%s", err, out)
	}
}

// TestSSHFS mounts the drive with sshfs and writes, appends, rewrites,
// renames and lists through the kernel.
func TestSSHFS(t *testing.T) {
	needTools(t, "sshfs", "fusermount")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	e := newEnv(t, envOptions{})
	mnt := t.TempDir()
	args := append([]string{"-p", e.port(), "-o", "IdentityFile=" + e.keyFile(t)}, sshOpts...)
	args = append(args, "alice@127.0.0.1:/", mnt)
	if out, err := run(t, "sshfs", args...); err != nil {
		t.Skipf("sshfs cannot mount here: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("fusermount", "-u", "-z", mnt).Run() })
	p := filepath.Join(mnt, "notes.txt")
	if err := os.WriteFile(p, []byte("line 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("line 2\n")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p, filepath.Join(mnt, "dir", "notes.txt")); err != nil {
		t.Fatal(err)
	}
	big := pseudo(4, 3<<20)
	if err := os.WriteFile(filepath.Join(mnt, "dir", "big.bin"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := e.get(e.drive("alice"), "/dir/notes.txt")
	if err != nil || string(got) != "line 1\nline 2\n" {
		t.Fatalf("notes after append and rename: %q %v", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "dir", "big.bin")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big.bin through the mount: %d bytes (%v)", len(got), err)
	}
	ents, err := os.ReadDir(filepath.Join(mnt, "dir"))
	if err != nil || len(ents) != 2 {
		t.Fatalf("listing: %v %v", ents, err)
	}
	if st, err := os.Stat(filepath.Join(mnt, "dir", "big.bin")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode through the mount: %v %v", st, err)
	}
}
