package sftp

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLimitsExtension: the version packet advertises limits@openssh.com,
// its answer gives 255 KiB reads and writes, requests of that size carry
// exact bytes in one packet each way, every one of them answered by the
// data fast path (none falls back to pkg/sftp; the reads of a 1.5 MiB
// file come from its read-ahead stream, across its 1 MiB blocks), and
// other extensions still reach pkg/sftp (statvfs answered, an unknown
// one OpUnsupported).
func TestLimitsExtension(t *testing.T) {
	e := newEnv(t, envOptions{})
	conn, err := e.dial("alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sess, _ := conn.NewSession()
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem("sftp"); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{r: out, w: in}
	if err := c.send(pInit, pkt{}.u32(3)); err != nil {
		t.Fatal(err)
	}
	typ, body, err := c.recv()
	if err != nil || typ != pVersion {
		t.Fatalf("version: %v, packet %d", err, typ)
	}
	if exts := versionExtensions(t, body); exts[limitsExt] != "1" || exts["posix-rename@openssh.com"] != "1" {
		t.Fatalf("extensions %v, want %s 1 beside pkg/sftp's", exts, limitsExt)
	}

	r, err := c.ext(limitsExt, nil)
	if err != nil || r.typ != pExtReply || len(r.body) != 32 {
		t.Fatalf("limits: %v %+v", err, r)
	}
	var got [4]uint64
	for i := range got {
		got[i] = binary.BigEndian.Uint64(r.body[8*i:])
	}
	if want := [4]uint64{256 << 10, 255 << 10, 255 << 10, 0}; got != want {
		t.Fatalf("limits %v, want %v (packet, read, write, open handles)", got, want)
	}

	data := pseudo(21, 6*maxData+99)
	served := e.srv.fastServed.Load()
	requests := 0
	r, err = c.open("/big", fWrite|fCreat|fTrunc, nil)
	if err != nil || r.typ != pHandle {
		t.Fatalf("open: %v %+v", err, r)
	}
	h := r.handle()
	for off := 0; off < len(data); off += maxData {
		end := min(off+maxData, len(data))
		if r, err := c.call(pWrite, pkt{}.str(h).u64(uint64(off)).str(string(data[off:end]))); err != nil || r.result() != 0 {
			t.Fatalf("write of %d bytes at %d: %v %d %q", end-off, off, err, r.result(), r.msg)
		}
		requests++
	}
	if r, err := c.closeHandle(h); err != nil || r.result() != 0 {
		t.Fatalf("close: %v %+v", err, r)
	}
	if stored, err := e.get(e.drive("alice"), "/big"); err != nil || !bytes.Equal(stored, data) {
		t.Fatalf("stored %d bytes (%v), want %d identical", len(stored), err, len(data))
	}
	r, err = c.open("/big", fRead, nil)
	if err != nil || r.typ != pHandle {
		t.Fatalf("open for read: %v %+v", err, r)
	}
	h = r.handle()
	var back []byte
	for off := 0; off < len(data); off += maxData {
		r, err := c.call(pRead, pkt{}.str(h).u64(uint64(off)).u32(maxData))
		if err != nil || r.typ != pData || len(r.body) < 4 {
			t.Fatalf("read at %d: %v %+v", off, err, r)
		}
		n := binary.BigEndian.Uint32(r.body)
		if want := min(maxData, len(data)-off); int(n) != want {
			t.Fatalf("read at %d: %d bytes in one answer, want %d", off, n, want)
		}
		back = append(back, r.body[4:4+n]...)
		requests++
	}
	c.closeHandle(h)
	if !bytes.Equal(back, data) {
		t.Fatal("read back other bytes than written")
	}
	if n := int(e.srv.fastServed.Load() - served); n != requests {
		t.Fatalf("the fast path answered %d of %d reads and writes of 255 KiB", n, requests)
	}

	if r, err := c.ext("statvfs@openssh.com", pkt{}.str("/")); err != nil || r.typ != pExtReply {
		t.Fatalf("statvfs after limits: %v %+v", err, r)
	}
	if r, err := c.ext("no-such@example.com", nil); err != nil || r.result() != fxOpUnsupported {
		t.Fatalf("unknown extension: %v %+v, want OpUnsupported", err, r)
	}
}

func versionExtensions(t *testing.T, body []byte) map[string]string {
	t.Helper()
	if len(body) < 4 {
		t.Fatalf("short version packet")
	}
	m := map[string]string{}
	b := body[4:]
	str := func() string {
		if len(b) < 4 {
			t.Fatalf("bad extension list")
		}
		n := binary.BigEndian.Uint32(b)
		if int(n) > len(b)-4 {
			t.Fatalf("bad extension list")
		}
		s := string(b[4 : 4+n])
		b = b[4+n:]
		return s
	}
	for len(b) > 0 {
		k := str()
		m[k] = str()
	}
	return m
}

// TestOpenSSHLargeRequests: OpenSSH's sftp reads the limits and moves
// 255 KiB per request both ways, byte for byte.
func TestOpenSSHLargeRequests(t *testing.T) {
	needTools(t, "sftp", "sshpass")
	e := newEnv(t, envOptions{})
	local := t.TempDir()
	data := pseudo(22, 5<<20+4321)
	os.WriteFile(filepath.Join(local, "up.bin"), data, 0o644)
	bf := filepath.Join(local, "batch")
	os.WriteFile(bf, []byte("put "+local+"/up.bin /up.bin\nget /up.bin "+local+"/down.bin\n"), 0o644)
	args := append([]string{"-p", alicePW, "sftp", "-vvv", "-o", "BatchMode=no", "-b", bf}, sshOpts...)
	args = append(args, "-o", "LogLevel=DEBUG3", "-P", e.port(), "alice@127.0.0.1")
	out, err := run(t, "sshpass", args...)
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	if want := "buffer sizes 261120 / 261120; using 261120 / 261120"; !strings.Contains(out, want) {
		t.Fatalf("sftp -vvv does not say %q:\n%s", want, lastLines(out, 40))
	}
	if got, _ := os.ReadFile(filepath.Join(local, "down.bin")); !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes back, want %d identical", len(got), len(data))
	}
	if got, err := e.get(e.drive("alice"), "/up.bin"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes (%v), want %d identical", len(got), err, len(data))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// pipeRW is one end of a limitsConn under test: reads come from in,
// writes go to out.
type pipeRW struct {
	in  io.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (p *pipeRW) Read(b []byte) (int, error) { return p.in.Read(b) }
func (p *pipeRW) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}
func (p *pipeRW) Close() error { return nil }
func (p *pipeRW) written() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.out.Bytes())
}

func packet(typ byte, body pkt) []byte {
	return append(pkt{}.u32(uint32(len(body)+1)), append([]byte{typ}, body...)...)
}

// TestLimitsConnAnswersBetweenPackets: an answer from limitsConn never
// lands inside one of pkg/sftp's packets, which it writes in two pieces.
func TestLimitsConnAnswersBetweenPackets(t *testing.T) {
	req := packet(fxpExtended, pkt{}.u32(7).str(limitsExt))
	rw := &pipeRW{in: bytes.NewReader(req)}
	c := newLimitsConn(rw)
	version := packet(fxpVersion, pkt{}.u32(3))
	if _, err := c.Write(version); err != nil {
		t.Fatal(err)
	}
	data := packet(103, pkt{}.u32(5).str("0123456789"))
	c.Write(data[:9]) // header written, payload to come
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 4)) // answers the request, then meets EOF
		read <- err
	}()
	select {
	case err := <-read:
		t.Fatalf("answered inside a packet (read returned %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.Write(data[9:])
	if err := <-read; err != io.EOF {
		t.Fatalf("read: %v, want EOF after the answer", err)
	}
	v, _ := withLimits(version)
	want := append(append(append([]byte(nil), v...), data...), limitsReply(7)...)
	if got := rw.written(); !bytes.Equal(got, want) {
		t.Fatalf("written:\n%x\nwant\n%x", got, want)
	}
}

// TestLimitsConnPassThrough: without the extension advertised (the first
// packet written was no version packet) or with the outgoing framing lost,
// limits requests go on to pkg/sftp like any other packet.
func TestLimitsConnPassThrough(t *testing.T) {
	req := packet(fxpExtended, pkt{}.u32(7).str(limitsExt))
	for _, tc := range []struct {
		name  string
		first [][]byte
	}{
		{"no version packet first", [][]byte{packet(fxpExtReply, pkt{}.u32(1))}},
		{"framing lost", [][]byte{packet(fxpVersion, pkt{}.u32(3)), {0, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rw := &pipeRW{in: bytes.NewReader(req)}
			c := newLimitsConn(rw)
			for _, b := range tc.first {
				c.Write(b)
			}
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, req) {
				t.Fatalf("read %x (%v), want the request passed on: %x", got, err, req)
			}
		})
	}
}

// FuzzLimitsConn: any incoming byte stream comes out of limitsConn as it
// went in, less the whole limits requests it answers, one answer each,
// and it never panics.
func FuzzLimitsConn(f *testing.F) {
	lim := packet(fxpExtended, pkt{}.u32(9).str(limitsExt))
	other := packet(fxpExtended, pkt{}.u32(4).str("statvfs@openssh.com").str("/"))
	write := packet(6, pkt{}.u32(2).str("1").u64(0).str("abc"))
	f.Add(append(append(append([]byte(nil), lim...), write...), other...))
	f.Add(lim[:len(lim)-3])
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 1, fxpExtended})
	f.Fuzz(func(t *testing.T, in []byte) {
		rw := &pipeRW{in: bytes.NewReader(in)}
		c := newLimitsConn(rw)
		c.Write(packet(fxpVersion, pkt{}.u32(3)))
		got, _ := io.ReadAll(c)
		want, whole, answers := withoutLimits(in)
		// A cut last packet may be passed on in part or not at all: the
		// session ends there either way.
		if !bytes.HasPrefix(want, got) || len(got) < whole {
			t.Fatalf("passed on %x, want %x", got, want)
		}
		out := rw.written()
		if n := (len(out) - len(mustWithLimits(t))) / len(limitsReply(0)); n != answers {
			t.Fatalf("%d answers, want %d", n, answers)
		}
	})
}

func mustWithLimits(t *testing.T) []byte {
	v, ok := withLimits(packet(fxpVersion, pkt{}.u32(3)))
	if !ok {
		t.Fatal("version packet not extended")
	}
	return v
}

// withoutLimits is the reference filter: in with its whole limits
// requests (as limitsConn recognises them) taken out, how many bytes of
// that are whole packets, and how many requests were taken out.
func withoutLimits(in []byte) ([]byte, int, int) {
	var out []byte
	n := 0
	for len(in) >= 5 {
		length := binary.BigEndian.Uint32(in)
		if length == 0 {
			out = append(out, in[:4]...)
			in = in[4:]
			continue
		}
		end := 4 + uint64(length)
		if in[4] == fxpExtended && length <= maxExtended && end <= uint64(len(in)) {
			if _, name, ok := parseExtended(in[5:end]); ok && name == limitsExt {
				n++
				in = in[end:]
				continue
			}
		}
		if end > uint64(len(in)) {
			break
		}
		out = append(out, in[:end]...)
		in = in[end:]
	}
	return append(out, in...), len(out), n
}

// TestLimitsConnPendingByPlace: a request on a handle passed to pkg/sftp
// stays pending, holding back the fast path's reads of the handle, until
// pkg/sftp's answer to it is written, told by its place among the
// answers (pkg/sftp answers in the order it reads), not by its id: the
// version packet (whose version word stands where an id would) and the
// answer to another request with the same id do not end it.
func TestLimitsConnPendingByPlace(t *testing.T) {
	initPkt := packet(pInit, pkt{}.u32(3))
	version := packet(fxpVersion, pkt{}.u32(3))
	fsetstat := func(id uint32, h string) []byte {
		return packet(fxpFsetstat, pkt{}.u32(id).str(h).u32(aSize).u64(0))
	}
	status := func(id uint32) []byte { return statusPacket(nil, id, fxOK) }
	attrs := func(id uint32) []byte { return packet(pAttrs, pkt{}.u32(id).u32(0)) }
	type step struct {
		answer []byte          // a packet pkg/sftp writes
		follow map[string]bool // then: must a READ of the handle follow?
	}
	cases := []struct {
		name  string
		in    [][]byte // the client's packets, all read first
		steps []step
	}{
		{
			name: "request sent before the version packet, id 3",
			in:   [][]byte{initPkt, fsetstat(3, "h1")},
			steps: []step{
				{version, map[string]bool{"h1": true}},
				{status(3), map[string]bool{"h1": false}},
			},
		},
		{
			name: "id reused by a request not on a handle",
			in:   [][]byte{initPkt, packet(pStat, pkt{}.u32(7).str("/x")), fsetstat(7, "h1")},
			steps: []step{
				{version, map[string]bool{"h1": true}},
				{attrs(7), map[string]bool{"h1": true}},
				{status(7), map[string]bool{"h1": false}},
			},
		},
		{
			name: "id reused on two handles",
			in:   [][]byte{initPkt, fsetstat(9, "h1"), fsetstat(9, "h2")},
			steps: []step{
				{version, map[string]bool{"h1": true, "h2": true}},
				{status(9), map[string]bool{"h1": false, "h2": true}},
				{status(9), map[string]bool{"h1": false, "h2": false}},
			},
		},
		{
			name: "a close between",
			in:   [][]byte{initPkt, packet(fxpClose, pkt{}.u32(4).str("h2")), fsetstat(5, "h1")},
			steps: []step{
				{version, map[string]bool{"h1": true}},
				{status(4), map[string]bool{"h1": true}},
				{status(5), map[string]bool{"h1": false}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rw := &pipeRW{in: bytes.NewReader(bytes.Join(tc.in, nil))}
			c := newLimitsConn(rw)
			var served, queued atomic.Int64
			c.fast = newFastHandles(&served, &queued)
			c.fast.send = c.send
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, bytes.Join(tc.in, nil)) {
				t.Fatalf("passed on %x (%v), want every packet", got, err)
			}
			for i, s := range tc.steps {
				if _, err := c.Write(s.answer); err != nil {
					t.Fatal(err)
				}
				for h, want := range s.follow {
					if got := c.mustFollow(fxpRead, h); got != want {
						t.Fatalf("after answer %d: a read of %s must follow: %v, want %v", i, h, got, want)
					}
				}
			}
		})
	}
}
