package sftp

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRcloneDefaults copies small files with rclone configured with a
// host, port, user and password only, as a user who has read nothing
// would: rclone then detects a shell (it takes the refused detection
// command for a Unix shell), probes six hash commands, sets each file's
// mtime after its close and reads it back. The probes are per rclone
// run, not per file (each is one refused exec session), every file's
// mtime is kept in the folder and read back over SFTP, and the bytes
// compare. The drive runs as the node runs it: a one-second directory
// cache and a 100 ms write-behind of links.
func TestRcloneDefaults(t *testing.T) {
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
	}
	rclone := func(args ...string) (string, error) {
		cmd := exec.Command("rclone", args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	const files = 40
	src := t.TempDir()
	base := time.Date(2019, 3, 14, 15, 9, 26, 0, time.UTC)
	mtimes := map[string]time.Time{}
	for i := range files {
		name := fmt.Sprintf("f%03d.bin", i)
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, pseudo(byte(i), 4096), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * 7 * time.Hour)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		mtimes[name] = mt
	}
	logStart := len(e.logBuf.String())
	out, err := rclone("copy", "--transfers", "4", "--checkers", "8", "--retries", "1", "-vv", src, "t:/small")
	if err != nil {
		t.Fatalf("rclone copy with its defaults: %v\n%s", err, out)
	}
	log := e.logBuf.String()[logStart:]
	// rclone 1.60: "echo ${ShellId}%ComSpec%", then md5sum, md5 -r,
	// rclone md5sum, sha1sum, sha1 -r, rclone sha1sum: at most 7 refused
	// commands however many files; each its own session.
	refused := strings.Count(log, " refused: ")
	sessions := strings.Count(log, "sftp session")
	t.Logf("%d files: %d commands refused, %d sftp sessions", files, refused, sessions)
	if strings.Contains(log, "scp refused") {
		t.Errorf("a probe was answered as a bad scp command, not refused as a command:\n%s", log)
	}
	if refused == 0 || refused > 7 {
		t.Errorf("%d commands refused for %d files, want 1 to 7 (rclone's probes, once per run)\n%s", refused, files, log)
	}
	if sessions > 4+8+1 {
		t.Errorf("%d sftp sessions for %d files, want at most one per transfer and checker and one more", sessions, files)
	}
	if !strings.Contains(out, `Setting hash command for md5 to "none"`) {
		t.Logf("rclone did not say it gave up on md5 hashes; its output:\n%s", out)
	}

	// Every mtime is in the folder (a fresh drive over the same store, and
	// a new SFTP session, as rclone's next run would see it).
	d := e.drive("alice")
	c := e.client("alice", alicePW)
	for name, want := range mtimes {
		p := "/small/" + name
		info, err := d.Stat(ctxT(t), p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		if !info.ModTime().Equal(want) || info.Size() != 4096 {
			t.Errorf("%s: mtime %v size %d in the folder, want %v and 4096", p, info.ModTime(), info.Size(), want)
		}
		fi, err := c.Stat(p)
		if err != nil {
			t.Fatalf("sftp stat %s: %v", p, err)
		}
		if !fi.ModTime().Equal(want) {
			t.Errorf("%s: sftp stat mtime %v, want %v", p, fi.ModTime().UTC(), want)
		}
	}
	// rclone reads them back the same way: a second copy finds every file
	// up to date (same size and mtime) and transfers nothing.
	out, err = rclone("copy", "-v", src, "t:/small")
	if err != nil {
		t.Fatalf("second rclone copy: %v\n%s", err, out)
	}
	if strings.Contains(out, "Copied") {
		t.Errorf("second copy transferred files again (mtimes not read back):\n%s", out)
	}
	dst := t.TempDir()
	if out, err := rclone("copy", "t:/small", dst); err != nil {
		t.Fatalf("rclone copy down: %v\n%s", err, out)
	}
	for name := range mtimes {
		a, _ := os.ReadFile(filepath.Join(src, name))
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s came back different (%v)", name, err)
		}
	}
}

// TestExecProbesRefused: commands rclone (and other clients) probe with
// are refused as not scp, whatever their shell syntax, while an scp
// command with shell syntax is still told what is wrong with it.
func TestExecProbesRefused(t *testing.T) {
	for _, tc := range []struct {
		cmd     string
		wantErr string
	}{
		{"echo ${ShellId}%ComSpec%", errNotSCP.Error()},
		{"md5sum", errNotSCP.Error()},
		{"rclone sha1sum", errNotSCP.Error()},
		{"df -k /", errNotSCP.Error()},
		{"ls | head", errNotSCP.Error()},
		{"\tscp -f a; rm -rf /", "shell syntax"},
		{"/usr/bin/scp -t 'a' && x", "shell syntax"},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			_, err := parseSCPCommand(tc.cmd)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("parseSCPCommand(%q) = %v, want an error with %q", tc.cmd, err, tc.wantErr)
			}
		})
	}
}
