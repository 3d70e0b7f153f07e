//go:build acceptance

package acceptance

// A Linux desktop's WebDAV mount: davfs2 (the kernel sees a FUSE file
// system; davfs2 locks every file it opens for writing and uploads it
// when it is closed) on a tarn dev grid. What a program does on such a
// mount: rotate a log it holds open (rename it, make a new one at the
// name), replace a file, rename folders, remove trees. tarn left a
// moved or deleted file's lock at its old name, so davfs2's LOCK of the
// new file there was 423 and the program got "Permission denied".
//
// It needs root, /dev/fuse and davfs2 (apt-get install davfs2); without
// them it skips, unless TARN_REQUIRE_DAVFS2=1 (CI) makes that a failure.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// mountDavfs2 mounts d at a new folder and returns it and its unmount
// (umount waits for davfs2's uploads), which cleanup calls too.
func mountDavfs2(t *testing.T, d *userqaDAV) (string, func()) {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("TARN_REQUIRE_DAVFS2") == "1" {
			t.Fatalf("davfs2 test cannot run: %s", why)
		}
		t.Skipf("davfs2 test skipped: %s", why)
	}
	if _, err := exec.LookPath("mount.davfs"); err != nil {
		skip("mount.davfs is not installed (apt-get install davfs2)")
	}
	if os.Geteuid() != 0 {
		skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		skip("no /dev/fuse")
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(dir, "secrets")
	if err := os.WriteFile(secrets, []byte(fmt.Sprintf("%s %s %s\n", d.url, d.user, d.pass)), 0o600); err != nil {
		t.Fatal(err)
	}
	// buf_size 64: on kernels 6.16 and later davfs2 lists nothing
	// without it (FIELD-NOTES). delay_upload 0: a closed file goes up
	// at once. The cache must stay in /var/cache/davfs2.
	conf := filepath.Join(dir, "davfs2.conf")
	if err := os.WriteFile(conf, []byte("buf_size 64\nuse_locks 1\ndelay_upload 0\nsecrets "+secrets+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := tool(t, 2*time.Minute, dir, nil, nil, "mount", "-t", "davfs", d.url, mnt, "-o", "conf="+conf)
	if err != nil {
		t.Fatalf("mount -t davfs: %v\n%s", err, out)
	}
	var once sync.Once
	unmount := func() { once.Do(func() { unmountDavfs2(t, mnt) }) }
	t.Cleanup(unmount)
	return mnt, unmount
}

// unmountDavfs2 unmounts mnt, waiting for davfs2 to upload what was
// closed; a mount that will not go is detached so no process stays.
func unmountDavfs2(t *testing.T, mnt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "umount", mnt).CombinedOutput()
	if err == nil {
		return
	}
	t.Errorf("umount %s: %v\n%s", mnt, err, out)
	exec.Command("umount", "-l", mnt).Run()
}

func TestWebDAV7Davfs2(t *testing.T) {
	d := startUserQADAV(t)
	mnt, unmount := mountDavfs2(t, d)
	work := filepath.Join(mnt, "work")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(work, "logs"), 0o755))

	// Log rotation: the writer holds app.log open (davfs2 holds its
	// lock), the log is renamed and a new one made at the name.
	logPath := filepath.Join(work, "logs", "app.log")
	must(os.WriteFile(logPath, []byte("v1\n"), 0o644))
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	must(err)
	_, err = f.WriteString("line1\n")
	must(err)
	must(os.Rename(logPath, logPath+".1"))
	if err := os.WriteFile(logPath, []byte("fresh\n"), 0o644); err != nil {
		f.Close()
		t.Fatalf("a new log at the rotated log's name: %v (its lock stayed behind)", err)
	}
	_, err = f.WriteString("line2\n")
	must(err)
	must(f.Close())

	// An open file removed, and made again at its name.
	note := filepath.Join(work, "note.txt")
	must(os.WriteFile(note, []byte("draft"), 0o644))
	g, err := os.OpenFile(note, os.O_WRONLY|os.O_APPEND, 0)
	must(err)
	_, err = g.WriteString(" more")
	must(err)
	must(os.Remove(note))
	if err := os.WriteFile(note, []byte("second note"), 0o644); err != nil {
		g.Close()
		t.Fatalf("a new file at a removed open file's name: %v", err)
	}
	if err := g.Close(); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Logf("closing the removed file: %v", err)
	}

	// Folders: one renamed with a file in it, a tree removed.
	must(os.MkdirAll(filepath.Join(work, "tmp", "a", "b"), 0o755))
	must(os.WriteFile(filepath.Join(work, "tmp", "a", "b", "x.bin"), genBytes(71, 300_000), 0o644))
	must(os.Rename(filepath.Join(work, "logs"), filepath.Join(work, "old-logs")))
	must(os.RemoveAll(filepath.Join(work, "tmp")))

	// What the node holds once davfs2 has uploaded everything.
	unmount()
	for _, tc := range []struct{ name, want string }{
		{"work/old-logs/app.log.1", "v1\nline1\nline2\n"},
		{"work/old-logs/app.log", "fresh\n"},
		{"work/note.txt", "second note"},
	} {
		st, _, got := d.req(t, http.MethodGet, tc.name, nil, "")
		if st != http.StatusOK || got != tc.want {
			t.Errorf("GET %s: %d %q, want %q", tc.name, st, got, tc.want)
		}
	}
	for _, gone := range []string{"work/logs/app.log", "work/tmp/a/b/x.bin", "work/tmp"} {
		d.must(t, http.StatusNotFound, "GET", gone, nil, "")
	}
	// No lock is left: anyone may replace the files.
	d.must(t, http.StatusNoContent, "PUT", "work/old-logs/app.log", nil, "replaced")
	_, body := d.must(t, http.StatusMultiStatus, "PROPFIND", "work/old-logs/", map[string]string{"Depth": "1"},
		`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>`)
	if strings.Contains(body, "activelock") {
		t.Errorf("locks left after the unmount:\n%s", body)
	}
}
