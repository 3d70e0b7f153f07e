package grid_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/storage"
)

// frozenTimeout is the server timeout of the frozen-server tests of
// mutable files: every operation must finish in well under half of it.
// An operation that routes around a frozen server still waits a grace of
// 4 times the slowest answer (at least 1 s; MutableGraceFactor), which a
// loaded machine stretches: a create (two operations) took 2 s under
// -race at load 18 and 9.5 s at load 50, over the 5 s of a 10 s timeout.
// Waiting for the frozen server would take the whole timeout.
const frozenTimeout = 20 * time.Second

// frozenClient is a 3-of-5, H=4 client of g (small segments) with a
// 10 s server timeout and its own identity; the buffer holds its log.
func frozenClient(t testing.TB, g *testgrid.Grid) (*grid.Client, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	c, err := grid.New(grid.Config{
		Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret,
		Codec: codecreedsolomon.New(), Servers: g.Source(), K: 3, H: 4, N: 5,
		SegmentSize: seg, Convergence: []byte("frozen test convergence"),
		TempDir: t.TempDir(), ServerTimeout: frozenTimeout,
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client log:\n%s", logs)
		}
		c.Close()
	})
	return c, logs
}

// slotSeq is the sequence number of the version in slot num of si on s
// (0: no slot).
func slotSeq(t testing.TB, s *testgrid.Server, si cap.StorageIndex, num int) uint64 {
	t.Helper()
	v, _, err := s.Backend.ReadSlot(context.Background(), storage.Ref{Index: si, Num: uint32(num)})
	if errors.Is(err, storage.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	sh, err := mutable.ParseShare(v)
	if err != nil {
		t.Fatalf("slot %d on server %d: %v", num, s.Index, err)
	}
	return sh.Header.Seq
}

// TestMutableOpsRouteAroundFrozenServer: with one of 5 servers frozen
// (connections open, no answers) and a 10 s server timeout, a mutable
// read, a modify, a directory listing and a change through the vdrive,
// and a download each finish in well under half the timeout with the
// right bytes; the client then no longer waits for the frozen server at
// all. A version written while it was frozen is what every client reads
// after the thaw, and the next write brings the thawed server's copy up
// to date.
func TestMutableOpsRouteAroundFrozenServer(t *testing.T) {
	g := mutGrid(t, 5)
	c, _ := frozenClient(t, g)
	ctx := mctx(t)
	w := create(t, c, []byte("v1"))
	si := w.StorageIndex()

	// A folder with a file in it, and an immutable file, stored first.
	st := vdrive.GridStore(c)
	root, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	d, err := vdrive.New(st, root.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Mkdir(ctx, "docs"); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "docs/a.txt", strings.NewReader("note a"), 6, nil); err != nil {
		t.Fatal(err)
	}
	data := random(6*seg + 123)
	fileCap := upload(t, c, data)

	// With every server up, reads wait for all of them: nothing is left
	// out (a healthy server is well inside the grace).
	for range 10 {
		readMut(t, c, w.ReadCap(), []byte("v1"), 1)
	}
	if st := c.MutableStats(); st.EarlyMaps != 0 || st.NotWaited != 0 {
		t.Fatalf("with every server up: %d maps stopped early, %d servers not waited for", st.EarlyMaps, st.NotWaited)
	}

	// Freeze the holder of share 0: the lead of every write.
	frozen := holder(t, g, si, 0)
	frozen.Freeze()
	t.Cleanup(frozen.Thaw)
	time.Sleep(1100 * time.Millisecond) // past the slot memo of the last write (MutableMemoTTL)

	fresh := func(t *testing.T) *grid.Client { cl, _ := frozenClient(t, g); return cl }
	later, _ := frozenClient(t, g) // it meets the frozen server in the first step
	steps := []struct {
		name string
		op   func(t *testing.T) error
	}{
		{"read", func(t *testing.T) error {
			got, seq, err := later.ReadMutable(ctx, w.ReadCap())
			if err == nil && (string(got) != "v1" || seq != 1) {
				err = fmt.Errorf("read version %d %q, want 1 \"v1\"", seq, got)
			}
			return err
		}},
		{"modify", func(t *testing.T) error {
			seq, err := fresh(t).Overwrite(ctx, w, []byte("v2 written while frozen\n"))
			if err == nil && seq != 2 {
				err = fmt.Errorf("wrote version %d, want 2", seq)
			}
			return err
		}},
		{"read again, frozen server known", func(t *testing.T) error {
			got, seq, err := later.ReadMutable(ctx, w.ReadCap())
			if err == nil && (string(got) != "v2 written while frozen\n" || seq != 2) {
				err = fmt.Errorf("read version %d %q, want version 2", seq, got)
			}
			return err
		}},
		{"modify again, frozen server known", func(t *testing.T) error {
			_, err := later.Modify(ctx, w, addLine("v3 line"))
			return err
		}},
		{"verify (the checker's survey)", func(t *testing.T) error {
			chk, err := fresh(t).VerifyMutable(ctx, w.ReadCap().Verify())
			if err == nil && (chk.Seq != 3 || chk.Good != 5) {
				err = fmt.Errorf("verify: %+v, want version 3 with 5 good shares (share 0 placed again)", chk)
			}
			return err
		}},
		{"directory listing", func(t *testing.T) error {
			dd, err := vdrive.New(vdrive.GridStore(fresh(t)), root.String())
			if err != nil {
				return err
			}
			infos, err := dd.ReadDir(ctx, "docs")
			if err != nil {
				return err
			}
			if len(infos) != 1 || infos[0].Name() != "a.txt" {
				return fmt.Errorf("docs lists %d entries, want a.txt", len(infos))
			}
			return nil
		}},
		{"directory change", func(t *testing.T) error {
			dd, err := vdrive.New(vdrive.GridStore(fresh(t)), root.String())
			if err != nil {
				return err
			}
			if err := dd.Put(ctx, "docs/b.txt", strings.NewReader("note b"), 6, nil); err != nil {
				return err
			}
			infos, err := dd.ReadDir(ctx, "docs")
			if err != nil {
				return err
			}
			var names []string
			for _, in := range infos {
				names = append(names, in.Name())
			}
			if !slices.Equal(names, []string{"a.txt", "b.txt"}) {
				return fmt.Errorf("docs lists %v after the put, want a.txt, b.txt", names)
			}
			return nil
		}},
		{"create", func(t *testing.T) error {
			nw, err := fresh(t).CreateMutable(ctx, []byte("made while frozen"))
			if err != nil {
				return err
			}
			got, seq, err := fresh(t).ReadMutable(ctx, nw.ReadCap())
			if err == nil && (string(got) != "made while frozen" || seq != 1) {
				err = fmt.Errorf("the new file reads version %d %q", seq, got)
			}
			return err
		}},
		{"directory mkdir", func(t *testing.T) error {
			dd, err := vdrive.New(vdrive.GridStore(fresh(t)), root.String())
			if err != nil {
				return err
			}
			if err := dd.Mkdir(ctx, "docs/new"); err != nil {
				return err
			}
			_, err = dd.ReadDir(ctx, "docs/new")
			return err
		}},
		{"download", func(t *testing.T) error {
			download(t, fresh(t), fileCap, data)
			return nil
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			start := time.Now()
			err := s.op(t)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("with server %d frozen: %v", frozen.Index, err)
			}
			t.Logf("%s with a server frozen: %v", s.name, took.Round(time.Millisecond))
			if took > frozenTimeout/2 {
				t.Fatalf("%s took %v with a server frozen, want under %v (server timeout %v)", s.name, took, frozenTimeout/2, frozenTimeout)
			}
		})
	}
	if st := later.MutableStats(); st.NotWaited == 0 || st.EarlyMaps == 0 {
		t.Fatalf("stats %+v: the client that met the frozen server never left it out", st)
	}
	if !frozen.Frozen() {
		t.Fatal("the server was thawed before the end")
	}
	want := "v2 written while frozen\nv3 line\n"

	frozen.Thaw()
	// The thawed server still holds version 1 of share 0; every client
	// reads the version written while it was frozen.
	if seq := slotSeq(t, frozen, si, 0); seq != 1 {
		t.Fatalf("the frozen server's share 0 is at version %d, want 1 (untouched while frozen)", seq)
	}
	readMut(t, fresh(t), w.ReadCap(), []byte(want), 3)
	readMut(t, later, w.ReadCap(), []byte(want), 3)
	// The next write reaches it again (a fresh client asks every server),
	// and the file is healthy.
	if _, err := fresh(t).Overwrite(ctx, w, []byte("v4 after the thaw")); err != nil {
		t.Fatal(err)
	}
	if seq := slotSeq(t, frozen, si, 0); seq != 4 {
		t.Fatalf("the thawed server's share 0 is at version %d after a write, want 4", seq)
	}
	chk, err := fresh(t).VerifyMutable(ctx, w.ReadCap().Verify())
	if err != nil || !chk.Healthy || chk.Seq != 4 || chk.Good != 5 {
		t.Fatalf("verify after the thaw: %+v, %v", chk, err)
	}
}

// TestMutableFrozenServerHeldNewest: version 2 is on four servers (H) —
// the frozen one holds three of its share numbers, the other three one
// each, two of them the same — and version 1 has K shares on the servers
// still up. Those servers hold only two shares of version 2, so they
// cannot prove version 1 current (a newer version shows in them): a read
// and a modify must wait for the frozen server rather than take version
// 1. When it thaws they read version 2 and build on it.
func TestMutableFrozenServerHeldNewest(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(c *grid.Client, w cap.MutableWrite) (string, uint64, error)
		want string
		seq  uint64
	}{
		{"read", func(c *grid.Client, w cap.MutableWrite) (string, uint64, error) {
			b, seq, err := c.ReadMutable(mctx(t), w.ReadCap())
			return string(b), seq, err
		}, "v2\n", 2},
		{"modify", func(c *grid.Client, w cap.MutableWrite) (string, uint64, error) {
			seq, err := c.Modify(mctx(t), w, addLine("v3"))
			if err != nil {
				return "", 0, err
			}
			b, _, err := c.ReadMutable(mctx(t), w.ReadCap())
			return string(b), seq, err
		}, "v2\nv3\n", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := mutGrid(t, 5)
			c, _ := frozenClient(t, g)
			w := create(t, c, []byte("v1\n"))
			si := w.StorageIndex()
			x := make([]*testgrid.Server, 5) // x[s] holds share s of version 1
			for s := range x {
				x[s] = holder(t, g, si, s)
			}
			for s := range x {
				for o := range s {
					if x[o] == x[s] {
						t.Fatalf("shares %d and %d of version 1 on one server", o, s)
					}
				}
			}
			ctx := context.Background()
			v1share0, _, err := x[0].Backend.ReadSlot(ctx, storage.Ref{Index: si, Num: 0})
			if err != nil {
				t.Fatal(err)
			}
			v2, err := mutable.Encode(ctx, codecreedsolomon.New(), w, 2, codec.Params{K: 3, N: 5}, []byte("v2\n"))
			if err != nil {
				t.Fatal(err)
			}
			put := func(s *testgrid.Server, num int, value []byte) {
				t.Helper()
				ref := storage.Ref{Index: si, Num: uint32(num)}
				_, tok, err := s.Backend.ReadSlot(ctx, ref)
				if err != nil && !errors.Is(err, storage.ErrNotFound) {
					t.Fatal(err)
				}
				if _, err := s.Backend.WriteSlot(ctx, ref, tok, value); err != nil {
					t.Fatal(err)
				}
			}
			// Version 2 on x0 {0,3,4}, x1 {1}, x2 {2}, x3 {1}: four servers.
			// Version 1 keeps x3 {3} and x4 {4}, and gains x4 {0}.
			put(x[0], 0, v2.Shares[0])
			put(x[0], 3, v2.Shares[3])
			put(x[0], 4, v2.Shares[4])
			put(x[1], 1, v2.Shares[1])
			put(x[2], 2, v2.Shares[2])
			put(x[3], 1, v2.Shares[1])
			put(x[4], 0, v1share0)

			x[0].Freeze()
			t.Cleanup(x[0].Thaw)
			const thawAfter = 2 * time.Second
			timer := time.AfterFunc(thawAfter, x[0].Thaw)
			t.Cleanup(func() { timer.Stop() })
			start := time.Now()
			got, seq, err := tc.op(mustFresh(t, g), w)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || seq != tc.seq {
				t.Fatalf("%s: version %d %q, want %d %q", tc.name, seq, got, tc.seq, tc.want)
			}
			if took < thawAfter {
				t.Fatalf("%s returned after %v, before the frozen server holding the newest version thawed (%v)", tc.name, took, thawAfter)
			}
			if took > thawAfter+frozenTimeout/2 {
				t.Fatalf("%s took %v, more than %v after the thaw", tc.name, took, frozenTimeout/2)
			}
		})
	}
}

func mustFresh(t *testing.T, g *testgrid.Grid) *grid.Client {
	c, _ := frozenClient(t, g)
	return c
}

// TestMutableFrozenTooMany: with two of 5 servers frozen a Modify cannot
// prove its read current without them (a writer needs 4 of 5: two writers
// must meet on a copy), so it waits for them up to the server timeout, as
// before — once, not once per frozen server, even when it first left out
// the one it knew as hung; a read needs only 2 of 5 and does not wait.
func TestMutableFrozenTooMany(t *testing.T) {
	g := mutGrid(t, 5)
	logs := &syncBuffer{}
	st := 4 * timeout // the server timeout
	c, err := grid.New(grid.Config{
		Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret,
		Codec: codecreedsolomon.New(), Servers: g.Source(), K: 3, H: 4, N: 5,
		TempDir: t.TempDir(), ServerTimeout: st,
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs)
		}
		c.Close()
	})
	w := create(t, c, []byte("v1"))
	freeze := func(i int) {
		g.Servers[i].Freeze()
		t.Cleanup(g.Servers[i].Thaw)
	}
	freeze(1)
	start := time.Now()
	readMut(t, c, w.ReadCap(), []byte("v1"), 1) // leaves server 1 out, and remembers it
	if d := time.Since(start); d >= st/2 {
		t.Errorf("read with 1 of 5 frozen took %v, want less than half the server timeout %v", d, st)
	}
	freeze(3)
	start = time.Now()
	_, err = c.Overwrite(mctx(t), w, []byte("v2"))
	d := time.Since(start)
	if d < st || d > st+st/2 {
		t.Errorf("modify with 2 of 5 frozen returned after %v (%v), want one server timeout (%v) and a grace", d, err, st)
	}
	if !errors.Is(err, grid.ErrNotHappy) {
		t.Errorf("modify with 2 of 5 frozen (H=4): %v, want ErrNotHappy", err)
	}
	// The unhappy write still put every share of version 2 on the three
	// servers up: it is the current version now.
	start = time.Now()
	readMut(t, c, w.ReadCap(), []byte("v2"), 2)
	if d := time.Since(start); d >= st/2 {
		t.Errorf("read with 2 of 5 frozen took %v, want less than half the server timeout %v", d, st)
	}
	if s := c.MutableStats(); s.EarlyMaps != 2 {
		t.Errorf("%d maps stopped early, want 2 (the reads)", s.EarlyMaps)
	}
}

// TestMutableSlowServerWaitedFor: a server that answers late, but within
// the grace (here it is frozen for 300 ms; the grace is at least 1 s), is
// waited for: a read and a modify leave nothing out, and the modify
// writes the slow server's copy too.
func TestMutableSlowServerWaitedFor(t *testing.T) {
	g := mutGrid(t, 5)
	c, _ := frozenClient(t, g)
	w := create(t, c, []byte("v1\n"))
	slow := holder(t, g, w.StorageIndex(), 2)
	reader := mustFresh(t, g)
	const lag = 300 * time.Millisecond
	steps := []struct {
		name string
		op   func() error
	}{
		{"read", func() error {
			_, _, err := reader.ReadMutable(mctx(t), w.ReadCap())
			return err
		}},
		{"modify", func() error { // c has no memo of the slot: it reads
			_, err := c.Modify(mctx(t), w, addLine("v2"))
			return err
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			slow.Freeze()
			timer := time.AfterFunc(lag, slow.Thaw)
			t.Cleanup(func() { timer.Stop(); slow.Thaw() })
			start := time.Now()
			if err := s.op(); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < lag {
				t.Fatalf("%s returned after %v, before the slow server answered (%v)", s.name, d, lag)
			}
		})
	}
	for _, cl := range []*grid.Client{reader, c} {
		if st := cl.MutableStats(); st.EarlyMaps != 0 || st.NotWaited != 0 || st.MemoHits != 0 {
			t.Fatalf("a server within the grace was left out (or not asked): %+v", st)
		}
	}
	if seq := slotSeq(t, slow, w.StorageIndex(), 2); seq != 2 {
		t.Fatalf("the slow server's share 2 is at version %d, want 2", seq)
	}
}

// TestMutableMemoServerFreezes: a server that freezes in the second after
// a client's write of a slot, while the client's next Modify starts from
// its slot memo (no read): that Modify's write to the frozen server is
// given up after the grace, not the server timeout, once the others took
// theirs (the frozen server holds share 2, not the lead, share 0).
func TestMutableMemoServerFreezes(t *testing.T) {
	defer grid.SetMemoTTL(time.Minute)()
	g := mutGrid(t, 5)
	c, _ := frozenClient(t, g)
	w := create(t, c, []byte("v1\n"))
	if _, err := c.Modify(mctx(t), w, addLine("v2")); err != nil {
		t.Fatal(err)
	}
	frozen := holder(t, g, w.StorageIndex(), 2)
	frozen.Freeze()
	t.Cleanup(frozen.Thaw)
	start := time.Now()
	seq, err := c.Modify(mctx(t), w, addLine("v3"))
	took := time.Since(start)
	if err != nil || seq != 3 {
		t.Fatalf("modify from the memo with a server frozen: version %d, %v", seq, err)
	}
	if st := c.MutableStats(); st.MemoHits != 1 {
		t.Fatalf("the modify did not start from the memo: %+v", st)
	}
	if took > frozenTimeout/2 {
		t.Fatalf("modify from the memo took %v with a server frozen, want under %v", took, frozenTimeout/2)
	}
	t.Logf("modify from the memo with a server frozen: %v", took.Round(time.Millisecond))
	// The next one reads (no memo after a failed write) and leaves the
	// server out at once (remembered as hung).
	start = time.Now()
	if _, err := c.Modify(mctx(t), w, addLine("v4")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the next modify took %v", d)
	}
	frozen.Thaw()
	readMut(t, mustFresh(t, g), w.ReadCap(), []byte("v1\nv2\nv3\nv4\n"), 4)
}

// TestMutableFrozenServerHeldWhatClientSaw: a client read version 2, all
// of whose shares are on one server (a writer that died after writing
// K shares there); that server freezes. The others show version 1 alone,
// which would do for another client, but this one saw version 2: its read
// waits for the frozen server instead of failing with ErrRollback at once,
// and gets version 2 when it thaws.
func TestMutableFrozenServerHeldWhatClientSaw(t *testing.T) {
	g := mutGrid(t, 5)
	c, _ := frozenClient(t, g)
	w := create(t, c, []byte("v1\n"))
	si := w.StorageIndex()
	x0 := holder(t, g, si, 0)
	ctx := context.Background()
	v2, err := mutable.Encode(ctx, codecreedsolomon.New(), w, 2, codec.Params{K: 3, N: 5}, []byte("v2\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, num := range []int{0, 3, 4} {
		ref := storage.Ref{Index: si, Num: uint32(num)}
		_, tok, err := x0.Backend.ReadSlot(ctx, ref)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := x0.Backend.WriteSlot(ctx, ref, tok, v2.Shares[num]); err != nil {
			t.Fatal(err)
		}
	}
	reader := mustFresh(t, g)
	readMut(t, reader, w.ReadCap(), []byte("v2\n"), 2)
	readMut(t, mustFresh(t, g), w.ReadCap(), []byte("v2\n"), 2)

	x0.Freeze()
	t.Cleanup(x0.Thaw)
	// Another client, which never saw version 2, reads version 1 at once.
	start := time.Now()
	readMut(t, mustFresh(t, g), w.ReadCap(), []byte("v1\n"), 1)
	if d := time.Since(start); d > frozenTimeout/2 {
		t.Fatalf("a client that never saw version 2 took %v", d)
	}
	const thawAfter = 2 * time.Second
	timer := time.AfterFunc(thawAfter, x0.Thaw)
	t.Cleanup(func() { timer.Stop() })
	start = time.Now()
	readMut(t, reader, w.ReadCap(), []byte("v2\n"), 2)
	if d := time.Since(start); d < thawAfter {
		t.Fatalf("the read returned after %v, before the server holding the version this client saw thawed", d)
	}
}
