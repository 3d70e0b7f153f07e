package sftp

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	xsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// TestCiphers: the ciphers offered leave out chacha20-poly1305 (slow in
// Go on amd64): a client offering only it is refused, and each cipher
// offered carries a file byte for byte both ways.
func TestCiphers(t *testing.T) {
	e := newEnv(t, envOptions{})
	data := pseudo(11, 3<<20+123)
	for _, tc := range []struct {
		cipher string
		ok     bool
	}{
		{ssh.CipherAES128GCM, true},
		{ssh.CipherAES256GCM, true},
		{ssh.CipherAES128CTR, true},
		{ssh.CipherAES256CTR, true},
		{ssh.CipherChaCha20Poly1305, false},
	} {
		t.Run(tc.cipher, func(t *testing.T) {
			conn, err := ssh.Dial("tcp", e.srv.Addr(), &ssh.ClientConfig{
				Config: ssh.Config{Ciphers: []string{tc.cipher}},
				User:   "alice", Auth: []ssh.AuthMethod{ssh.Password(alicePW)},
				HostKeyCallback: ssh.FixedHostKey(e.srv.HostKeys()[0]), Timeout: 10 * time.Second,
			})
			if !tc.ok {
				if err == nil {
					conn.Close()
					t.Fatalf("login offering only %s succeeded", tc.cipher)
				}
				if !strings.Contains(err.Error(), "no common algorithm") {
					t.Fatalf("login offering only %s: %v, want no common algorithm", tc.cipher, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("login with %s: %v", tc.cipher, err)
			}
			defer conn.Close()
			c, err := xsftp.NewClient(conn, xsftp.UseConcurrentWrites(true))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			p := "/" + tc.cipher
			putFile(t, c, p, data)
			if got := getFile(t, c, p); !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, want %d identical", len(got), len(data))
			}
		})
	}
}

func putFile(t *testing.T, c *xsftp.Client, p string, data []byte) {
	t.Helper()
	f, err := c.Create(p)
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		f.Close()
		t.Fatalf("write %s: %v", p, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", p, err)
	}
}

func getFile(t *testing.T, c *xsftp.Client, p string) []byte {
	t.Helper()
	f, err := c.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := f.WriteTo(&b); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b.Bytes()
}

// TestConcurrentTransfers: packet buffers are reused once a request is
// answered (pkg/sftp's allocator), so sessions and files that move data
// at the same time, with 64 requests in flight each, writing out of order
// and reading while others write, must each get exactly their own bytes.
func TestConcurrentTransfers(t *testing.T) {
	e := newEnv(t, envOptions{})
	const sessions, files = 3, 3
	var wg sync.WaitGroup
	errs := make(chan error, sessions*files*2)
	seed := func(i, j int) byte { return byte(40 + i*files + j) }
	size := func(i, j int) int { return 1<<20 + 777*(i*files+j) + (i+j)%2*(2<<20) } // some stream, some not
	clients := make([]*xsftp.Client, sessions)
	for i := range clients {
		clients[i] = e.client("alice", alicePW)
	}
	for i, c := range clients {
		for j := range files {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := fmt.Sprintf("/t%d-%d", i, j)
				data := pseudo(seed(i, j), size(i, j))
				f, err := c.Create(p)
				if err == nil {
					_, err = f.ReadFrom(bytes.NewReader(data))
					if cerr := f.Close(); err == nil {
						err = cerr
					}
				}
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", p, err)
					return
				}
				// Read it back (and a file of another session) while the
				// other uploads still run.
				for _, q := range []struct{ i, j int }{{i, j}, {(i + 1) % sessions, j}} {
					qp := fmt.Sprintf("/t%d-%d", q.i, q.j)
					r, err := c.Open(qp)
					if errors.Is(err, fs.ErrNotExist) {
						continue // not uploaded yet
					}
					if err != nil {
						errs <- fmt.Errorf("open %s: %w", qp, err)
						return
					}
					var b bytes.Buffer
					_, err = r.WriteTo(&b)
					r.Close()
					if err != nil {
						errs <- fmt.Errorf("read %s: %w", qp, err)
						return
					}
					if !bytes.Equal(b.Bytes(), pseudo(seed(q.i, q.j), size(q.i, q.j))) {
						errs <- fmt.Errorf("%s read back %d bytes, not the ones written", qp, b.Len())
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestOpenSeesCurrentFile: with the node's cached directories, a
// truncating create takes a cached miss as it is (no directory read per
// new file), but an open that keeps or must not replace what is there
// (no TRUNC, EXCL) sees a file another client made a moment ago.
func TestOpenSeesCurrentFile(t *testing.T) {
	e := newEnv(t, envOptions{dirCache: time.Minute})
	other := e.drive("alice") // another client of the same root
	for _, tc := range []struct {
		name  string
		path  string
		flags uint32
		code  uint32 // the open's status (0: a handle)
		want  string // the file afterwards
	}{
		{"rewrite without truncate keeps the current content", "/keep", fWrite | fCreat, 0, "MADE elsewhere"},
		{"exclusive create sees the file", "/excl", fWrite | fCreat | fExcl, fxFailure, "made elsewhere"},
		{"truncating create replaces it", "/trunc", fWrite | fCreat | fTrunc, 0, "MADE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tarnClient(t, e, "alice", alicePW) // a drive of its own
			// The session reads the root now, so later look-ups hit its
			// cache, which then misses the file made next.
			if r, err := c.path1(pStat, "/"); err != nil || r.result() != 0 {
				t.Fatalf("stat /: %v %+v", err, r)
			}
			e.put(other, tc.path, []byte("made elsewhere"))
			r, err := c.open(tc.path, tc.flags, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.result() != tc.code {
				t.Fatalf("open: status %d %q, want %d", r.result(), r.msg, tc.code)
			}
			if tc.code == 0 {
				h := r.handle()
				if r, err := c.call(pWrite, pkt{}.str(h).u64(0).str("MADE")); err != nil || r.result() != 0 {
					t.Fatalf("write: %v %d %q", err, r.result(), r.msg)
				}
				if r, err := c.closeHandle(h); err != nil || r.result() != 0 {
					t.Fatalf("close: %v %d %q", err, r.result(), r.msg)
				}
			}
			got, err := e.get(other, tc.path)
			if err != nil || string(got) != tc.want {
				t.Fatalf("%s holds %q (%v), want %q", tc.path, got, err, tc.want)
			}
		})
	}
}

// TestNewFileReadsNoDirectory: with the node's cached directories, the
// open, writes and close of a new file (as sftp put, scp and rclone make
// them) read no directory: the open takes the cached miss, the close
// uploads with its known size and links through the directory's Modify.
func TestNewFileReadsNoDirectory(t *testing.T) {
	e := newEnv(t, envOptions{dirCache: time.Minute})
	c := tarnClient(t, e, "alice", alicePW)
	if r, err := c.path1(pStat, "/"); err != nil || r.result() != 0 {
		t.Fatalf("stat /: %v %+v", err, r)
	}
	data := pseudo(3, 4096)
	for i := range 3 {
		p := fmt.Sprintf("/new%d", i)
		before := e.counts.reads.Load()
		r, err := c.open(p, fWrite|fCreat|fTrunc, nil)
		if err != nil || r.typ != pHandle {
			t.Fatalf("open %s: %v %+v", p, err, r)
		}
		h := r.handle()
		if r, err := c.call(pWrite, pkt{}.str(h).u64(0).str(string(data))); err != nil || r.result() != 0 {
			t.Fatalf("write: %v %+v", err, r)
		}
		if r, err := c.closeHandle(h); err != nil || r.result() != 0 {
			t.Fatalf("close: %v %d %q", err, r.result(), r.msg)
		}
		if n := e.counts.reads.Load() - before; n != 0 {
			t.Fatalf("%s: %d directory reads for a new file, want 0", p, n)
		}
		if got, err := e.get(e.drive("alice"), p); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s read back %d bytes (%v), want %d identical", p, len(got), err, len(data))
		}
	}
}
