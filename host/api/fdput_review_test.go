//go:build linux

package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tarnfs/tarn/host/api"
)

// TestReviewFdMmapWriteUnseenByFstat: a file rewritten between the key's
// pass and the encode through a shared mapping of a page already dirty
// keeps its size, mtime and ctime (no write fault, so no time update:
// ext4 and tmpfs alike), so the node's fstat comparison cannot see it.
// Before the fix the node answered a cap hashed over the old bytes whose
// shares held the new ones; now the grid checks the bytes it encoded
// against the key and the node answers 409 ErrChanged.
func TestReviewFdMmapWriteUnseenByFstat(t *testing.T) {
	_, files, cl := newGridServer(t)
	t.Cleanup(func() { files.setDuring(nil) })
	b := randomBytes(3<<20, 11)
	f := writeFile(t, t.TempDir(), "mapped", b)
	w, err := os.OpenFile(f.Name(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	m, err := unix.Mmap(int(w.Fd()), 0, len(b), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	m[0] ^= 1 // dirty the first page now: the write fault moves mtime before the node's first fstat
	var st0, st1 unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st0); err != nil {
		t.Fatal(err)
	}
	files.setDuring(func() { m[0] ^= 0xff }) // after the key's pass read offset 0
	c, err := cl.PutFile(context.Background(), f, nil)
	files.setDuring(nil)
	if err := unix.Fstat(int(f.Fd()), &st1); err != nil {
		t.Fatal(err)
	}
	unseen := st0.Size == st1.Size && st0.Mtim == st1.Mtim && st0.Ctim == st1.Ctim
	t.Logf("fstat saw the write: %v", !unseen)
	if err == nil {
		now, _ := os.ReadFile(f.Name())
		body, berr := cl.Put(context.Background(), bytes.NewReader(now), int64(len(now)))
		t.Fatalf("a file changed between the passes got cap %s; the cap of its bytes is %s (%v)", c, body, berr)
	}
	if !errors.Is(err, api.ErrChanged) {
		t.Fatalf("error %v: want api.ErrChanged", err)
	}
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 409 {
		t.Fatalf("error %#v: want status 409", err)
	}
}

// TestReviewFdOPath: an O_PATH descriptor (fstat works on it, pread does
// not, and it can be opened on a file its opener may not read) is
// refused with a clear 400, not a read error deep in the upload (500).
func TestReviewFdOPath(t *testing.T) {
	s, _, _ := newServer(t)
	reg := writeFile(t, t.TempDir(), "reg", []byte("hello by path"))
	fd, err := unix.Open(reg.Name(), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := os.NewFile(uintptr(fd), "opath")
	t.Cleanup(func() { p.Close() })
	a := sendFd(t, s, "tarn-fd-put 1\nsekrit\n", p)
	msg, _ := a["error"].(string)
	if a["status"] != float64(400) || !strings.Contains(msg, "O_PATH") || a["cap"] != nil {
		t.Fatalf("answer %v: want 400 naming O_PATH, no cap", a)
	}
}

// openFds counts this process's open descriptors.
func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestReviewFdManyDescriptors: a request carrying more descriptors than
// the node's control buffer holds (MSG_CTRUNC; the kernel drops those
// that do not fit) or a few extra ones is refused, and every descriptor
// the node received is closed again.
func TestReviewFdManyDescriptors(t *testing.T) {
	s, _, _ := newServer(t)
	reg := writeFile(t, t.TempDir(), "reg", []byte("hello"))
	for _, n := range []int{2, 4, 5, 64, 253} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			before := openFds(t)
			fl := make([]*os.File, n)
			for i := range fl {
				fl[i] = reg
			}
			a := sendFd(t, s, "tarn-fd-put 1\nsekrit\n", fl...)
			if a["status"] != float64(400) || a["cap"] != nil {
				t.Fatalf("answer %v: want 400, no cap", a)
			}
			// The node closes them after its answer: give it a moment.
			deadline := time.Now().Add(5 * time.Second)
			for openFds(t) > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := openFds(t); got > before {
				t.Fatalf("%d descriptors open after the refusal, %d before", got, before)
			}
		})
	}
}

// TestReviewFdHelperProcess is not a test: it is the other user's process
// the uid tests start (as uid 65534) by running this test binary.
func TestReviewFdHelperProcess(t *testing.T) {
	mode := os.Getenv("TARN_FDREVIEW_MODE")
	if mode == "" {
		t.Skip("helper process only")
	}
	name := os.Getenv("TARN_FDREVIEW_NAME")
	out := os.Stdout
	switch mode {
	case "squat":
		ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: "@" + name, Net: "unixpacket"})
		if err != nil {
			fmt.Fprintln(out, "listen:", err)
			os.Exit(1)
		}
		fmt.Fprintln(out, "ready")
		ln.SetDeadline(time.Now().Add(30 * time.Second))
		conn, err := ln.AcceptUnix()
		if err != nil {
			fmt.Fprintln(out, "accept:", err)
			os.Exit(1)
		}
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 4096)
		oob := make([]byte, 4096)
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		fmt.Fprintf(out, "got %d bytes %d control %q %v\n", n, oobn, buf[:n], err)
		os.Exit(0)
	case "connect":
		conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: "@" + name, Net: "unixpacket"})
		if err != nil {
			fmt.Fprintln(out, "dial:", err)
			os.Exit(1)
		}
		f, err := os.Open("/proc/self/exe")
		if err != nil {
			fmt.Fprintln(out, "open:", err)
			os.Exit(1)
		}
		msg := "tarn-fd-put 1\n" + os.Getenv("TARN_FDREVIEW_TOKEN") + "\n"
		if _, _, err := conn.WriteMsgUnix([]byte(msg), syscall.UnixRights(int(f.Fd())), nil); err != nil {
			fmt.Fprintln(out, "send:", err)
		}
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				fmt.Fprintln(out, "read:", err)
				os.Exit(0)
			}
			fmt.Fprintf(out, "answer %s\n", buf[:n])
		}
	}
	os.Exit(2)
}

// otherUser starts this test binary as uid/gid 65534 in helper mode and
// returns its stdout, line by line. Root only (skips otherwise).
func otherUser(t *testing.T, env ...string) *bufio.Scanner {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another uid")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tarn-fdreview-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "api.test")
	src, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestReviewFdHelperProcess$", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return bufio.NewScanner(out)
}

// TestReviewFdSquattedName: another user bound the node's socket name
// first. PutFile must send that process neither the file nor the token
// (it sees a connection and its end, nothing else) and upload the file
// as a body instead, with the same cap.
func TestReviewFdSquattedName(t *testing.T) {
	s, _, _ := newServer(t)
	ts := httptest.NewServer(s.Handler()) // an API URL whose name nobody of ours holds
	t.Cleanup(ts.Close)
	name := api.FdSocketName(ts.URL)
	sc := otherUser(t, "TARN_FDREVIEW_MODE=squat", "TARN_FDREVIEW_NAME="+name)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("squatter did not start: %q %v", sc.Text(), sc.Err())
	}
	cl := &api.Client{BaseURL: ts.URL, Token: "sekrit"}
	b := randomBytes(100<<10, 3)
	f := writeFile(t, t.TempDir(), "f", b)
	c, err := cl.PutFile(context.Background(), f, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := cl.Put(context.Background(), bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if c != want {
		t.Fatalf("cap %s, want %s", c, want)
	}
	if !sc.Scan() {
		t.Fatalf("squatter said nothing: %v", sc.Err())
	}
	line := sc.Text()
	if !strings.HasPrefix(line, "got 0 bytes 0 control") || strings.Contains(line, "sekrit") {
		t.Fatalf("the other user's socket got: %s", line)
	}
}

// TestReviewFdOtherUserRefused: another user's process that connects to
// the node's socket, even with the right token, gets at most a 403 (the
// node does not read its request) and nothing else: no cap, no upload.
func TestReviewFdOtherUserRefused(t *testing.T) {
	s, files, _ := newServer(t)
	sc := otherUser(t, "TARN_FDREVIEW_MODE=connect", "TARN_FDREVIEW_NAME="+api.FdSocketName(s.URL()),
		"TARN_FDREVIEW_TOKEN=sekrit")
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	// The node closes without reading the request: the kernel may reset
	// the connection before the 403 is read. Either way, nothing else.
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "read:") {
		t.Fatalf("the other user's process saw %q", lines)
	}
	for _, l := range lines[:len(lines)-1] {
		if strings.HasPrefix(l, "send:") {
			continue // the node closed before the request went out
		}
		var a map[string]any
		if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "answer ")), &a); err != nil {
			t.Fatalf("answer %q: %v", l, err)
		}
		if a["status"] != float64(403) || a["cap"] != nil || a["done"] != true {
			t.Fatalf("answer %v: want a 403 without a cap", a)
		}
	}
	t.Logf("the other user's process saw %q", lines)
	files.mu.Lock()
	n := len(files.files)
	files.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d files stored", n)
	}
}

// TestReviewFdReceivedCloexec: the descriptor the node receives is
// close-on-exec (Go's ReadMsgUnix asks for MSG_CMSG_CLOEXEC), so a plugin
// process the node starts while an upload runs does not inherit the
// user's file.
func TestReviewFdReceivedCloexec(t *testing.T) {
	_, files, cl := newGridServer(t)
	t.Cleanup(func() { files.setDuring(nil) })
	f := writeFile(t, t.TempDir(), "cloexec", randomBytes(2<<20, 5))
	var seen []string
	files.setDuring(func() {
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l != f.Name() {
				continue
			}
			info, _ := os.ReadFile("/proc/self/fdinfo/" + e.Name())
			for _, line := range strings.Split(string(info), "\n") {
				if v, ok := strings.CutPrefix(line, "flags:"); ok {
					seen = append(seen, e.Name()+":"+strings.TrimSpace(v))
				}
			}
		}
	})
	if _, err := cl.PutFile(context.Background(), f, nil); err != nil {
		t.Fatal(err)
	}
	if len(seen) < 2 {
		t.Fatalf("descriptors of the file during the upload: %v, want the test's and the node's", seen)
	}
	for _, s := range seen {
		_, v, _ := strings.Cut(s, ":")
		var flags int
		fmt.Sscanf(v, "%o", &flags)
		if flags&unix.O_CLOEXEC == 0 {
			t.Fatalf("descriptor %s of the file is not close-on-exec (all: %v)", s, seen)
		}
	}
}
