package sftp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	xsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestRoundTrip uploads with pkg/sftp's concurrent writer (many requests
// in flight, handled out of order by the server's workers) and reads back
// through SFTP and through the vdrive.
func TestRoundTrip(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client("alice", alicePW)
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"literal", 20},
		{"one segment", 100 << 10},
		{"several segments", 5<<20 + 123},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := pseudo(byte(tc.size), tc.size)
			p := "/" + strings.ReplaceAll(tc.name, " ", "_")
			f, err := c.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := e.get(e.drive("alice"), p)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("vdrive reads %d bytes (%v), want %d identical", len(got), err, len(data))
			}
			r, err := c.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := r.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			r.Close()
			if !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("sftp reads %d bytes, want %d identical", buf.Len(), len(data))
			}
			st, err := c.Stat(p)
			if err != nil || st.Size() != int64(tc.size) || st.Mode() != 0o644 {
				t.Fatalf("stat: %v %v", st, err)
			}
		})
	}
}

// TestOutOfOrderWrites writes chunks backwards, leaves a hole and
// rewrites a range: the file is what a local file would be.
func TestOutOfOrderWrites(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := tarnClient(t, e, "alice", alicePW)
	const chunk = 32 << 10
	data := pseudo(7, 10*chunk)
	r, err := c.open("sparse", fWrite|fCreat|fTrunc, nil)
	if err != nil || r.typ != pHandle {
		t.Fatalf("open: %v %+v", err, r)
	}
	h := r.handle()
	want := make([]byte, len(data))
	for i := 9; i >= 0; i-- {
		if i == 4 {
			continue // a hole: zeros
		}
		off := i * chunk
		if r, err := c.call(pWrite, pkt{}.str(h).u64(uint64(off)).str(string(data[off:off+chunk]))); err != nil || r.result() != 0 {
			t.Fatalf("write %d: %v %d", i, err, r.result())
		}
		copy(want[off:], data[off:off+chunk])
	}
	patch := []byte("patched in place")
	if r, err := c.call(pWrite, pkt{}.str(h).u64(100).str(string(patch))); err != nil || r.result() != 0 {
		t.Fatalf("rewrite: %v %d", err, r.result())
	}
	copy(want[100:], patch)
	// While open, stat shows the spooled size.
	if r, err := c.path1(pStat, "sparse"); err != nil || r.typ != pAttrs {
		t.Fatalf("stat while open: %v %+v", err, r)
	}
	if r, err := c.closeHandle(h); err != nil || r.result() != 0 {
		t.Fatalf("close: %v %d %q", err, r.result(), r.msg)
	}
	got, err := e.get(e.drive("alice"), "/sparse")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes (%v), want %d identical", len(got), err, len(want))
	}
	if ents, _ := os.ReadDir(e.spool); len(ents) != 0 {
		t.Fatalf("spool folder keeps %d files", len(ents))
	}
}

// TestLargeDirectory lists 1,500 entries: readdir answers in chunks and
// every name comes back once.
func TestLargeDirectory(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.drive("alice")
	ctx := ctxT(t)
	if err := d.Mkdir(ctx, "/big"); err != nil {
		t.Fatal(err)
	}
	const n = 1500
	links := map[string]string{}
	capStr := emptyFileCap(t, e)
	for i := range n {
		links[fmt.Sprintf("f%05d", i)] = capStr
	}
	if err := d.LinkMany(ctx, "/big", links); err != nil {
		t.Fatal(err)
	}
	c := tarnClient(t, e, "alice", alicePW)
	r, err := c.path1(pOpendir, "big")
	if err != nil || r.typ != pHandle {
		t.Fatalf("opendir: %v %+v", err, r)
	}
	h := r.handle()
	chunks, names := 0, 0
	for {
		r, err := c.call(pReaddir, pkt{}.str(h))
		if err != nil {
			t.Fatal(err)
		}
		if r.typ == pStatus {
			if r.code != fxEOF {
				t.Fatalf("readdir: status %d %q", r.code, r.msg)
			}
			break
		}
		chunks++
		names += int(uint32(r.body[0])<<24 | uint32(r.body[1])<<16 | uint32(r.body[2])<<8 | uint32(r.body[3]))
	}
	c.closeHandle(h)
	if names != n+2 || chunks < 10 {
		t.Fatalf("%d names in %d chunks, want %d (with . and ..) in at least 10", names, chunks, n+2)
	}
	pc := e.client("alice", alicePW)
	infos, err := pc.ReadDir("/big")
	if err != nil || len(infos) != n {
		t.Fatalf("pkg/sftp lists %d entries (%v), want %d", len(infos), err, n)
	}
}

func emptyFileCap(t testing.TB, e *env) string {
	d := e.drive("alice")
	e.put(d, "/.empty", nil)
	info, err := d.Stat(ctxT(t), "/.empty")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctxT(t), "/.empty"); err != nil {
		t.Fatal(err)
	}
	return info.ReadCap()
}

// TestAuth: passwords and keys per account; wrong ones refused.
func TestAuth(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, other, _ := ed25519GenerateSigner()
	for _, tc := range []struct {
		name   string
		user   string
		auth   ssh.AuthMethod
		wantOK bool
	}{
		{"password", "alice", ssh.Password(alicePW), true},
		{"wrong password", "alice", ssh.Password("nope"), false},
		{"unknown user", "mallory", ssh.Password(alicePW), false},
		{"key", "alice", ssh.PublicKeys(e.signer), true},
		{"key only account", "carol", ssh.PublicKeys(e.signer), true},
		{"password on a key-only account", "carol", ssh.Password(""), false},
		{"unknown key", "alice", ssh.PublicKeys(other), false},
		{"key of another account", "bob", ssh.PublicKeys(e.signer), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := ssh.Dial("tcp", e.srv.Addr(), &ssh.ClientConfig{
				User: tc.user, Auth: []ssh.AuthMethod{tc.auth},
				HostKeyCallback: ssh.FixedHostKey(e.srv.HostKeys()[0]), Timeout: 20 * time.Second,
			})
			if conn != nil {
				conn.Close()
			}
			if (err == nil) != tc.wantOK {
				t.Fatalf("login: %v, want ok=%v", err, tc.wantOK)
			}
		})
	}
}

// TestReadOnlyAccount: bob reads; every write is "permission denied".
func TestReadOnlyAccount(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(e.drive("bob"), "/notes.txt", []byte("read me"))
	c := e.client("bob", bobPW)
	f, err := c.Open("/notes.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "read me" {
		t.Fatalf("read %q", b)
	}
	for name, op := range map[string]func() error{
		"create": func() error { _, err := c.Create("/x"); return err },
		"mkdir":  func() error { return c.Mkdir("/d") },
		"remove": func() error { return c.Remove("/notes.txt") },
		"rename": func() error { return c.Rename("/notes.txt", "/y") },
		"chmod":  func() error { return c.Chmod("/notes.txt", 0o600) },
	} {
		if err := op(); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("%s: %v, want permission denied", name, err)
		}
	}
	if st, err := c.Stat("/notes.txt"); err != nil || st.Mode()&0o222 != 0 {
		t.Errorf("stat shows %v (%v), want no write bits", st.Mode(), err)
	}
	vfs, err := c.StatVFS("/")
	if err != nil || vfs.Flag&1 == 0 {
		t.Errorf("statvfs flag %v (%v), want ST_RDONLY", vfs, err)
	}
}

// TestSetstat keeps mode and mtime, ignores owners, truncates and extends.
func TestSetstat(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client("alice", alicePW)
	d := e.drive("alice")
	e.put(d, "/f", []byte("0123456789"))
	mt := time.Date(2020, 5, 17, 10, 0, 0, 0, time.UTC)
	if err := c.Chmod("/f", 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Chtimes("/f", mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := c.Chown("/f", 1234, 5678); err != nil {
		t.Fatalf("chown is accepted and ignored: %v", err)
	}
	st, err := c.Stat("/f")
	if err != nil || st.Mode() != 0o600 || !st.ModTime().Equal(mt) {
		t.Fatalf("stat after chmod, chtimes: %v %v %v", st.Mode(), st.ModTime(), err)
	}
	if err := c.Truncate("/f", 4); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.get(d, "/f"); string(got) != "0123" {
		t.Fatalf("after truncate: %q", got)
	}
	if err := c.Truncate("/f", 6); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.get(d, "/f"); string(got) != "0123\x00\x00" {
		t.Fatalf("after extend: %q", got)
	}
	if st, _ := c.Stat("/f"); st.Mode() != 0o600 {
		t.Fatalf("mode after truncate: %v", st.Mode())
	}
	if err := c.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	if err := c.Chmod("/d", 0o700); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Stat("/d"); st.Mode() != fs.ModeDir|0o700 {
		t.Fatalf("dir mode %v", st.Mode())
	}
	// Mode and times set on an open handle apply at close.
	f, err := c.OpenFile("/g", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("abc"))
	if err := f.Chmod(0o640); err != nil {
		t.Fatal(err)
	}
	if err := c.Chtimes("/g", mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Stat("/g"); err != nil || st.Mode() != 0o640 || !st.ModTime().Equal(mt) || st.Size() != 3 {
		t.Fatalf("after close: %v %v %d %v", st.Mode(), st.ModTime(), st.Size(), err)
	}
}

// TestAppendAndResume: reput-style append (APPEND with the real offset)
// and reget-style reads from an offset.
func TestAppendAndResume(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client("alice", alicePW)
	data := pseudo(3, 300<<10)
	e.put(e.drive("alice"), "/part", data[:100<<10])
	f, err := c.OpenFile("/part", os.O_WRONLY|os.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(100<<10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(data[100<<10:])); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.get(e.drive("alice"), "/part"); !bytes.Equal(got, data) {
		t.Fatalf("after append: %d bytes, want %d identical", len(got), len(data))
	}
	r, err := c.Open("/part")
	if err != nil {
		t.Fatal(err)
	}
	r.Seek(250<<10, io.SeekStart)
	rest, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(rest, data[250<<10:]) {
		t.Fatalf("read from offset: %d bytes (%v)", len(rest), err)
	}
	// Opened read-write but only read: nothing is uploaded again.
	uploads := strings.Count(e.logBuf.String(), "uploaded:")
	ro, err := c.OpenFile("/part", os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	ro.ReadAt(make([]byte, 10), 0)
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(e.logBuf.String(), "uploaded:"); n != uploads {
		t.Fatalf("an unchanged read-write handle uploaded again (%d uploads, was %d)", n, uploads)
	}
	// Read and write through one handle.
	rw, err := c.OpenFile("/part", os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := rw.ReadAt(buf, 5); err != nil || !bytes.Equal(buf, data[5:15]) {
		t.Fatalf("read through a read-write handle: %v", err)
	}
	rw.WriteAt([]byte("XY"), 0)
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := e.get(e.drive("alice"), "/part")
	if string(got[:2]) != "XY" || !bytes.Equal(got[2:], data[2:]) {
		t.Fatal("read-write handle: content differs")
	}
}

// TestAppendBeforeClose: sshfs answers close(2) at once and sends the SFTP
// close later, so an append right after writing a new file may open it
// while the handle that makes it is still open. The append starts from
// what that handle holds (the file is not on the drive yet), and its
// close, after the first one's, links both lines.
func TestAppendBeforeClose(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client("alice", alicePW)
	first, err := c.OpenFile("/notes.txt", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Write([]byte("line 1\n")); err != nil {
		t.Fatal(err)
	}
	app, err := c.OpenFile("/notes.txt", os.O_WRONLY|os.O_APPEND)
	if err != nil {
		t.Fatalf("append while the file's first handle is open: %v", err)
	}
	if _, err := app.WriteAt([]byte("line 2\n"), 7); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenFile("/notes.txt", os.O_WRONLY|os.O_CREATE|os.O_EXCL); err == nil {
		t.Error("an exclusive create of a file this session is writing succeeded")
	}
	for _, f := range []*xsftp.File{first, app} {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.get(e.drive("alice"), "/notes.txt")
	if want := "line 1\nline 2\n"; err != nil || string(got) != want {
		t.Fatalf("content %q (%v), want %q", got, err, want)
	}
}

// TestDisconnectMidUpload: a client gone before its close leaves nothing
// linked and no spool file.
func TestDisconnectMidUpload(t *testing.T) {
	e := newEnv(t, envOptions{})
	conn, err := e.dial("alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	c, err := xsftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Create("/half")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(pseudo(1, 1<<20)); err != nil {
		t.Fatal(err)
	}
	conn.Close() // no close of the file
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(e.logBuf.String(), "logout") == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := e.drive("alice").Stat(ctxT(t), "/half"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat /half after the client left: %v, want not exist", err)
	}
	if !strings.Contains(e.logBuf.String(), "upload abandoned") {
		t.Fatal("the server did not log the abandoned upload")
	}
}

// TestCloseFailsWhenGridFails: with too few servers, the close reports
// an error and nothing is linked.
func TestCloseFailsWhenGridFails(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client("alice", alicePW)
	f, err := c.Create("/doomed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(pseudo(2, 200<<10)); err != nil {
		t.Fatal(err)
	}
	for _, s := range e.grid.Servers[:3] {
		s.Stop()
	}
	if err := f.Close(); err == nil {
		t.Fatal("close succeeded with 2 of 5 servers up")
	} else {
		t.Logf("close: %v", err)
	}
	for _, s := range e.grid.Servers[:3] {
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Stat("/doomed"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat after the failed close: %v", err)
	}
}

// TestExecAndShellRefused: only sftp and scp are served.
func TestExecAndShellRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	conn, err := e.dial("alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, cmd := range []string{"ls -la", "rm -rf /", "", "scp -x /"} {
		t.Run(cmd, func(t *testing.T) {
			s, err := conn.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var stderr bytes.Buffer
			s.Stderr = &stderr
			if cmd == "" {
				s.Stdin = strings.NewReader("")
				err = s.Shell()
				if err == nil {
					err = s.Wait()
				}
			} else {
				err = s.Run(cmd)
			}
			var ee *ssh.ExitError
			if !errors.As(err, &ee) || ee.ExitStatus() == 0 {
				t.Fatalf("%q: %v, want a non-zero exit", cmd, err)
			}
			if !strings.Contains(stderr.String(), "tarn") {
				t.Fatalf("stderr %q", stderr.String())
			}
		})
	}
	s, _ := conn.NewSession()
	defer s.Close()
	if err := s.RequestSubsystem("nope"); err == nil {
		t.Fatal("unknown subsystem accepted")
	}
}

// TestLimits: idle connections are closed; sessions beyond the maximum
// are refused.
func TestLimits(t *testing.T) {
	e := newEnv(t, envOptions{idle: 300 * time.Millisecond, maxSessions: 1})
	conn, err := e.dial("alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := xsftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.NewSession(); err == nil || !strings.Contains(err.Error(), "too many sessions") {
		t.Fatalf("second session: %v", err)
	}
	// Busy: requests keep it open past the idle timeout.
	for range 6 {
		if _, err := c.Stat("/"); err != nil {
			t.Fatalf("stat while active: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- conn.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection still open after 5s (idle timeout 300ms)")
	}
}

// TestPathsStayUnderRoot: ".." never leaves the account's root.
func TestPathsStayUnderRoot(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client("alice", alicePW)
	f, err := c.Create("/../../../escape")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.drive("alice").Stat(ctxT(t), "/escape"); err != nil {
		t.Fatalf("the file is not at the root: %v", err)
	}
	if p, err := c.RealPath("../../.."); err != nil || p != "/" {
		t.Fatalf("realpath: %q %v", p, err)
	}
	if names := e.listBob(t); len(names) != 0 {
		t.Fatalf("bob's root has %v", names)
	}
}

func (e *env) listBob(t testing.TB) []string {
	infos, err := e.drive("bob").ReadDir(ctxT(t), "/")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range infos {
		out = append(out, in.Name())
	}
	return out
}

// TestStatVFS reports the configured space.
func TestStatVFS(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client("alice", alicePW)
	v, err := c.StatVFS("/")
	if err != nil {
		t.Fatal(err)
	}
	if v.TotalSpace() != 10<<30 || v.FreeSpace() != 4<<30 || v.Flag&1 != 0 {
		t.Fatalf("statvfs total %d free %d flag %d", v.TotalSpace(), v.FreeSpace(), v.Flag)
	}
}

// TestHostKeyKept: the key is made once (0600) and the same one is used
// after a restart.
func TestHostKeyKept(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"ssh_host_ed25519_key", "ssh_host_rsa_key", "ssh_host_ecdsa_key"} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			k1, err := LoadHostKey(p)
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(p)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode %v (%v), want 0600", st.Mode(), err)
			}
			k2, err := LoadHostKey(p)
			if err != nil {
				t.Fatal(err)
			}
			if Fingerprint(k1.PublicKey()) != Fingerprint(k2.PublicKey()) {
				t.Fatal("a second load made another key")
			}
			pub, err := os.ReadFile(p + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			pk, _, _, _, err := ssh.ParseAuthorizedKey(pub)
			if err != nil || !bytes.Equal(pk.Marshal(), k1.PublicKey().Marshal()) {
				t.Fatalf(".pub does not match: %v", err)
			}
			want := map[string]string{"ssh_host_ed25519_key": "ssh-ed25519", "ssh_host_rsa_key": "ssh-rsa", "ssh_host_ecdsa_key": "ecdsa-sha2-nistp256"}[name]
			if k1.PublicKey().Type() != want {
				t.Fatalf("key type %s, want %s", k1.PublicKey().Type(), want)
			}
		})
	}
	open := filepath.Join(dir, "open_key")
	if _, err := LoadHostKey(open); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o644)
	if _, err := LoadHostKey(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key others can read: %v", err)
	}
	bad := filepath.Join(dir, "bad_key")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := LoadHostKey(bad); err == nil || !strings.Contains(err.Error(), "bad_key") {
		t.Fatalf("a broken key file: %v", err)
	}
}

// TestConcurrentClients: several sessions upload at once into one folder;
// every file is listed.
func TestConcurrentClients(t *testing.T) {
	e := newEnv(t, envOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 4 {
		c := e.client("alice", alicePW)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				f, err := c.Create(fmt.Sprintf("/c%d-%d", i, j))
				if err != nil {
					errs <- err
					return
				}
				f.Write(pseudo(byte(i*10+j), 1000+i*j))
				if err := f.Close(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	infos, err := e.drive("alice").ReadDir(ctxT(t), "/")
	if err != nil || len(infos) != 20 {
		t.Fatalf("%d entries (%v), want 20", len(infos), err)
	}
	var names []string
	for _, in := range infos {
		names = append(names, in.Name())
	}
	if !slices.IsSorted(names) {
		t.Fatal("listing not sorted")
	}
}

func ed25519GenerateSigner() (ed25519.PublicKey, ssh.Signer, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	s, err := ssh.NewSignerFromKey(priv)
	return pub, s, err
}

// TestTruncateAndEmptyWrites: a truncating open of an existing file empties
// it even when nothing is written (sftp put of an empty file), an empty
// write past the end does not grow the file (the close would find fewer
// spooled bytes than the size), and a write after the close is refused.
func TestTruncateAndEmptyWrites(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.drive("alice")
	e.put(d, "/old", []byte("old content"))
	c := tarnClient(t, e, "alice", alicePW)
	must := func(r reply, err error) reply {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	h := must(c.open("/old", fWrite|fCreat|fTrunc, pkt{}.u32(0))).handle()
	if r := must(c.closeHandle(h)); r.result() != 0 {
		t.Fatalf("close of a truncated file: status %d", r.result())
	}
	if got, err := e.get(d, "/old"); err != nil || len(got) != 0 {
		t.Fatalf("after a truncating open and close: %q (%v), want empty", got, err)
	}

	h = must(c.open("/new", fWrite|fCreat|fTrunc, pkt{}.u32(0))).handle()
	if r := must(c.call(pWrite, pkt{}.str(h).u64(0).str("abc"))); r.result() != 0 {
		t.Fatalf("write: status %d", r.result())
	}
	if r := must(c.call(pWrite, pkt{}.str(h).u64(100).str(""))); r.result() != 0 {
		t.Fatalf("empty write past the end: status %d", r.result())
	}
	if r := must(c.closeHandle(h)); r.result() != 0 {
		t.Fatalf("close after an empty write past the end: status %d", r.result())
	}
	if got, err := e.get(d, "/new"); err != nil || string(got) != "abc" {
		t.Fatalf("after an empty write past the end: %q (%v), want abc", got, err)
	}
	if r := must(c.call(pWrite, pkt{}.str(h).u64(0).str("late"))); r.result() == 0 {
		t.Error("a write on a closed handle succeeded")
	}
	if got, _ := e.get(d, "/new"); string(got) != "abc" {
		t.Fatalf("a write after the close changed the file: %q", got)
	}
}
