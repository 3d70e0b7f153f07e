package sftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestWrongKindOfHandle: a READ on a handle opened write-only and a WRITE
// on one opened read-only fail (SSH_FX_FAILURE) and change nothing.
// pkg/sftp runs such a request as the handle's kind: the READ wrote its
// answer buffer (255 KiB of zeros or an earlier packet's bytes) into the
// file and answered OK; the WRITE answered with the file's bytes.
func TestWrongKindOfHandle(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.drive("alice")
	e.put(d, "/r.txt", []byte("read only content"))
	c := rawSession(t, e)
	wh, _ := c.open("/w.txt", fWrite|fCreat|fTrunc, nil)
	rh, _ := c.open("/r.txt", fRead, nil)
	if wh.typ != pHandle || rh.typ != pHandle {
		t.Fatalf("open: %+v %+v", wh, rh)
	}
	if r, err := c.call(pWrite, pkt{}.str(wh.handle()).u64(0).str("hello")); err != nil || r.result() != 0 {
		t.Fatalf("write: %v %+v", err, r)
	}
	for _, tc := range []struct {
		name string
		typ  byte
		body pkt
	}{
		{"read on a write-only handle", pRead, pkt{}.str(wh.handle()).u64(0).u32(100)},
		{"read past the end of a write-only handle", pRead, pkt{}.str(wh.handle()).u64(1000).u32(maxData)},
		{"write on a read-only handle", pWrite, pkt{}.str(rh.handle()).u64(0).str("XXXX")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.call(tc.typ, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if r.typ != pStatus || r.result() != fxFailure {
				t.Fatalf("answer type %d, status %d; want a failure status", r.typ, r.result())
			}
		})
	}
	for _, h := range []string{wh.handle(), rh.handle()} {
		if r, err := c.closeHandle(h); err != nil || r.result() != 0 {
			t.Fatalf("close: %v %+v", err, r)
		}
	}
	for p, want := range map[string]string{"/w.txt": "hello", "/r.txt": "read only content"} {
		if got, err := e.get(d, p); err != nil || string(got) != want {
			t.Errorf("%s: %d bytes %q (%v), want %q", p, len(got), got[:min(len(got), 20)], err, want)
		}
	}
}

// TestFastPathFollowsPendingChanges: a READ sent right after an FSETSTAT
// of the same handle that pkg/sftp has not answered yet is not answered
// by the fast path (which would pass it), but left to pkg/sftp.
func TestFastPathFollowsPendingChanges(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.drive("alice")
	// Big enough to stream: its reads are served from the read-ahead.
	big := pseudo(7, 2*readBlock+5)
	e.put(d, "/f.txt", big)
	c := rawSession(t, e)
	rh, _ := c.open("/f.txt", fRead, nil)
	if rh.typ != pHandle {
		t.Fatalf("open: %+v", rh)
	}
	h := rh.handle()
	// A read alone is served by the fast path.
	before := e.srv.fastServed.Load()
	if got, _ := pipelineReads(t, c, []readReq{{h: h, n: 4}}); !bytes.Equal(got[c.id], big[:4]) {
		t.Fatalf("read: %q", got[c.id])
	}
	if e.srv.fastServed.Load() != before+1 {
		t.Fatal("a lone read was not served by the fast path")
	}
	// An FSETSTAT of the size (a grid resize, milliseconds) and a read
	// sent at once: the read must follow it.
	before = e.srv.fastServed.Load()
	c.id++
	setID := c.id
	if err := c.send(pFsetstat, pkt{}.u32(setID).str(h).u32(1).u64(3)); err != nil {
		t.Fatal(err)
	}
	c.id++
	if err := c.send(pRead, pkt{}.u32(c.id).str(h).u64(0).u32(4)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := c.recv(); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.srv.fastServed.Load() - before; n != 0 {
		t.Fatalf("the fast path answered %d requests sent behind an unanswered FSETSTAT of their handle", n)
	}
	// Once answered, reads take the fast path again.
	before = e.srv.fastServed.Load()
	if got, _ := pipelineReads(t, c, []readReq{{h: h, off: 4, n: 4}}); !bytes.Equal(got[c.id], big[4:8]) {
		t.Fatalf("read after: %q", got[c.id])
	}
	if e.srv.fastServed.Load() != before+1 {
		t.Fatal("reads stayed off the fast path after the FSETSTAT was answered")
	}
}

// failWriter accepts writes until fail is set.
type failWriter struct {
	in   io.Reader
	fail bool
}

func (f *failWriter) Read(p []byte) (int, error) { return f.in.Read(p) }
func (f *failWriter) Close() error               { return nil }
func (f *failWriter) Write(p []byte) (int, error) {
	if f.fail {
		return 0, errors.New("channel closed")
	}
	return len(p), nil
}

// TestLimitsConnWriteErrorNoHang: when the channel fails pkg/sftp's write
// of a packet's header (the session is ending), its payload never
// follows; an answer from the read loop must then fail at once instead of
// waiting forever for the packet's end (the session's goroutines, open
// handles and spool files were kept until the process ended).
func TestLimitsConnWriteErrorNoHang(t *testing.T) {
	rw := &failWriter{in: bytes.NewReader(nil)}
	c := newLimitsConn(rw)
	if _, err := c.Write(packet(fxpVersion, pkt{}.u32(3))); err != nil {
		t.Fatal(err)
	}
	rw.fail = true
	data := packet(fxpData, pkt{}.u32(5).str("0123456789"))
	if _, err := c.Write(data[:13]); err == nil {
		t.Fatal("write to a failed channel succeeded")
	}
	done := make(chan error, 1)
	go func() { done <- c.send(statusPacket(nil, 6, fxOK)) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("answer on a failed channel succeeded")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("an answer waits forever for a packet whose payload never comes")
	}
}

// TestUsersGroupsByID: OpenSSH's sftp shows the account's name as owner
// and group both in a folder's listing and in `ls -l FILE` (from the
// attributes, named through users-groups-by-id@openssh.com); it showed
// "0 0" for the file.
func TestUsersGroupsByID(t *testing.T) {
	needTools(t, "sftp", "sshpass")
	e := newEnv(t, envOptions{})
	e.put(e.drive("alice"), "/f.txt", []byte("hello"))
	local := t.TempDir()
	bf := filepath.Join(local, "batch")
	os.WriteFile(bf, []byte("ls -l f.txt\nls -l\n"), 0o644)
	args := append([]string{"-p", alicePW, "sftp", "-o", "BatchMode=no", "-b", bf}, sshOpts...)
	args = append(args, "-P", e.port(), "alice@127.0.0.1")
	out, err := run(t, "sshpass", args...)
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, " f.txt") && strings.HasPrefix(l, "-") {
			lines = append(lines, l)
			if f := strings.Fields(l); len(f) < 4 || f[2] != "alice" || f[3] != "alice" {
				t.Errorf("owner and group of %q, want alice alice", l)
			}
		}
	}
	if len(lines) != 2 {
		t.Fatalf("want 2 listing lines of f.txt:\n%s", out)
	}

	// The extension itself: the session's ids named, others not.
	c := rawSession(t, e)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	ids := func(v ...uint32) string {
		var b []byte
		for _, x := range v {
			b = binary.BigEndian.AppendUint32(b, x)
		}
		return string(b)
	}
	r, err := c.ext(idsExt, pkt{}.str(ids(uid, 4242)).str(ids(gid)))
	if err != nil || r.typ != pExtReply {
		t.Fatalf("users-groups-by-id: %v, answer type %d", err, r.typ)
	}
	want := pkt{}.str(string(pkt{}.str("alice").str(""))).str(string(pkt{}.str("alice")))
	if !bytes.Equal(r.body, want) {
		t.Fatalf("users-groups-by-id answer %q, want %q", r.body, want)
	}
	r, err = c.ext(idsExt, pkt{}.str("abc"))
	if err != nil || r.typ != pStatus || r.result() == 0 {
		t.Fatalf("malformed users-groups-by-id: %v %+v, want a failure", err, r)
	}
}

// TestSlowReaderBoundedNoLeak: a client that pipelines reads of 255 KiB
// (50 MiB of answers) and writes to another file while reading no answer
// holds the session at a bounded heap (the send queue, the channel
// window, pkg/sftp's pages: not the answers), then gets every answer
// right when it reads; sessions dropped with requests in flight leave no
// goroutine behind (the send queue's, the socket batcher's, pkg/sftp's).
func TestSlowReaderBoundedNoLeak(t *testing.T) {
	e := newEnv(t, envOptions{})
	data := pseudo(3, 3<<20+11)
	e.put(e.drive("alice"), "/big.bin", data)
	base := runtime.NumGoroutine()

	c := rawSession(t, e)
	rh, _ := c.open("/big.bin", fRead, nil)
	wh, _ := c.open("/up.bin", fWrite|fCreat|fTrunc, nil)
	if rh.typ != pHandle || wh.typ != pHandle {
		t.Fatalf("open: %+v %+v", rh, wh)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapInuse
	const reads = 200
	first := c.id + 1
	for i := range reads {
		c.id++
		off := uint64(i%13) * maxData
		if err := c.send(pRead, pkt{}.u32(c.id).str(rh.handle()).u64(off).u32(maxData)); err != nil {
			t.Fatal(err)
		}
	}
	up := pseudo(4, 64<<10)
	for i := range 16 {
		c.id++
		if err := c.send(pWrite, pkt{}.u32(c.id).str(wh.handle()).u64(uint64(i*len(up))).str(string(up))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grew := int64(ms.HeapInuse) - int64(heap0); grew > 24<<20 {
		t.Errorf("heap grew %d MiB while the client read nothing (%d MiB of answers asked)", grew>>20, reads*maxData>>20)
	}
	for range reads + 16 {
		typ, body, err := c.recv()
		if err != nil {
			t.Fatal(err)
		}
		id := binary.BigEndian.Uint32(body)
		switch {
		case id < first || id > c.id:
			t.Fatalf("answer to unknown id %d", id)
		case id < first+reads:
			off := int((id-first)%13) * maxData
			want := data[off:min(len(data), off+maxData)]
			if typ != pData || !bytes.Equal(body[8:], want) {
				t.Fatalf("read %d: type %d, %d bytes, want %d", id, typ, len(body)-8, len(want))
			}
		default:
			if typ != pStatus || binary.BigEndian.Uint32(body[4:]) != 0 {
				t.Fatalf("write %d: type %d %x", id, typ, body)
			}
		}
	}

	// Sessions dropped with reads and writes in flight and unread.
	c.closeHandle(rh.handle())
	c.closeHandle(wh.handle())
	time.Sleep(200 * time.Millisecond)
	base = runtime.NumGoroutine()
	for range 4 {
		conn, err := e.dial("alice", alicePW)
		if err != nil {
			t.Fatal(err)
		}
		sess, _ := conn.NewSession()
		in, _ := sess.StdinPipe()
		out, _ := sess.StdoutPipe()
		if err := sess.RequestSubsystem("sftp"); err != nil {
			t.Fatal(err)
		}
		rc, err := newRawClient(out, in)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := rc.open("/big.bin", fRead, nil)
		w, _ := rc.open("/gone.bin", fWrite|fCreat|fTrunc, nil)
		for i := range 40 {
			rc.id++
			rc.send(pRead, pkt{}.u32(rc.id).str(r.handle()).u64(uint64(i%13)*maxData).u32(maxData))
			rc.id++
			rc.send(pWrite, pkt{}.u32(rc.id).str(w.handle()).u64(uint64(i)*65536).str(string(up)))
		}
		conn.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, %d before the sessions:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
	if _, err := e.drive("alice").Stat(ctxT(t), "/gone.bin"); err == nil {
		t.Error("a dropped session's unclosed file was linked")
	}
}
