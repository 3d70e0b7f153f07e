//go:build unix

package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCreateOut: a download (tarn get, tarn cp from the grid) into a
// FIFO or a device writes into it; it used to rename a regular file over
// it (as root, over /dev/null), and a reader of the FIFO got nothing. A
// symbolic link's target is replaced and keeps its mode, the link stays; a
// new file is 0644; a folder is refused; an aborted download leaves
// nothing behind.
func TestCreateOut(t *testing.T) {
	dir := t.TempDir()
	leftovers := func(t *testing.T) {
		t.Helper()
		tmps, _ := filepath.Glob(filepath.Join(dir, ".tarn-*"))
		if len(tmps) > 0 {
			t.Fatalf("temporary files left: %v", tmps)
		}
	}
	write := func(t *testing.T, out, data string, commit bool) error {
		t.Helper()
		lo, err := createOut(out, ".tarn-test-")
		if err != nil {
			return err
		}
		defer lo.abort()
		if _, err := io.WriteString(lo, data); err != nil {
			t.Fatal(err)
		}
		if commit {
			return lo.commit(true)
		}
		return nil
	}

	t.Run("fifo", func(t *testing.T) {
		fifo := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		go func() {
			f, err := os.Open(fifo)
			if err != nil {
				got <- err.Error()
				return
			}
			defer f.Close()
			b, _ := io.ReadAll(f)
			got <- string(b)
		}()
		if err := write(t, fifo, "through the pipe", true); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-got:
			if s != "through the pipe" {
				t.Fatalf("the FIFO's reader got %q", s)
			}
		case <-time.After(time.Minute):
			t.Fatal("the FIFO's reader got nothing")
		}
		if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
			t.Fatalf("the FIFO was replaced: %v %v", st.Mode(), err)
		}
		leftovers(t)
	})
	t.Run("symlink", func(t *testing.T) {
		target, link := filepath.Join(dir, "target"), filepath.Join(dir, "link")
		if err := os.WriteFile(target, []byte("old"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("target", link); err != nil {
			t.Fatal(err)
		}
		if err := write(t, link, "new", true); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the link was replaced: %v", err)
		}
		b, _ := os.ReadFile(target)
		st, _ := os.Stat(target)
		if string(b) != "new" || st.Mode().Perm() != 0o640 {
			t.Fatalf("target holds %q mode %v, want \"new\" 0640", b, st.Mode().Perm())
		}
		leftovers(t)
	})
	t.Run("new file", func(t *testing.T) {
		p := filepath.Join(dir, "new")
		if err := write(t, p, "x", true); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
			t.Fatalf("new file: %v %v", st.Mode(), err)
		}
		leftovers(t)
	})
	t.Run("aborted", func(t *testing.T) {
		p := filepath.Join(dir, "aborted")
		if err := write(t, p, "half", false); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("an aborted download made %s: %v", p, err)
		}
		leftovers(t)
	})
	t.Run("folder", func(t *testing.T) {
		err := write(t, dir, "x", true)
		if err == nil || !strings.Contains(err.Error(), "is a folder") {
			t.Fatalf("err %v", err)
		}
	})
}
