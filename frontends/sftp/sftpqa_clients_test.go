package sftp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// servedFast fails t unless the fast path answered some of the client's
// reads and writes (the test is about it, not pkg/sftp's path alone).
func (e *env) servedFast(t *testing.T) {
	t.Helper()
	if e.srv.fastServed.Load() == 0 {
		t.Error("the fast path answered nothing")
	}
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:8]) }

// checkGrid compares the drive's copy of each path with want (sha256).
func (e *env) checkGrid(t *testing.T, want map[string][]byte) {
	t.Helper()
	d := e.drive("alice")
	for p, w := range want {
		got, err := e.get(d, p)
		if err != nil || sum(got) != sum(w) {
			t.Errorf("%s on the grid: %d bytes %s (%v), want %d bytes %s", p, len(got), sum(got), err, len(w), sum(w))
		}
	}
}

// TestSSHFSManyAtOnce: several files copied through one sshfs mount at
// once (one SFTP session: the fast path serves them all), read back
// through the mount and from the grid, then appended to, truncated down
// and up, rewritten in place, renamed over, and saved as editors save
// (a temporary file renamed over the original).
func TestSSHFSManyAtOnce(t *testing.T) {
	needTools(t, "sshfs", "fusermount")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	e := newEnv(t, envOptions{dirCache: time.Second, writeBehind: 100 * time.Millisecond})
	mnt := t.TempDir()
	args := append([]string{"-p", e.port(), "-o", "IdentityFile=" + e.keyFile(t)}, sshOpts...)
	args = append(args, "alice@127.0.0.1:/", mnt)
	if out, err := run(t, "sshfs", args...); err != nil {
		t.Skipf("sshfs cannot mount here: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("fusermount", "-u", "-z", mnt).Run() })
	want := map[string][]byte{}
	sizes := []int{0, 1, 4096, 65537, 1<<20 - 1, 1 << 20, 3<<20 + 5, 5 << 20}
	var wg sync.WaitGroup
	errs := make(chan error, len(sizes))
	for i, n := range sizes {
		p := fmt.Sprintf("/f%d.bin", i)
		b := pseudo(byte(30+i), n)
		want[p] = b
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- os.WriteFile(filepath.Join(mnt, p), b, 0o644)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	readAll := func() {
		t.Helper()
		var wg sync.WaitGroup
		for p, w := range want {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := os.ReadFile(filepath.Join(mnt, p))
				if err != nil || sum(got) != sum(w) {
					t.Errorf("%s through the mount: %d bytes (%v), want %d", p, len(got), err, len(w))
				}
			}()
		}
		wg.Wait()
		e.checkGrid(t, want)
	}
	readAll()

	// Append to a big file and a small one.
	for _, p := range []string{"/f7.bin", "/f2.bin"} {
		f, err := os.OpenFile(filepath.Join(mnt, p), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		more := pseudo(77, 300000)
		if _, err := f.Write(more); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		want[p] = append(append([]byte(nil), want[p]...), more...)
	}
	// Truncate down, then up (zeros).
	if err := os.Truncate(filepath.Join(mnt, "/f6.bin"), 1000); err != nil {
		t.Fatal(err)
	}
	want["/f6.bin"] = want["/f6.bin"][:1000]
	if err := os.Truncate(filepath.Join(mnt, "/f3.bin"), 100000); err != nil {
		t.Fatal(err)
	}
	want["/f3.bin"] = append(append([]byte(nil), want["/f3.bin"]...), make([]byte, 100000-65537)...)
	// Rewrite in the middle of an existing file.
	f, err := os.OpenFile(filepath.Join(mnt, "/f5.bin"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	patch := []byte("PATCHED IN THE MIDDLE")
	if _, err := f.WriteAt(patch, 500000); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, len(patch))
	if _, err := f.ReadAt(back, 500000); err != nil || !bytes.Equal(back, patch) {
		t.Fatalf("read back through the same open file: %q %v", back, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	w := append([]byte(nil), want["/f5.bin"]...)
	copy(w[500000:], patch)
	want["/f5.bin"] = w
	// Rename over an existing file.
	if err := os.Rename(filepath.Join(mnt, "/f1.bin"), filepath.Join(mnt, "/f4.bin")); err != nil {
		t.Fatal(err)
	}
	want["/f4.bin"] = want["/f1.bin"]
	delete(want, "/f1.bin")
	// An editor's save: write a temporary file, fsync, rename it over.
	tmp := filepath.Join(mnt, ".f0.bin.swp")
	saved := []byte(strings.Repeat("edited line\n", 5000))
	tf, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	tf.Write(saved)
	tf.Sync()
	if err := tf.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(mnt, "/f0.bin")); err != nil {
		t.Fatal(err)
	}
	want["/f0.bin"] = saved
	readAll()
	if _, err := e.drive("alice").Stat(ctxT(t), "/f1.bin"); err == nil {
		t.Error("the renamed file is still there")
	}
	e.servedFast(t)
}

// TestRcloneTransfersAndStreams: rclone copies files of many sizes up
// with 8 transfers, checks them by download, syncs a change, and copies
// them down with multi-thread streams (reads of one file at several
// offsets on several handles at once).
func TestRcloneTransfersAndStreams(t *testing.T) {
	needTools(t, "rclone")
	e := newEnv(t, envOptions{dirCache: time.Second, writeBehind: 100 * time.Millisecond})
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
	rclone := func(args ...string) {
		t.Helper()
		cmd := exec.Command("rclone", args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rclone %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	src := t.TempDir()
	want := map[string][]byte{}
	for i, n := range []int{0, 10, 32768, 32769, 1 << 20, 3<<20 + 7, 9<<20 + 3, 100, 200000, 4 << 20} {
		name := fmt.Sprintf("r%d.bin", i)
		want["/rc/"+name] = pseudo(byte(60+i), n)
		os.WriteFile(filepath.Join(src, name), want["/rc/"+name], 0o644)
	}
	rclone("copy", "--transfers", "8", src, "t:/rc")
	e.checkGrid(t, want)
	rclone("check", "--download", src, "t:/rc")
	// A changed and a removed file, synced.
	want["/rc/r5.bin"] = pseudo(99, 2<<20+1)
	os.WriteFile(filepath.Join(src, "r5.bin"), want["/rc/r5.bin"], 0o644)
	os.Remove(filepath.Join(src, "r7.bin"))
	delete(want, "/rc/r7.bin")
	rclone("sync", "--transfers", "8", src, "t:/rc")
	e.checkGrid(t, want)
	rclone("check", "--download", src, "t:/rc")
	dst := t.TempDir()
	rclone("copy", "--transfers", "8", "--multi-thread-streams", "4", "--multi-thread-cutoff", "1M", "t:/rc", dst)
	for p, w := range want {
		got, err := os.ReadFile(filepath.Join(dst, strings.TrimPrefix(p, "/rc/")))
		if err != nil || sum(got) != sum(w) {
			t.Errorf("%s downloaded: %d bytes (%v), want %d", p, len(got), err, len(w))
		}
	}
	e.servedFast(t)
}

// TestOpenSSHQA: OpenSSH's sftp with 256 requests in flight (-R) of
// 255 KiB (-B), put, get, reput and reget of a big file, and scp in both
// modes, every byte compared.
func TestOpenSSHQA(t *testing.T) {
	needTools(t, "sftp", "scp", "sshpass")
	e := newEnv(t, envOptions{dirCache: time.Second, writeBehind: 100 * time.Millisecond})
	local := t.TempDir()
	big := pseudo(21, 12<<20+333)
	os.WriteFile(filepath.Join(local, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(local, "part.bin"), big[:5<<20+1], 0o644)
	os.WriteFile(filepath.Join(local, "got-part.bin"), big[:3<<20-7], 0o644)
	batch := strings.Join([]string{
		"put " + local + "/big.bin big.bin",
		"put " + local + "/part.bin resumed.bin",
		"reput " + local + "/big.bin resumed.bin",
		"get big.bin " + local + "/got.bin",
		"reget big.bin " + local + "/got-part.bin",
		"ls -l",
	}, "\n") + "\n"
	bf := filepath.Join(local, "batch")
	os.WriteFile(bf, []byte(batch), 0o644)
	for _, opt := range [][]string{{"-R", "256", "-B", "261120"}, {"-R", "1", "-B", "1000"}, {"-B", "32768"}} {
		args := append([]string{"-p", alicePW, "sftp", "-o", "BatchMode=no", "-b", bf}, opt...)
		args = append(append(args, sshOpts...), "-P", e.port(), "alice@127.0.0.1")
		if out, err := run(t, "sshpass", args...); err != nil {
			t.Fatalf("sftp %v: %v\n%s", opt, err, out)
		}
		e.checkGrid(t, map[string][]byte{"/big.bin": big, "/resumed.bin": big})
		for _, n := range []string{"got.bin", "got-part.bin"} {
			if got, _ := os.ReadFile(filepath.Join(local, n)); sum(got) != sum(big) {
				t.Errorf("sftp %v: %s %d bytes, want %d", opt, n, len(got), len(big))
			}
		}
		os.WriteFile(filepath.Join(local, "got-part.bin"), big[:1<<20+9], 0o644)
	}
	for _, mode := range [][]string{nil, {"-O"}} {
		args := append([]string{"-p", alicePW, "scp"}, mode...)
		args = append(append(args, sshOpts...), "-P", e.port(), filepath.Join(local, "big.bin"), filepath.Join(local, "part.bin"), "alice@127.0.0.1:/")
		if out, err := run(t, "sshpass", args...); err != nil {
			t.Fatalf("scp %v up: %v\n%s", mode, err, out)
		}
		e.checkGrid(t, map[string][]byte{"/big.bin": big, "/part.bin": big[:5<<20+1]})
		down := t.TempDir()
		args = append([]string{"-p", alicePW, "scp"}, mode...)
		args = append(append(args, sshOpts...), "-P", e.port(), "alice@127.0.0.1:/big.bin", down+"/")
		if out, err := run(t, "sshpass", args...); err != nil {
			t.Fatalf("scp %v down: %v\n%s", mode, err, out)
		}
		if got, _ := os.ReadFile(filepath.Join(down, "big.bin")); sum(got) != sum(big) {
			t.Errorf("scp %v down: %d bytes, want %d", mode, len(got), len(big))
		}
	}
	e.servedFast(t)
}
