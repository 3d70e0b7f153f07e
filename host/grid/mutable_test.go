package grid_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageclient"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/storage"
)

// mutGrid starts n storage servers that run the mutable-slot write check,
// as every tarn storage node does.
func mutGrid(t testing.TB, n int) *testgrid.Grid {
	return testgrid.New(t, n, &testgrid.Options{Server: func(_ int, cfg *storageserver.Config) {
		cfg.ValidateSlotWrite = mutable.ValidateSlotWrite
	}})
}

// mutClient is a 3-of-5, H=4 client of g with its own node identity.
func mutClient(t testing.TB, g *testgrid.Grid) *grid.Client {
	t.Helper()
	c, err := grid.New(grid.Config{
		Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret,
		Codec: codecreedsolomon.New(), Servers: g.Source(), K: 3, H: 4, N: 5,
		TempDir: t.TempDir(), ServerTimeout: 3 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Output: &syncBuffer{}, Level: hclog.Debug}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// holder returns the first server holding slot num of si (on a grid all
// of whose servers a file's clients know, each share number has one copy).
func holder(t testing.TB, g *testgrid.Grid, si cap.StorageIndex, num int) *testgrid.Server {
	t.Helper()
	for _, s := range g.Servers {
		if _, _, err := s.Backend.ReadSlot(context.Background(), storage.Ref{Index: si, Num: uint32(num)}); err == nil {
			return s
		}
	}
	t.Fatalf("no server holds share %d of %s", num, si)
	return nil
}

func mctx(t testing.TB) context.Context { return ctxFor(t, 120*time.Second) }

func create(t testing.TB, c *grid.Client, data []byte) cap.MutableWrite {
	t.Helper()
	w, err := c.CreateMutable(mctx(t), data)
	if err != nil {
		t.Fatalf("create mutable file of %d bytes: %v", len(data), err)
	}
	return w
}

func readMut(t testing.TB, c *grid.Client, cp cap.Cap, want []byte, wantSeq uint64) {
	t.Helper()
	got, seq, err := c.ReadMutable(mctx(t), cp)
	if err != nil {
		t.Fatalf("read mutable file: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes (%.20q), want %d (%.20q)", len(got), got, len(want), want)
	}
	if seq != wantSeq {
		t.Fatalf("read version %d, want %d", seq, wantSeq)
	}
}

func TestMutableRoundTrip(t *testing.T) {
	g := mutGrid(t, 5)
	c := mutClient(t, g)
	other := mutClient(t, g)
	max := int(mutable.MaxSize(codec.Params{K: 3, N: 5}))
	if c.MutableMaxSize() != int64(max) {
		t.Fatalf("MutableMaxSize %d, want %d", c.MutableMaxSize(), max)
	}
	for _, tc := range []struct {
		name        string
		first, next int
	}{
		{"empty to one byte", 0, 1},
		{"small to empty", 100, 0},
		{"100 KiB to 1 MiB", 100 << 10, 1 << 20},
		{"limit to limit", max, max},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, next := pseudo(uint64(tc.first), tc.first), pseudo(uint64(tc.next)+1, tc.next)
			w := create(t, c, first)
			for _, cp := range []cap.Cap{w, w.ReadCap()} {
				readMut(t, c, cp, first, 1)
				readMut(t, other, cp, first, 1)
			}
			seq, err := other.Modify(mctx(t), w, func(old []byte) ([]byte, error) {
				if !bytes.Equal(old, first) {
					return nil, errors.New("modify saw other content")
				}
				return next, nil
			})
			if err != nil || seq != 2 {
				t.Fatalf("modify: version %d, %v", seq, err)
			}
			readMut(t, c, w.ReadCap(), next, 2)
			chk, err := c.VerifyMutable(mctx(t), w.ReadCap().Verify())
			if err != nil {
				t.Fatal(err)
			}
			if !chk.Healthy || chk.Seq != 2 || chk.Good != 5 || chk.Servers != 5 {
				t.Fatalf("verify: %+v", chk)
			}
		})
	}
	t.Run("unchanged writes nothing", func(t *testing.T) {
		w := create(t, c, []byte("same"))
		before := c.MutableStats().Published
		seq, err := c.Modify(mctx(t), w, func(old []byte) ([]byte, error) { return old, nil })
		if err != nil || seq != 1 || c.MutableStats().Published != before {
			t.Fatalf("modify returning the same content: version %d, %v, published %d -> %d", seq, err, before, c.MutableStats().Published)
		}
	})
	t.Run("errors", func(t *testing.T) {
		w := create(t, c, []byte("x"))
		if _, _, err := c.ReadMutable(mctx(t), w.ReadCap().Verify()); !errors.Is(err, grid.ErrNotReadable) {
			t.Fatalf("read with a verify cap: %v", err)
		}
		boom := errors.New("boom")
		if _, err := c.Modify(mctx(t), w, func([]byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatalf("modify error not returned: %v", err)
		}
		if _, err := c.Overwrite(mctx(t), w, make([]byte, max+1)); !errors.Is(err, grid.ErrMutableTooLarge) {
			t.Fatalf("over the limit: %v", err)
		}
		if _, err := c.CreateMutable(mctx(t), make([]byte, max+1)); !errors.Is(err, grid.ErrMutableTooLarge) {
			t.Fatalf("create over the limit: %v", err)
		}
		if _, err := grid.MutableWriteCap(w.ReadCap()); !errors.Is(err, grid.ErrNotWritable) {
			t.Fatalf("write cap of a read cap: %v", err)
		}
		if got, err := grid.MutableWriteCap(w); err != nil || got != w {
			t.Fatalf("write cap of a write cap: %v", err)
		}
		never, _ := cap.NewMutableWrite()
		if _, _, err := c.ReadMutable(mctx(t), never); !errors.Is(err, grid.ErrNoSlot) {
			t.Fatalf("read of a slot never written: %v", err)
		}
		if _, err := c.Modify(mctx(t), never, func(b []byte) ([]byte, error) { return b, nil }); !errors.Is(err, grid.ErrNoSlot) {
			t.Fatalf("modify of a slot never written: %v", err)
		}
		readMut(t, c, w, []byte("x"), 1)
	})
}

// addLine is an idempotent change: add line if absent.
func addLine(line string) func([]byte) ([]byte, error) {
	return func(old []byte) ([]byte, error) {
		for _, l := range strings.Split(string(old), "\n") {
			if l == line {
				return old, nil
			}
		}
		return append(bytes.Clone(old), line+"\n"...), nil
	}
}

func lines(b []byte) []string {
	return strings.Fields(string(b))
}

// TestMutableConcurrentModifiers: two clients (own identities and
// connections) each add 100 lines to one file at the same time; afterwards
// it holds all 200, each once.
func TestMutableConcurrentModifiers(t *testing.T) {
	g := mutGrid(t, 5)
	a, b := mutClient(t, g), mutClient(t, g)
	w := create(t, a, nil)
	modifyConcurrently(t, map[string]*grid.Client{"a": a, "b": b}, w, 100)
	got, seq, err := mutClient(t, g).ReadMutable(mctx(t), w.ReadCap())
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(got)
	var want []string
	for _, name := range []string{"a", "b"} {
		for i := 0; i < 100; i++ {
			want = append(want, fmt.Sprintf("%s-%03d", name, i))
		}
	}
	sorted := slices.Sorted(slices.Values(ls))
	if !slices.Equal(sorted, want) {
		t.Fatalf("file holds %d lines (%d distinct), want the 200 added", len(ls), len(slices.Compact(sorted)))
	}
	sa, sb := a.MutableStats(), b.MutableStats()
	t.Logf("version %d after 200 modifies; conflicts %d+%d, retries %d+%d", seq, sa.Conflicts, sb.Conflicts, sa.Retries, sb.Retries)
}

// TestMutableStaleWriterRetried: writer A reads, then B writes a new
// version, then A writes on the version it read. The servers refuse A's
// stale test-and-set; A reads again and re-applies its change, so both
// changes are kept.
func TestMutableStaleWriterRetried(t *testing.T) {
	g := mutGrid(t, 5)
	a, b := mutClient(t, g), mutClient(t, g)
	w := create(t, a, []byte("base\n"))
	var calls atomic.Int32
	seq, err := a.Modify(mctx(t), w, func(old []byte) ([]byte, error) {
		if calls.Add(1) == 1 {
			// A has read version 1; B now publishes version 2.
			if _, err := b.Modify(mctx(t), w, addLine("from-b")); err != nil {
				return nil, err
			}
		}
		return addLine("from-a")(old)
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Fatalf("modify function called %d times, want 2 (once stale, once fresh)", calls.Load())
	}
	st := a.MutableStats()
	if st.Conflicts < 1 || st.Retries != 1 {
		t.Fatalf("stats %+v: want the servers to refuse the stale write and one retry", st)
	}
	readMut(t, b, w, []byte("base\nfrom-b\nfrom-a\n"), seq)
	if seq != 3 {
		t.Fatalf("version %d, want 3", seq)
	}
}

// dialServer is a raw storage-protocol connection to one server of g, for
// tests that act as a hostile grid member.
func dialServer(t testing.TB, g *testgrid.Grid, s *testgrid.Server) *storageclient.Client {
	t.Helper()
	cl, err := storageclient.Dial(mctx(t), g.Transport, s.Addr, g.ClientCert(), storageclient.Options{GridSecret: g.Secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestMutableForgedWriteRefused: a grid member holding only the read cap
// (or nothing) tries every way to change the slot; the servers refuse each
// write and readers still get the real content.
func TestMutableForgedWriteRefused(t *testing.T) {
	g := mutGrid(t, 3)
	c := mutClient(t, g)
	w := create(t, c, []byte("real v1"))
	if _, err := c.Overwrite(mctx(t), w, []byte("real v2")); err != nil {
		t.Fatal(err)
	}
	si := w.StorageIndex()
	ctx := mctx(t)
	rs := codecreedsolomon.New()
	p := codec.Params{K: 3, N: 5}

	// What a read-cap holder can make: shares signed by a key of their own.
	forger, _ := cap.NewMutableWrite()
	forged, err := mutable.Encode(ctx, rs, forger, 99, p, []byte("forged"))
	if err != nil {
		t.Fatal(err)
	}
	// The real version 2's share 0, re-signed with the forger's key after
	// raising its sequence number.
	srv := g.Servers[0]
	ref0 := storage.Ref{Index: si, Num: 0}
	// Share 0 lives on the first server of the ring; find it by asking all.
	var (
		cur    []byte
		tok    string
		holder *testgrid.Server
	)
	for _, s := range g.Servers {
		if v, tk, err := s.Backend.ReadSlot(ctx, ref0); err == nil {
			cur, tok, holder = v, tk, s
		}
	}
	if holder == nil {
		t.Fatal("no server holds share 0")
	}
	srv = holder
	real2, err := mutable.ParseShare(cur)
	if err != nil {
		t.Fatal(err)
	}
	bumped := *real2
	bumped.Header.Seq = 100
	id := bumped.Header.ID()
	copy(bumped.Signature[:], ed25519.Sign(forger.SigningKey(), id[:]))
	// An old version replayed: version 1 of the real writer, captured by
	// encoding again with the real key would need the write cap, so replay
	// the real version 2 share with the header's sequence lowered instead.
	lowered := *real2
	lowered.Header.Seq = 1

	cl := dialServer(t, g, srv)
	for _, tc := range []struct {
		name  string
		ref   storage.Ref
		value []byte
	}{
		{"forger's own share", ref0, forged.Shares[0]},
		{"real share re-signed by another key", ref0, bumped.Marshal()},
		{"real share with a lowered sequence number", ref0, lowered.Marshal()},
		{"forger's key put in the real share", ref0, func() []byte { s := *real2; s.PublicKey = forger.PublicKey(); return s.Marshal() }()},
		{"plain bytes", ref0, []byte("not a share")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cl.WriteSlot(ctx, tc.ref, tok, tc.value, make([]byte, 32))
			if err == nil {
				t.Fatal("the server accepted a forged write")
			}
			if !strings.Contains(err.Error(), "refused") {
				t.Fatalf("error %v does not say the write was refused", err)
			}
		})
	}
	t.Run("new slot at the victim's index with another key", func(t *testing.T) {
		_, err := cl.WriteSlot(ctx, storage.Ref{Index: si, Num: 4}, "", forged.Shares[4], make([]byte, 32))
		if err == nil || !strings.Contains(err.Error(), "does not own this storage index") {
			t.Fatalf("err %v", err)
		}
	})
	readMut(t, mutClient(t, g), w.ReadCap(), []byte("real v2"), 2)
}

// TestMutableRollback: servers that go back to an older version cannot
// make a client that saw a newer one go back, in memory or, with a
// persistent store, after a restart; a minority of stale servers does not
// even show.
func TestMutableRollback(t *testing.T) {
	g := mutGrid(t, 5)
	writer := mutClient(t, g)
	w := create(t, writer, []byte("version one"))
	ctx := mctx(t)
	si := w.StorageIndex()
	// Keep every server's version-1 share.
	old := map[int][]byte{}
	for i := 0; i < 5; i++ {
		v, _, err := holder(t, g, si, i).Backend.ReadSlot(ctx, storage.Ref{Index: si, Num: uint32(i)})
		if err != nil {
			t.Fatal(err)
		}
		old[i] = v
	}
	rollback := func(shares ...int) {
		t.Helper()
		for _, i := range shares {
			ref := storage.Ref{Index: si, Num: uint32(i)}
			b := holder(t, g, si, i).Backend
			_, tok, err := b.ReadSlot(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			// Straight into the backend: what a malicious or restored server
			// serves, past its own write check.
			if _, err := b.WriteSlot(ctx, ref, tok, old[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := writer.Overwrite(ctx, w, []byte("version two")); err != nil {
		t.Fatal(err)
	}
	store, err := mutable.OpenFileSeen(filepath.Join(t.TempDir(), "seen.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reader := mutClient(t, g)
	reader.SetSeenStore(store)
	readMut(t, reader, w.ReadCap(), []byte("version two"), 2)

	rollback(0, 1)
	readMut(t, reader, w.ReadCap(), []byte("version two"), 2) // 3 newer shares remain

	rollback(2, 3, 4)
	for _, tc := range []struct {
		name string
		c    *grid.Client
	}{
		{"same client", reader},
		{"restarted client with the same store", func() *grid.Client { c := mutClient(t, g); c.SetSeenStore(store); return c }()},
		{"the writer", writer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.c.ReadMutable(ctx, w.ReadCap())
			if !errors.Is(err, grid.ErrRollback) || !strings.Contains(err.Error(), "servers offer version 1, this client has seen version 2") {
				t.Fatalf("err %v, want ErrRollback", err)
			}
			if _, err := tc.c.Modify(ctx, w, addLine("x")); !errors.Is(err, grid.ErrRollback) {
				t.Fatalf("modify on a rolled-back grid: %v, want ErrRollback", err)
			}
		})
	}
	// A client that never saw version 2 cannot know better.
	readMut(t, mutClient(t, g), w.ReadCap(), []byte("version one"), 1)
}

// TestMutableServerLoss: K of N shares suffice to read; a write needs H.
func TestMutableServerLoss(t *testing.T) {
	g := mutGrid(t, 5)
	c := mutClient(t, g)
	w := create(t, c, []byte("v1"))
	g.Servers[0].Stop()
	if _, err := c.Overwrite(mctx(t), w, []byte("v2 with one server down")); err != nil {
		t.Fatalf("modify with 4 of 5 servers (H=4): %v", err)
	}
	g.Servers[1].Stop()
	readMut(t, mutClient(t, g), w.ReadCap(), []byte("v2 with one server down"), 2)
	if _, err := c.Overwrite(mctx(t), w, []byte("v3")); !errors.Is(err, grid.ErrNotHappy) {
		t.Fatalf("modify with 3 of 5 servers: %v, want ErrNotHappy", err)
	}
	// The unhappy write still put every share of version 3 on the three
	// servers up (several on some): with one more down, the two left hold
	// 2 to 4 of them, so a read finds version 3 or nothing readable.
	g.Servers[2].Stop()
	if got, seq, err := mutClient(t, g).ReadMutable(mctx(t), w.ReadCap()); err == nil {
		if seq != 3 || string(got) != "v3" {
			t.Fatalf("read with 2 of 5 servers: version %d %q, want version 3 or ErrMutableNotEnoughShares", seq, got)
		}
	} else if !errors.Is(err, grid.ErrMutableNotEnoughShares) {
		t.Fatalf("read with 2 of 5 servers: %v, want ErrMutableNotEnoughShares", err)
	}
	for _, i := range []int{0, 1, 2} {
		if err := g.Servers[i].Restart(); err != nil {
			t.Fatal(err)
		}
	}
	// Server 0 holds version 1 and servers 3, 4 the partial version 3:
	// the newest version with K shares is 2, or 3 if its K shares exist.
	got, seq, err := mutClient(t, g).ReadMutable(mctx(t), w.ReadCap())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after restart: version %d %q", seq, got)
	// Repair with only the verify cap brings every copy to that version.
	vc := w.ReadCap().Verify()
	rep, err := mutClient(t, g).RepairMutable(mctx(t), vc)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Before.Healthy || len(rep.Written) == 0 || len(rep.Failed) != 0 {
		t.Fatalf("repair: %+v (before: %+v)", rep, rep.Before)
	}
	chk, err := c.VerifyMutable(mctx(t), vc)
	if err != nil || !chk.Healthy || chk.Good != 5 || chk.Seq != seq {
		t.Fatalf("verify after repair: %+v, %v", chk, err)
	}
	readMut(t, mutClient(t, g), w.ReadCap(), got, seq)
	if _, err := c.Overwrite(mctx(t), w, []byte("v4 all back")); err != nil {
		t.Fatal(err)
	}
	chk, err = c.VerifyMutable(mctx(t), w)
	if err != nil || !chk.Healthy || chk.Good != 5 {
		t.Fatalf("verify after all servers are back: %+v, %v", chk, err)
	}
	for _, s := range g.Servers {
		s.Stop()
	}
	_, _, err = mutClient(t, g).ReadMutable(mctx(t), w.ReadCap())
	if !errors.Is(err, grid.ErrMutableNotEnoughShares) || !strings.Contains(err.Error(), "no server answered (5 asked") {
		t.Fatalf("read with every server down: %v", err)
	}
}

// TestMutableCorruption: a flipped byte in a stored share is detected and
// reported; the read is still right while K good shares remain.
func TestMutableCorruption(t *testing.T) {
	g := mutGrid(t, 5)
	c := mutClient(t, g)
	data := pseudo(7, 50000)
	w := create(t, c, data)
	ctx := mctx(t)
	si := w.StorageIndex()
	corrupt := func(i, off int) {
		t.Helper()
		ref := storage.Ref{Index: si, Num: uint32(i)}
		b := holder(t, g, si, i).Backend
		v, tok, err := b.ReadSlot(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if off < 0 {
			off += len(v)
		}
		v = bytes.Clone(v)
		v[off] ^= 0x40
		if _, err := b.WriteSlot(ctx, ref, tok, v); err != nil {
			t.Fatal(err)
		}
	}
	corrupt(0, -1)  // a block byte
	corrupt(1, 100) // the signed header
	reader := mutClient(t, g)
	readMut(t, reader, w.ReadCap(), data, 1)
	if st := reader.MutableStats(); st.Corrupt != 2 {
		t.Fatalf("corrupt shares counted %d, want 2", st.Corrupt)
	}
	chk, err := reader.VerifyMutable(ctx, w.ReadCap().Verify())
	if err != nil {
		t.Fatal(err)
	}
	if chk.Healthy || len(chk.Problems) != 2 || !slices.Equal(chk.Missing, []int{0, 1}) {
		t.Fatalf("verify: %+v", chk)
	}
	h0, h1 := holder(t, g, si, 0), holder(t, g, si, 1)
	deadline := time.Now().Add(5 * time.Second)
	for h0.Stats().CorruptionAdvice == 0 || h1.Stats().CorruptionAdvice == 0 {
		if time.Now().After(deadline) {
			t.Fatal("servers were not told of their corrupt shares")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Repair with the verify cap rewrites the two corrupt shares (the
	// servers' check lets a valid share replace a corrupt one).
	rep, err := mutClient(t, g).RepairMutable(ctx, w.ReadCap().Verify())
	if err != nil || !slices.Equal(rep.Written, []int{0, 1}) {
		t.Fatalf("repair: %+v, %v", rep, err)
	}
	if chk, err := reader.VerifyMutable(ctx, w); err != nil || !chk.Healthy {
		t.Fatalf("verify after the repair: %+v, %v", chk, err)
	}
	// So does a modify.
	corrupt(0, -1)
	if _, err := c.Overwrite(ctx, w, []byte("healed")); err != nil {
		t.Fatal(err)
	}
	if chk, err := reader.VerifyMutable(ctx, w); err != nil || !chk.Healthy {
		t.Fatalf("verify after the overwrite: %+v, %v", chk, err)
	}
	corrupt(2, -1)
	corrupt(3, -1)
	corrupt(4, -1)
	if _, _, err := mutClient(t, g).ReadMutable(ctx, w.ReadCap()); !errors.Is(err, grid.ErrMutableNotEnoughShares) {
		t.Fatalf("read with 3 of 5 shares corrupt: %v, want ErrMutableNotEnoughShares", err)
	}
}

// BenchmarkMutable measures, over a 5-server test grid on loopback TLS at
// 3-of-5, a read and a modify (read, change one byte, publish) of mutable
// files of a few sizes up to the ~2.5 MB a 10,000-entry directory takes.
func BenchmarkMutable(b *testing.B) {
	g := mutGrid(b, 5)
	c := mutClient(b, g)
	for _, size := range []int{1 << 10, 256 << 10, 2500 << 10} {
		w := create(b, c, pseudo(uint64(size), size))
		b.Run(fmt.Sprintf("read/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				if _, _, err := c.ReadMutable(mctx(b), w.ReadCap()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("modify/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				if _, err := c.Modify(mctx(b), w, func(old []byte) ([]byte, error) {
					old[0]++
					return old, nil
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestMutableServersChange: a file written while the client knew 4
// servers is read and changed by a client that knows 5 (its shares stay
// where they are), and read by one that knows 3 of the 4 that hold them.
func TestMutableServersChange(t *testing.T) {
	g := mutGrid(t, 5)
	with := func(servers grid.StaticServers) *grid.Client {
		c, err := grid.New(grid.Config{Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret,
			Codec: codecreedsolomon.New(), Servers: servers, K: 3, H: 3, N: 5, TempDir: t.TempDir(),
			ServerTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	all := g.Source()
	four := with(all[:4])
	w := create(t, four, []byte("on four"))
	five := mutClient(t, g)
	readMut(t, five, w.ReadCap(), []byte("on four"), 1)
	if _, err := five.Overwrite(mctx(t), w, []byte("on five")); err != nil {
		t.Fatal(err)
	}
	readMut(t, four, w, []byte("on five"), 2)
	readMut(t, with(all[1:4]), w, []byte("on five"), 2)
	chk, err := five.VerifyMutable(mctx(t), w)
	if err != nil || !chk.Healthy {
		t.Fatalf("verify by the client that knows all servers: %+v, %v", chk, err)
	}
}

// modifyConcurrently has each client add n lines "NAME-III" to the file at
// the same time, and fails the test on any error.
func modifyConcurrently(t *testing.T, clients map[string]*grid.Client, w cap.MutableWrite, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for name, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if _, err := c.Modify(mctx(t), w, addLine(fmt.Sprintf("%s-%03d", name, i))); err != nil {
					errs <- fmt.Errorf("client %s item %d: %w", name, i, err)
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
}
