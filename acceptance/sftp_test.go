//go:build acceptance

package acceptance

// SFTP acceptance: the real OpenSSH sftp (batch mode, password through
// sshpass), scp in SFTP mode and legacy mode (-O), and rclone's sftp
// backend against the SFTP frontend of a `tarn dev` grid, found in
// endpoints.json:
//
//	"sftp": {"addr": "127.0.0.1:PORT", "user": "...", "password": "...",
//	         "read_only_user": "...", "read_only_password": "..."}
//
// (the read-only pair is optional).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

type sftpEndpoint struct {
	Addr             string `json:"addr"`
	User             string `json:"user"`
	Password         string `json:"password"`
	ReadOnlyUser     string `json:"read_only_user"`
	ReadOnlyPassword string `json:"read_only_password"`
}

func (e sftpEndpoint) host() string { h, _, _ := net.SplitHostPort(e.Addr); return h }
func (e sftpEndpoint) port() string { _, p, _ := net.SplitHostPort(e.Addr); return p }

// sftpGrid starts a dev grid and returns its SFTP endpoint (the test is
// skipped when tarn dev does not run SFTP or a client tool is missing).
func sftpGrid(t *testing.T, tools ...string) (*Grid, sftpEndpoint) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	if !haveDev() {
		t.Skip("the tarn binary has no tarn dev")
	}
	g := startGrid(t, GridOptions{})
	b, err := os.ReadFile(filepath.Join(g.Dir, "endpoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ep struct {
		SFTP *sftpEndpoint `json:"sftp"`
	}
	if err := json.Unmarshal(b, &ep); err != nil {
		t.Fatalf("endpoints.json: %v", err)
	}
	if ep.SFTP == nil || ep.SFTP.Addr == "" {
		t.Skip("tarn dev writes no sftp endpoint yet (node.StartSFTP is not wired in)")
	}
	return g, *ep.SFTP
}

var sftpSSHOpts = []string{"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"}

// sftpRun runs a client tool with a time limit and returns its output.
func sftpRun(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish in 10 minutes:\n%s", name, clip(out.String()))
	}
	return out.String(), err
}

// sftpBatch runs OpenSSH's sftp with a batch file, logging in with pw.
func sftpBatch(t *testing.T, ep sftpEndpoint, user, pw, batch string) (string, error) {
	t.Helper()
	bf := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(bf, []byte(batch), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-p", pw, "sftp", "-o", "BatchMode=no", "-b", bf}, sftpSSHOpts...)
	args = append(args, "-P", ep.port(), user+"@"+ep.host())
	return sftpRun(t, nil, "sshpass", args...)
}

// sftpMakeTree writes the generated tree: nested and empty folders,
// zero-byte files, Unicode and space names, and one file over 100 MiB.
func sftpMakeTree(t *testing.T, root string, bigSize int64) {
	files := map[string]int64{
		"readme.txt":                    1_000,
		"zero":                          0,
		"with space.bin":                300_000,
		"ünïcødé ✓ 名前.txt":              77,
		"nested/a.bin":                  2 << 20,
		"nested/deeper/b.txt":           10,
		"nested/deeper/zero too":        0,
		"nested/deeper/deepest/c d.bin": 65_537,
		"big.bin":                       bigSize,
	}
	for _, d := range []string{"empty", "nested/empty inner", "nested/deeper/deepest"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	seed := uint64(100)
	for p, n := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		f, err := os.Create(full)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, newGen(seed, n)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		seed++
	}
}

// sftpTreeHashes is path -> sha256 ("dir" for a folder) of a local tree.
func sftpTreeHashes(t *testing.T, root string) map[string]string {
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
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		io.Copy(h, f)
		out[rel] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sftpTreeDiff(want, got map[string]string) string {
	var d []string
	for p, h := range want {
		if got[p] != h {
			d = append(d, fmt.Sprintf("%s: want %.12s, got %.12q", p, h, got[p]))
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

// TestSFTPBatch: OpenSSH's sftp with a batch of put, get, ls -l, mkdir,
// rename, chmod, df, reput, reget, rm, rmdir; checked by its output and
// by the bytes. A wrong password and a read-only account are refused.
func TestSFTPBatch(t *testing.T) {
	_, ep := sftpGrid(t, "sftp", "sshpass")
	local := t.TempDir()
	const size = 24 << 20
	data := genBytes(7, size)
	os.WriteFile(filepath.Join(local, "f.bin"), data, 0o644)
	os.WriteFile(filepath.Join(local, "half.bin"), data[:size/2], 0o644)
	os.Mkdir(filepath.Join(local, "out"), 0o755)
	os.WriteFile(filepath.Join(local, "out", "resumed.bin"), data[:size/3], 0o644)
	batch := strings.Join([]string{
		"mkdir acc",
		"mkdir acc/gone",
		"put " + local + "/f.bin acc/f.bin",
		"ls -l acc",
		"rename acc/f.bin acc/g.bin",
		"chmod 600 acc/g.bin",
		"ls -l acc",
		"get acc/g.bin " + local + "/out/g.bin",
		"df -h",
		"put " + local + "/half.bin acc/r.bin",
		"reput " + local + "/f.bin acc/r.bin",
		"reget acc/g.bin " + local + "/out/resumed.bin",
		"rmdir acc/gone",
		"-rmdir acc",
		"rm acc/r.bin",
		"ls -l acc",
	}, "\n") + "\n"
	start := time.Now()
	out, err := sftpBatch(t, ep, ep.User, ep.Password, batch)
	if err != nil {
		t.Fatalf("sftp batch: %v\n%s", err, out)
	}
	t.Logf("sftp batch output:\n%s", out)
	figure(t, "sftp batch with %d MiB put, get, reput, reget: %v", size>>20, time.Since(start).Round(time.Millisecond))
	for _, want := range []string{"-rw-------", "g.bin", "Size", `remote rmdir "/acc": Failure`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if last := out[strings.LastIndex(out, "sftp> ls -l acc"):]; strings.Contains(last, "r.bin") || !strings.Contains(last, "g.bin") {
		t.Errorf("the last listing is wrong:\n%s", last)
	}
	for name := range map[string]bool{"g.bin": true, "resumed.bin": true} {
		got, _ := os.ReadFile(filepath.Join(local, "out", name))
		if !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, want %d identical", name, len(got), len(data))
		}
	}
	// What reput made, read back.
	out, err = sftpBatch(t, ep, ep.User, ep.Password, strings.Join([]string{
		"put " + local + "/half.bin acc/r2.bin",
		"reput " + local + "/f.bin acc/r2.bin",
		"get acc/r2.bin " + local + "/out/r2.bin",
	}, "\n")+"\n")
	if err != nil {
		t.Fatalf("reput batch: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(local, "out", "r2.bin")); !bytes.Equal(got, data) {
		t.Errorf("reput result: %d bytes, want %d identical", len(got), len(data))
	}

	if out, err := sftpBatch(t, ep, ep.User, "wrong password", "ls\n"); err == nil {
		t.Fatalf("a wrong password logged in:\n%s", out)
	}
	if ep.ReadOnlyUser != "" {
		out, err := sftpBatch(t, ep, ep.ReadOnlyUser, ep.ReadOnlyPassword, "ls\nput "+local+"/half.bin x.bin\n")
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Fatalf("read-only account put: %v\n%s", err, out)
		}
	} else {
		t.Log("endpoints.json names no read-only account: read-only refusal not checked here (the unit tests check it)")
	}
}

// TestSCPTree: scp -r up and down, in SFTP mode and with -O (legacy),
// of the generated tree with a file over 100 MiB; byte-identical.
func TestSCPTree(t *testing.T) {
	_, ep := sftpGrid(t, "scp", "sshpass")
	src := filepath.Join(t.TempDir(), "tree")
	sftpMakeTree(t, src, 101<<20)
	want := sftpTreeHashes(t, src)
	for _, mode := range []struct {
		name string
		flag []string
	}{
		{"sftp", nil},
		{"legacy", []string{"-O"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			base := append([]string{"-p", ep.Password, "scp", "-P", ep.port()}, sftpSSHOpts...)
			base = append(base, mode.flag...)
			remote := fmt.Sprintf("%s@%s:/scp-%s", ep.User, ep.host(), mode.name)
			start := time.Now()
			if out, err := sftpRun(t, nil, "sshpass", append(base, "-r", "-p", src, remote)...); err != nil {
				t.Fatalf("scp up: %v\n%s", err, out)
			}
			up := time.Since(start)
			dst := filepath.Join(t.TempDir(), "down")
			start = time.Now()
			if out, err := sftpRun(t, nil, "sshpass", append(base, "-r", "-p", remote, dst)...); err != nil {
				t.Fatalf("scp down: %v\n%s", err, out)
			}
			down := time.Since(start)
			if d := sftpTreeDiff(want, sftpTreeHashes(t, dst)); d != "" {
				t.Fatalf("the tree came back different:\n%s", d)
			}
			figure(t, "scp %s -r of a 104 MiB tree: up %v, down %v", mode.name, up.Round(time.Millisecond), down.Round(time.Millisecond))
		})
	}
}

// TestRcloneSFTP: rclone's sftp backend copies the generated tree up;
// rclone check (comparing the bytes) finds no difference; the copy back
// is byte-identical.
func TestRcloneSFTP(t *testing.T) {
	_, ep := sftpGrid(t, "rclone")
	obscured, err := exec.Command("rclone", "obscure", ep.Password).Output()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"RCLONE_CONFIG=" + filepath.Join(t.TempDir(), "rclone.conf"),
		"RCLONE_CONFIG_TARN_TYPE=sftp",
		"RCLONE_CONFIG_TARN_HOST=" + ep.host(),
		"RCLONE_CONFIG_TARN_PORT=" + ep.port(),
		"RCLONE_CONFIG_TARN_USER=" + ep.User,
		"RCLONE_CONFIG_TARN_PASS=" + strings.TrimSpace(string(obscured)),
		"RCLONE_CONFIG_TARN_SHELL_TYPE=none",
		"RCLONE_CONFIG_TARN_DISABLE_HASHCHECK=true",
	}
	src := filepath.Join(t.TempDir(), "tree")
	sftpMakeTree(t, src, 101<<20)
	want := sftpTreeHashes(t, src)
	start := time.Now()
	if out, err := sftpRun(t, env, "rclone", "copy", "--create-empty-src-dirs", src, "tarn:/rclone"); err != nil {
		t.Fatalf("rclone copy up: %v\n%s", err, out)
	}
	up := time.Since(start)
	if out, err := sftpRun(t, env, "rclone", "check", "--download", src, "tarn:/rclone"); err != nil {
		t.Fatalf("rclone check: %v\n%s", err, out)
	}
	dst := filepath.Join(t.TempDir(), "down")
	start = time.Now()
	if out, err := sftpRun(t, env, "rclone", "copy", "--create-empty-src-dirs", "tarn:/rclone", dst); err != nil {
		t.Fatalf("rclone copy down: %v\n%s", err, out)
	}
	down := time.Since(start)
	if d := sftpTreeDiff(want, sftpTreeHashes(t, dst)); d != "" {
		t.Fatalf("the tree came back different:\n%s", d)
	}
	out, err := sftpRun(t, env, "rclone", "about", "tarn:")
	t.Logf("rclone about (statvfs): %v\n%s", err, out)
	figure(t, "rclone sftp of a 104 MiB tree: up %v, down %v", up.Round(time.Millisecond), down.Round(time.Millisecond))
}

// TestSFTPLargeFile: a 1 GiB put and get through OpenSSH's sftp, byte
// identical, with the client node's peak RSS under 256 MiB (uploads are
// spooled to disk, reads stream in bounded blocks) and the speeds as
// figures.
func TestSFTPLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	g, ep := sftpGrid(t, "sftp", "sshpass")
	const size = 1 << 30
	local := t.TempDir()
	src := filepath.Join(local, "one.gib")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, newGen(42, size)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pid := g.Client.Pid
	peak := func() float64 {
		v, err := vmKB(pid, "VmHWM")
		if err != nil {
			t.Fatalf("read VmHWM of the client (pid %d): %v", pid, err)
		}
		return float64(v) / 1024
	}
	resetPeakRSS(pid)
	start := time.Now()
	if out, err := sftpBatch(t, ep, ep.User, ep.Password, "put "+src+" /one.gib\n"); err != nil {
		t.Fatalf("put: %v\n%s", err, out)
	}
	up := time.Since(start)
	upRSS := peak()
	resetPeakRSS(pid)
	dst := filepath.Join(local, "back.gib")
	start = time.Now()
	if out, err := sftpBatch(t, ep, ep.User, ep.Password, "get /one.gib "+dst+"\n"); err != nil {
		t.Fatalf("get: %v\n%s", err, out)
	}
	down := time.Since(start)
	downRSS := peak()
	h := sha256.New()
	b, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(h, b)
	b.Close()
	if got, want := hex.EncodeToString(h.Sum(nil)), genHash(42, size); got != want {
		t.Fatal("the 1 GiB file came back different")
	}
	figure(t, "sftp 1 GiB: put %.1f MiB/s, get %.1f MiB/s; client node peak RSS %.0f MiB up, %.0f MiB down",
		mbps(size, up), mbps(size, down), upRSS, downRSS)
	if upRSS > 256 || downRSS > 256 {
		t.Fatalf("client node peak RSS %.0f MiB up, %.0f MiB down: over 256 MiB", upRSS, downRSS)
	}
}
