package sftp

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/conf"
)

// gridSpace is a grid of 40 GiB free, 3-of-5: room for 24 GiB.
var gridSpace = Space{Total: 24 << 30, Free: 24 << 30, Raw: 40 << 30, K: 3, N: 5}

// TestFileTooLarge: a WRITE, an FSETSTAT or SETSTAT size and a truncate
// of a closed file that would make a file larger than the grid can
// store (its free space over N/K) fail with SSH_FX_FAILURE and a message
// saying so, before anything is spooled or read; the handle's close then
// fails and links nothing; sizes within the limit work; the refusal is
// logged once per handle.
func TestFileTooLarge(t *testing.T) {
	const tib = 1 << 40
	wantMsg := "file too large: 1.0 TiB needs 1.7 TiB of the grid's 40.0 GiB free (3-of-5 shares)"
	e := newEnv(t, envOptions{space: &gridSpace})
	d := e.drive("alice")
	e.put(d, "/existing.bin", pseudo(3, 1000))
	c := rawSession(t, e)
	mustHandle := func(p string, flags uint32) string {
		t.Helper()
		r, err := c.open(p, flags, nil)
		if err != nil || r.typ != pHandle {
			t.Fatalf("open %s: %v %+v", p, err, r)
		}
		return r.handle()
	}
	write := func(h string, off uint64, b []byte) reply {
		t.Helper()
		r, err := c.call(pWrite, pkt{}.str(h).u64(off).str(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	refused := func(what string, r reply, size string) {
		t.Helper()
		if r.typ != pStatus || r.code != fxFailure || !strings.Contains(r.msg, "file too large: "+size) {
			t.Fatalf("%s: %+v, want failure \"file too large: %s...\"", what, r, size)
		}
	}

	// One byte at 1 TiB - 1: the file would be 1 TiB.
	h := mustHandle("/sparse.bin", fWrite|fCreat|fTrunc)
	r := write(h, tib-1, []byte{1})
	refused("write at 1 TiB", r, "1.0 TiB")
	if !strings.Contains(r.msg, wantMsg) || !strings.HasPrefix(r.msg, "write /sparse.bin: ") {
		t.Fatalf("message %q, want \"write /sparse.bin: %s\"", r.msg, wantMsg)
	}
	// Again on the same handle (pkg/sftp's path this time, or the fast
	// path): refused, logged once.
	refused("second write at 1 TiB", write(h, tib, []byte{1}), "1.0 TiB")
	// Writes within the limit still work on the handle...
	if r := write(h, 0, []byte("hello")); r.result() != 0 {
		t.Fatalf("write within the limit: %+v", r)
	}
	// ...but the close fails: the client's 1 TiB write is missing.
	if r, _ := c.closeHandle(h); r.result() == 0 {
		t.Fatal("close after a refused write answered OK")
	}
	if _, err := d.Stat(ctxT(t), "/sparse.bin"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat after the refused file: %v", err)
	}
	if n := strings.Count(e.logBuf.String(), "refused: file too large"); n != 1 {
		t.Fatalf("%d log lines for one handle's refusals, want 1:\n%s", n, e.logBuf.String())
	}

	// FSETSTAT and SETSTAT of an open file: an extending truncate.
	h = mustHandle("/trunc.bin", fWrite|fCreat|fTrunc)
	r, _ = c.call(pFsetstat, pkt{}.str(h).u32(aSize).u64(30<<30))
	refused("fsetstat 30 GiB", r, "30.0 GiB")
	r, _ = c.call(pSetstat, pkt{}.str("/trunc.bin").u32(aSize).u64(25<<30))
	refused("setstat of an open file 25 GiB", r, "25.0 GiB")
	if r, _ := c.call(pFsetstat, pkt{}.str(h).u32(aSize).u64(1<<20)); r.result() != 0 {
		t.Fatalf("fsetstat 1 MiB: %+v", r)
	}
	if r, _ := c.closeHandle(h); r.result() != 0 {
		t.Fatalf("close of a 1 MiB truncated file: %+v", r)
	}
	if info, err := d.Stat(ctxT(t), "/trunc.bin"); err != nil || info.Size() != 1<<20 {
		t.Fatalf("truncated file: %v %v", info, err)
	}

	// SETSTAT size of a closed file: refused before its content is read.
	opens := e.counts.opens.Load()
	r, _ = c.call(pSetstat, pkt{}.str("/existing.bin").u32(aSize).u64(tib))
	refused("setstat of a closed file", r, "1.0 TiB")
	if n := e.counts.opens.Load() - opens; n != 0 {
		t.Fatalf("the refused setstat opened %d grid files", n)
	}
	if got, err := e.get(d, "/existing.bin"); err != nil || !bytes.Equal(got, pseudo(3, 1000)) {
		t.Fatalf("existing file after a refused setstat: %d bytes, %v", len(got), err)
	}
}

// TestMaxFileSize: the profile's sftp.max_file_size refuses a bigger
// upload through pkg/sftp's client (its writes pipelined on the fast
// path), an FSETSTAT beyond it, and a legacy scp file at its C line (the
// client skips its bytes and goes on with the next file); files up to the
// limit pass.
func TestMaxFileSize(t *testing.T) {
	e := newEnv(t, envOptions{maxFileSize: conf.Size(1 << 20)})
	d := e.drive("alice")
	c := e.client("alice", alicePW)

	put := func(p string, data []byte) error {
		f, err := c.Create(p)
		if err != nil {
			return err
		}
		if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := put("/ok.bin", pseudo(1, 1<<20)); err != nil {
		t.Fatalf("put of exactly max_file_size: %v", err)
	}
	err := put("/big.bin", pseudo(2, 3<<20))
	if err == nil || !strings.Contains(err.Error(), "file too large") || !strings.Contains(err.Error(), "max_file_size 1.0 MiB") {
		t.Fatalf("put of 3 MiB over a 1 MiB max_file_size: %v", err)
	}
	if _, err := d.Stat(ctxT(t), "/big.bin"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat of the refused file: %v", err)
	}
	if err := c.Truncate("/ok.bin", 2<<20); err == nil || !strings.Contains(err.Error(), "file too large") {
		t.Fatalf("truncate beyond max_file_size: %v", err)
	}

	// Legacy scp: the C line of a 2 MiB file is refused (\1 and the
	// message), a 10-byte one after it is taken.
	s, in, out, _ := scpSession(t, e, "alice", alicePW, "scp -t /")
	expectAck(t, out)
	in.Write([]byte("C0644 2097152 huge.bin\n"))
	b, err := out.ReadByte()
	msg, _ := out.ReadString('\n')
	if err != nil || b != 1 || !strings.Contains(msg, "file too large") {
		t.Fatalf("scp C line of 2 MiB: %d %q %v", b, msg, err)
	}
	in.Write([]byte("C0644 10 small.txt\n"))
	expectAck(t, out)
	in.Write([]byte("0123456789\x00"))
	expectAck(t, out)
	in.Close()
	s.Wait()
	if _, err := d.Stat(ctxT(t), "/huge.bin"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat of the refused scp file: %v", err)
	}
	if got, err := e.get(d, "/small.txt"); err != nil || string(got) != "0123456789" {
		t.Fatalf("scp file after the refused one: %q %v", got, err)
	}
}

// TestFileTooLargeOpenSSH: OpenSSH's scp (legacy and SFTP modes) fails
// the upload of a file over max_file_size and nothing is stored for it.
func TestFileTooLargeOpenSSH(t *testing.T) {
	needTools(t, "scp")
	e := newEnv(t, envOptions{maxFileSize: conf.Size(1 << 20)})
	key := e.keyFile(t)
	src := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(src, pseudo(9, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		flag []string
	}{{"sftp", nil}, {"legacy", []string{"-O"}}} {
		t.Run(mode.name, func(t *testing.T) {
			args := append(append([]string{"-i", key, "-P", e.port()}, sshOpts...), mode.flag...)
			out, err := run(t, "scp", append(args, src, "alice@127.0.0.1:/"+mode.name+".bin")...)
			// OpenSSH's scp shows a legacy refusal's message; in SFTP
			// mode only the status ("write remote ...: Failure").
			want := "too large"
			if mode.name == "sftp" {
				want = "Failure"
			}
			if err == nil || !strings.Contains(out, want) {
				t.Fatalf("scp of 2 MiB over a 1 MiB limit: %v\n%s", err, out)
			}
			t.Logf("scp says: %s", strings.TrimSpace(out))
			if _, err := e.drive("alice").Stat(ctxT(t), "/"+mode.name+".bin"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("stat of the refused file: %v", err)
			}
		})
	}
}

func TestHumanSize(t *testing.T) {
	for _, c := range []struct {
		n    uint64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1 << 40, "1.0 TiB"}, {40 << 30, "40.0 GiB"}, {1536 << 20, "1.5 GiB"}, {1<<64 - 1, "16.0 EiB"}} {
		if got := humanSize(c.n); got != c.want {
			t.Errorf("humanSize(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

// TestSizeOverflow: sizes past the largest a file can hold (2^63-1
// bytes) are refused as too large, with or without a grid limit, not let
// through by a wrapped end: a WRITE whose offset+length passes 2^63 (at
// 2^63-1 the end wrapped negative and passed the check, and the spool
// failed "invalid argument"), an FSETSTAT size of 2^64-1 (it became -1)
// and a SETSTAT of a closed file to that size.
func TestSizeOverflow(t *testing.T) {
	spaces := []struct {
		name  string
		space *Space
	}{
		{"grid limit", &gridSpace},
		{"no limit known", nil},
	}
	for _, sp := range spaces {
		t.Run(sp.name, func(t *testing.T) {
			e := newEnv(t, envOptions{space: sp.space})
			d := e.drive("alice")
			e.put(d, "/existing.bin", pseudo(4, 1000))
			c := rawSession(t, e)
			r, err := c.open("/wrap.bin", fWrite|fCreat|fTrunc, nil)
			if err != nil || r.typ != pHandle {
				t.Fatalf("open: %v %+v", err, r)
			}
			h := r.handle()
			cases := []struct {
				name string
				typ  byte
				body pkt
				size string // in the message
			}{
				{"write: end wraps past 2^63", pWrite, pkt{}.str(h).u64(1<<63 - 1).str("ab"), "8.0 EiB"},
				{"write: end exactly 2^63", pWrite, pkt{}.str(h).u64(1<<63 - 2).str("ab"), "8.0 EiB"},
				{"fsetstat 2^64-1", pFsetstat, pkt{}.str(h).u32(aSize).u64(1<<64 - 1), "16.0 EiB"},
				{"setstat of an open file 2^63", pSetstat, pkt{}.str("/wrap.bin").u32(aSize).u64(1 << 63), "8.0 EiB"},
				{"setstat of a closed file 2^64-1", pSetstat, pkt{}.str("/existing.bin").u32(aSize).u64(1<<64 - 1), "16.0 EiB"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					r, err := c.call(tc.typ, tc.body)
					if err != nil {
						t.Fatal(err)
					}
					if r.typ != pStatus || r.code != fxFailure || !strings.Contains(r.msg, "file too large: "+tc.size) {
						t.Fatalf("%+v, want failure \"file too large: %s...\"", r, tc.size)
					}
				})
			}
			if r := func() reply {
				r, err := c.call(pWrite, pkt{}.str(h).u64(0).str("ok"))
				if err != nil {
					t.Fatal(err)
				}
				return r
			}(); r.result() != 0 {
				t.Fatalf("write within the limit after the refusals: %+v", r)
			}
			if got, err := e.get(d, "/existing.bin"); err != nil || !bytes.Equal(got, pseudo(4, 1000)) {
				t.Fatalf("existing file after a refused setstat: %d bytes, %v", len(got), err)
			}
		})
	}
}
