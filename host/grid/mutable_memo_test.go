package grid_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
)

// slotCalls is the slot lists, reads and writes c made while fn ran.
func slotCalls(t *testing.T, c *grid.Client, fn func()) (lists, reads, writes int64) {
	t.Helper()
	before := c.Stats()
	fn()
	after := c.Stats()
	return after.SlotLists - before.SlotLists, after.SlotReads - before.SlotReads, after.SlotWrites - before.SlotWrites
}

func modifyOK(t *testing.T, c *grid.Client, w cap.MutableWrite, fn func([]byte) ([]byte, error)) uint64 {
	t.Helper()
	seq, err := c.Modify(mctx(t), w, fn)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// removeLine is an idempotent change: remove line if present.
func removeLine(line string) func([]byte) ([]byte, error) {
	return func(old []byte) ([]byte, error) {
		ls := lines(old)
		i := slices.Index(ls, line)
		if i < 0 {
			return old, nil
		}
		ls = slices.Delete(ls, i, i+1)
		if len(ls) == 0 {
			return nil, nil
		}
		return []byte(strings.Join(ls, "\n") + "\n"), nil
	}
}

// wantLines fails unless a fresh client reads exactly want (any order).
func wantLines(t *testing.T, c *grid.Client, w cap.MutableWrite, want ...string) {
	t.Helper()
	got, _, err := c.ReadMutable(mctx(t), w.ReadCap())
	if err != nil {
		t.Fatal(err)
	}
	g, wl := slices.Sorted(slices.Values(lines(got))), slices.Sorted(slices.Values(want))
	if !slices.Equal(g, wl) {
		t.Fatalf("file holds %q, want %q", g, wl)
	}
}

// TestMutableMemoCalls: a Modify right after this client's own publish,
// or after its clean read, starts from what it knows: no slot list, no
// slot read, one write per share (5 instead of 15 calls at 5 servers).
// Without a memo (first modify of a file this client only created, or
// after MutableMemoTTL) it lists and reads every server as before.
func TestMutableMemoCalls(t *testing.T) {
	longMemo(t)
	g := mutGrid(t, 5)
	c := mutClient(t, g)
	w := create(t, c, nil)
	other := mutClient(t, g)
	n := 0
	add := func(cl *grid.Client) func() {
		return func() { n++; modifyOK(t, cl, w, addLine(fmt.Sprintf("line-%02d", n))) }
	}
	expire := func() { t.Cleanup(grid.SetMemoTTL(50 * time.Millisecond)) }
	tests := []struct {
		name                string
		before              func()
		c                   *grid.Client
		lists, reads, write int64
	}{
		{"first modify after a create: full read", nil, c, 5, 5, 5},
		{"after own publish", nil, c, 0, 0, 5},
		{"again, its memo to expire", expire, c, 0, 0, 5},
		{"after the memo expired", func() { longMemo(t); time.Sleep(200 * time.Millisecond) }, c, 5, 5, 5},
		{"another client, first", nil, other, 5, 5, 5},
		{"the first client after the other wrote: conflict, then full read", nil, c, 5, 5, 6},
		{"the other after its own read", func() {
			if _, _, err := other.ReadMutable(mctx(t), w.ReadCap()); err != nil {
				t.Fatal(err)
			}
		}, other, 0, 0, 5},
	}
	var want []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			l, r, wr := slotCalls(t, tc.c, add(tc.c))
			want = append(want, fmt.Sprintf("line-%02d", n))
			if l != tc.lists || r != tc.reads || wr != tc.write {
				t.Fatalf("modify made %d lists, %d reads, %d writes; want %d, %d, %d", l, r, wr, tc.lists, tc.reads, tc.write)
			}
		})
	}
	wantLines(t, mutClient(t, g), w, want...)
	if st := c.MutableStats(); st.MemoHits != 2 || st.MemoMisses != 1 {
		t.Fatalf("first client: %d memo hits, %d misses; want 2, 1", st.MemoHits, st.MemoMisses)
	}
	if chk, err := other.VerifyMutable(mctx(t), w); err != nil || !chk.Healthy {
		t.Fatalf("verify: %+v, %v", chk, err)
	}
}

// TestMutableMemoAlternatingClients: two clients take turns, two modifies
// each (so each one's second modify starts from its memo, and its first
// finds the memo stale: the other wrote since); every change is kept and
// every version is the previous one plus one.
func TestMutableMemoAlternatingClients(t *testing.T) {
	longMemo(t)
	g := mutGrid(t, 5)
	a, b := mutClient(t, g), mutClient(t, g)
	w := create(t, a, nil)
	var want []string
	last := uint64(1)
	for round := 0; round < 8; round++ {
		for _, cl := range []struct {
			name string
			c    *grid.Client
		}{{"a", a}, {"b", b}} {
			for i := 0; i < 2; i++ {
				line := fmt.Sprintf("%s-%d-%d", cl.name, round, i)
				seq := modifyOK(t, cl.c, w, addLine(line))
				if seq != last+1 {
					t.Fatalf("%s: version %d after %d", line, seq, last)
				}
				last = seq
				want = append(want, line)
			}
		}
	}
	wantLines(t, mutClient(t, g), w, want...)
	for name, c := range map[string]*grid.Client{"a": a, "b": b} {
		st := c.MutableStats()
		t.Logf("%s: %+v", name, st)
		if st.MemoHits != 8 || st.MemoMisses != 7 {
			t.Fatalf("client %s: %d memo hits, %d misses; want 8, 7", name, st.MemoHits, st.MemoMisses)
		}
	}
}

// TestMutableMemoInvalidated: client A's memo goes stale because B wrote;
// A's next change must be made on B's version, whether A's function
// changes the remembered content (the memo's write conflicts), leaves it
// unchanged (nothing written proves it current) or fails on it.
func TestMutableMemoInvalidated(t *testing.T) {
	errMissing := errors.New("x missing")
	tests := []struct {
		name  string
		byB   func([]byte) ([]byte, error)
		byA   func([]byte) ([]byte, error)
		want  []string
		calls int32 // of A's function: on the memo's content, then on B's version
	}{
		{"both add", addLine("from-b"), addLine("from-a"), []string{"base", "from-b", "from-a"}, 2},
		{"A's remove is a no-op on the stale content", addLine("x"), removeLine("x"), []string{"base"}, 2},
		{"A's function fails on the stale content", addLine("x"), func(old []byte) ([]byte, error) {
			if !slices.Contains(lines(old), "x") {
				return nil, errMissing
			}
			return addLine("saw-x")(old)
		}, []string{"base", "x", "saw-x"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			longMemo(t)
			g := mutGrid(t, 5)
			a, b := mutClient(t, g), mutClient(t, g)
			w := create(t, a, nil)
			modifyOK(t, a, w, addLine("base")) // A now holds a memo
			modifyOK(t, b, w, tc.byB)
			var calls atomic.Int32
			modifyOK(t, a, w, func(old []byte) ([]byte, error) {
				calls.Add(1)
				return tc.byA(old)
			})
			if calls.Load() != tc.calls {
				t.Fatalf("A's function called %d times, want %d", calls.Load(), tc.calls)
			}
			wantLines(t, mutClient(t, g), w, tc.want...)
			if st := a.MutableStats(); st.MemoMisses != 1 || st.MemoHits != 0 {
				t.Fatalf("A: %+v; want one memo miss, no hit", st)
			}
		})
	}
}

// TestMutableMemoServerDownUp: a server stops between two modifies: the
// modify from the memo still succeeds on the 4 others (H=4) and drops the
// memo; the next ones read the slot (the stopped server's share is placed
// elsewhere); once it is back, the full path brings its copy up to date,
// and only then does a memo come back. Nothing is lost and the file ends
// healthy.
func TestMutableMemoServerDownUp(t *testing.T) {
	longMemo(t)
	g := mutGrid(t, 5)
	c := mutClient(t, g)
	w := create(t, c, nil)
	var want []string
	add := func(line string) (lists int64) {
		t.Helper()
		l, _, _ := slotCalls(t, c, func() { modifyOK(t, c, w, addLine(line)) })
		want = append(want, line)
		return l
	}
	add("first")
	lead := holder(t, g, w.StorageIndex(), 0) // share 0: the lead
	lead.Stop()
	if l := add("lead-server-down-from-the-memo"); l != 0 {
		t.Fatalf("modify from the memo listed %d servers", l)
	}
	if l := add("lead-server-down-full-read"); l != 5 {
		t.Fatalf("modify after a failed write listed %d servers, want 5", l)
	}
	if err := lead.Restart(); err != nil {
		t.Fatal(err)
	}
	if l := add("back-up-full-read"); l != 5 {
		t.Fatalf("modify with a server back listed %d servers, want 5", l)
	}
	if l := add("memo-again"); l != 0 {
		t.Fatalf("modify after a clean publish listed %d servers, want 0", l)
	}
	wantLines(t, mutClient(t, g), w, want...)
	chk, err := mutClient(t, g).VerifyMutable(mctx(t), w)
	if err != nil || !chk.Healthy || chk.Seq != 6 {
		t.Fatalf("verify: %+v, %v", chk, err)
	}
	if st := c.MutableStats(); st.MemoHits != 2 {
		t.Fatalf("stats %+v: want 2 memo hits", st)
	}
}

// TestMutableMemoNewServer: client A knows 5 of 6 servers; B, which knows
// all 6, made the file with a share on the sixth. When A learns of the
// sixth server, its memo (made on 5) is not used: the modify reads all 6
// and updates the copy there too, so the file stays healthy.
func TestMutableMemoNewServer(t *testing.T) {
	longMemo(t)
	g := mutGrid(t, 6)
	all := g.Source()
	var known atomic.Int32
	known.Store(5)
	a := knowing(t, g, grid.ServerFunc(func() []grid.Server { return all[:known.Load()] }))
	b := knowing(t, g, all)
	w := create(t, b, nil)
	for try := 0; !onServer(t, g, w.StorageIndex(), 5); try++ {
		if try == 100 {
			t.Fatal("B never put a share on the sixth server")
		}
		w = create(t, b, nil)
	}
	modifyOK(t, a, w, addLine("a-knows-5"))
	modifyOK(t, a, w, addLine("a-knows-5-from-the-memo"))
	known.Store(6)
	l, _, _ := slotCalls(t, a, func() { modifyOK(t, a, w, addLine("a-knows-6")) })
	if l != 6 {
		t.Fatalf("modify after a server joined listed %d servers, want 6", l)
	}
	if st := a.MutableStats(); st.MemoHits != 1 || st.MemoMisses != 1 {
		t.Fatalf("A: %+v; want one memo hit, one miss", st)
	}
	chk, err := b.VerifyMutable(mctx(t), w)
	if err != nil || !chk.Healthy {
		t.Fatalf("verify by the client that knows 6: %+v, %v", chk, err)
	}
	wantLines(t, b, w, "a-knows-5", "a-knows-5-from-the-memo", "a-knows-6")
}

// onServer reports whether server i of g holds a slot of si.
func onServer(t *testing.T, g *testgrid.Grid, si cap.StorageIndex, i int) bool {
	t.Helper()
	return slotsOf(t, g, si)[i] != nil
}

// longMemo keeps slot memos for a minute during the test, so that a slow
// run does not see one expire.
func longMemo(t *testing.T) {
	t.Cleanup(grid.SetMemoTTL(time.Minute))
}

// BenchmarkMutableModifyCalls: one client adds a line at a time to a
// small file, as a frontend's directory changes do one after another;
// reports slot calls per modify (5 writes and nothing else once the memo
// is in use, against 5 lists + 5 reads + 5 writes without it: build with
// -tags tarn_nomemo to compare).
func BenchmarkMutableModifyCalls(b *testing.B) {
	g := mutGrid(b, 5)
	c := mutClient(b, g)
	w := create(b, c, nil)
	before := c.Stats()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Modify(mctx(b), w, addLine(fmt.Sprintf("line-%d-%d", b.N, i))); err != nil {
			b.Fatal(err)
		}
	}
	after := c.Stats()
	n := float64(b.N)
	b.ReportMetric(float64(after.SlotLists-before.SlotLists)/n, "lists/op")
	b.ReportMetric(float64(after.SlotReads-before.SlotReads)/n, "reads/op")
	b.ReportMetric(float64(after.SlotWrites-before.SlotWrites)/n, "writes/op")
}
