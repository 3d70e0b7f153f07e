package grid_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/placement"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

func TestConvergentUploadIsDeduplicated(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(3*seg + 17)
	first := chkOf(t, upload(t, c, data))
	before := g.Counts()
	second := chkOf(t, upload(t, c, data))
	if second != first {
		t.Fatalf("same file and secret gave two caps:\n%s\n%s", first, second)
	}
	after := g.Counts()
	if after.Creates != before.Creates || after.BytesWritten != before.BytesWritten || after.Seals != before.Seals {
		t.Fatalf("second upload wrote to the servers: %+v -> %+v", before, after)
	}
	if st := c.Stats(); st.SharesExisting != 5 || st.SharesSealed != 5 {
		t.Fatalf("stats: %d existing, %d sealed; want 5 and 5", st.SharesExisting, st.SharesSealed)
	}
	// Another client with the same secret finds them too.
	c2, _ := newClient(t, g, nil)
	if third := chkOf(t, upload(t, c2, data)); third != first {
		t.Fatalf("same secret on another client gave another cap")
	}
	// Another secret: another key and storage index.
	other, _ := newClient(t, g, func(cfg *grid.Config) { cfg.Convergence = []byte("another secret") })
	o := chkOf(t, upload(t, other, data))
	if o.Key == first.Key || o.StorageIndex() == first.StorageIndex() {
		t.Fatal("another convergence secret gave the same key or storage index")
	}
	download(t, c, o, data)
}

func TestDownloadSurvivesStoppedServers(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(5*seg + 3)
	cp := chkOf(t, upload(t, c, data))
	// N-K = 2 servers gone: still readable, by a fresh client too.
	g.Servers[0].Stop()
	g.Servers[3].Stop()
	download(t, c, cp, data)
	fresh, _ := newClient(t, g, nil)
	download(t, fresh, cp, data)
	// One more: a clear error naming found and needed.
	g.Servers[4].Stop()
	start := time.Now()
	_, err := fresh.Open(ctxFor(t, time.Minute), cp)
	if !errors.Is(err, grid.ErrNotEnoughShares) {
		t.Fatalf("open with 2 of 5 shares: %v, want ErrNotEnoughShares", err)
	}
	for _, want := range []string{"2 shares found", "3 needed", cp.StorageIndex().String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("failing took %s", d)
	}
	// Back up again: the pool redials.
	if err := g.Servers[4].Restart(); err != nil {
		t.Fatal(err)
	}
	download(t, fresh, cp, data)
}

func TestCorruptShares(t *testing.T) {
	size := 4*seg + 1000
	l, err := chk.NewLayout(chk.Params{K: 3, N: 5, SegmentSize: seg}, int64(size))
	if err != nil {
		t.Fatal(err)
	}
	blk1, _ := l.Block(1)
	cases := []struct {
		name string
		off  int64
	}{
		{"header", 3},
		{"extension block", l.UEBOffset + 10},
		{"share hash proof", l.ProofOffset + 1},
		{"block hash tree", l.BlockTreeOffset + 40},
		{"ciphertext hash tree", l.CipherOffset + 2*32 + 5}, // node 0 is the root, known from the extension block
		{"first block", l.BlocksOffset + 7},
		{"second block", blk1 + 100},
		{"last byte", l.ShareSize - 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := testgrid.New(t, 5, nil)
			c, logs := newClient(t, g, nil)
			data := random(size)
			cp := chkOf(t, upload(t, c, data))
			si := cp.StorageIndex()
			// Damage the shares of the first two servers in ring order
			// (N-K of them): the download asks those first, so it must
			// detect both and go on with the others.
			bad := map[int]bool{}
			for _, i := range ringOrder(g, si)[:2] {
				nums, _ := g.Servers[i].Backend.Shares(si)
				for _, sh := range nums {
					if err := g.Servers[i].Backend.Corrupt(storage.Ref{Index: si, Num: sh}, tc.off, 0x40); err != nil {
						t.Fatal(err)
					}
				}
				bad[i] = true
			}
			f := download(t, c, cp, data)
			probs := f.Problems()
			if len(probs) == 0 {
				t.Fatal("no problem reported for corrupt shares")
			}
			for _, p := range probs {
				if !errors.Is(p, chk.ErrCorrupt) {
					t.Errorf("problem %v is not a corruption", p)
				}
			}
			c.Close() // waits for the corruption advice
			advised := 0
			for i := range bad {
				advised += int(g.Servers[i].Stats().CorruptionAdvice)
			}
			if advised == 0 {
				t.Error("no server was told of its corrupt share")
			}
			if !strings.Contains(logs.String(), "corrupt share") {
				t.Error("corruption not logged")
			}
			if st := c.Stats(); st.CorruptShares == 0 || st.Errors[grid.KindCorrupt] == 0 {
				t.Errorf("stats do not count the corruption: %+v", st)
			}
		})
	}
}

// ringOrder returns the indexes of g's servers in ring order for si.
func ringOrder(g *testgrid.Grid, si cap.StorageIndex) []int {
	ids := make([]string, len(g.Servers))
	at := map[string]int{}
	for i, s := range g.Servers {
		ids[i] = s.NodeID
		at[s.NodeID] = i
	}
	var out []int
	for _, id := range placement.Permute(si[:], ids) {
		out = append(out, at[id])
	}
	return out
}

func TestTooManyCorruptSharesFailCleanly(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(3 * seg)
	cp := chkOf(t, upload(t, c, data))
	l, _ := chk.NewLayout(chk.Params{K: 3, N: 5, SegmentSize: seg}, int64(len(data)))
	off, _ := l.Block(2)
	for sh, srvs := range g.Holders(cp.StorageIndex()) {
		if sh < 3 {
			g.Servers[srvs[0]].Backend.Corrupt(storage.Ref{Index: cp.StorageIndex(), Num: uint32(sh)}, off+9, 1)
		}
	}
	f, err := c.Open(ctxFor(t, time.Minute), cp)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(data))
	n, err := f.ReadAt(buf, 0)
	if !errors.Is(err, grid.ErrNotEnoughShares) {
		t.Fatalf("read with 3 of 5 shares corrupt: %v, want ErrNotEnoughShares", err)
	}
	if n != 2*seg || !bytes.Equal(buf[:n], data[:n]) {
		t.Fatalf("read %d bytes before failing, want the %d good ones", n, 2*seg)
	}
	if !strings.Contains(err.Error(), "2 good, 3 needed") {
		t.Errorf("error %q does not name good and needed shares", err)
	}
}

func TestNoPlaintextOnServers(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	marker := []byte("TARN-PLAINTEXT-MARKER-0123456789")
	data := bytes.Repeat(marker, 3*seg/len(marker))
	cp := chkOf(t, upload(t, c, data))
	for sh, srvs := range g.Holders(cp.StorageIndex()) {
		for _, i := range srvs {
			b, err := g.Servers[i].Backend.Share(storage.Ref{Index: cp.StorageIndex(), Num: uint32(sh)})
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, marker[:16]) {
				t.Fatalf("share %d on server %d holds plaintext", sh, i)
			}
		}
	}
}

func TestHappiness(t *testing.T) {
	cases := []struct {
		name    string
		servers int
		stopped int
		want    []string
	}{
		{"too few servers", 3, 0, []string{"3 of 3 servers answered", "needs shares on 4 distinct servers", "only 3 usable"}},
		{"servers down", 5, 2, []string{"3 of 5 servers answered", "only 3 usable"}},
		{"no servers", 0, 0, []string{"0 of 0 servers answered", "only 0 usable"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := testgrid.New(t, tc.servers, nil)
			for i := 0; i < tc.stopped; i++ {
				g.Servers[i].Stop()
			}
			c, _ := newClient(t, g, nil)
			_, err := c.Upload(ctxFor(t, time.Minute), bytes.NewReader(random(1000)), 1000, nil)
			if !errors.Is(err, grid.ErrNotHappy) {
				t.Fatalf("upload: %v, want ErrNotHappy", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if g.Counts().Seals != 0 {
				t.Error("an unhappy upload sealed shares")
			}
		})
	}
}

func TestUploadSizeChecks(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	conv, _ := newClient(t, g, nil)
	rnd, _ := newClient(t, g, func(c *grid.Config) { c.Convergence = nil })
	cases := []struct {
		name     string
		c        *grid.Client
		actual   int
		declared int64
	}{
		{"literal shorter", conv, 10, 20},
		{"literal longer", conv, 30, 20},
		{"short convergent", conv, 5000, 6000},
		{"long convergent", conv, 7000, 6000},
		{"short streamed", rnd, 5000, 6000},
		{"long streamed", rnd, 7000, 6000},
		{"long over literal", rnd, 100, 50},
		{"negative", rnd, 10, -2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.Upload(ctxFor(t, time.Minute), bytes.NewReader(random(tc.actual)), tc.declared, nil)
			if err == nil {
				t.Fatal("upload of the wrong size succeeded")
			}
			if tc.declared >= 0 && !errors.Is(err, grid.ErrSize) {
				t.Fatalf("error %v does not wrap ErrSize", err)
			}
		})
	}
}

func TestOpenRefusesVerifyCap(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	cp := chkOf(t, upload(t, c, random(1000)))
	if _, err := c.Open(ctxFor(t, time.Minute), cp.Verify()); !errors.Is(err, grid.ErrNotReadable) {
		t.Fatalf("open of a verify cap: %v, want ErrNotReadable", err)
	}
}

func TestProgress(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(10*seg + 5)
	var last int64
	calls := 0
	_, err := c.Upload(ctxFor(t, time.Minute), bytes.NewReader(data), int64(len(data)), func(n int64) {
		if n < last {
			t.Errorf("progress went back from %d to %d", last, n)
		}
		last = n
		calls++
	})
	if err != nil {
		t.Fatal(err)
	}
	if last != int64(len(data)) || calls < 2 {
		t.Fatalf("progress ended at %d after %d calls, want %d", last, calls, len(data))
	}
}

func TestStatsCount(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(2 * seg)
	cp := upload(t, c, data)
	upload(t, c, []byte("small"))
	download(t, c, cp, data)
	st := c.Stats()
	want := fmt.Sprintf("%d %d %d %d", 2, 1, 1, 0)
	got := fmt.Sprintf("%d %d %d %d", st.Uploads, st.LiteralUploads, st.Downloads, st.UploadsFailed)
	if got != want {
		t.Fatalf("uploads, literal, downloads, failed = %s, want %s", got, want)
	}
	if st.Dials != 5 || st.DialFailures != 0 {
		t.Fatalf("%d dials (%d failed) for 5 servers: connections are not reused", st.Dials, st.DialFailures)
	}
	if st.BytesUploaded < int64(len(data))*5/3 || st.BytesDownloaded < int64(len(data)) {
		t.Fatalf("bytes up %d down %d for a %d-byte file", st.BytesUploaded, st.BytesDownloaded, len(data))
	}
	_ = cap.LiteralMax
}

func TestCancelledUploadLeavesNothingOpen(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.Convergence = nil })
	data := random(40 * seg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	_, err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), func(n int64) {
		if n > int64(len(data))/2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled upload: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancelled upload took %s to return", d)
	}
	c.Close() // waits for the aborts
	deadline := time.Now().Add(5 * time.Second)
	for {
		open := 0
		for _, s := range g.Servers {
			open += s.Stats().OpenUploads
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d shares still open on the servers", open)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := g.Counts().Seals; n != 0 {
		t.Fatalf("a cancelled upload sealed %d shares", n)
	}
	if st := c.Stats(); st.ServersFailed != 0 {
		t.Errorf("cancelling blamed %d servers", st.ServersFailed)
	}
}

func TestServerListChangesAreFollowed(t *testing.T) {
	g := testgrid.New(t, 6, nil)
	var mu sync.Mutex
	list := g.Source()[:3]
	c, _ := newClient(t, g, func(cfg *grid.Config) {
		cfg.Servers = grid.ServerFunc(func() []grid.Server {
			mu.Lock()
			defer mu.Unlock()
			return list
		})
	})
	if _, err := c.Upload(ctxFor(t, time.Minute), bytes.NewReader(random(1000)), 1000, nil); !errors.Is(err, grid.ErrNotHappy) {
		t.Fatalf("upload to 3 servers with H=4: %v", err)
	}
	mu.Lock()
	list = g.Source()
	list[5].NodeID = "" // derived from the address
	mu.Unlock()
	data := random(1000)
	cp := chkOf(t, upload(t, c, data))
	download(t, c, cp, data)
	if h := g.Holders(cp.StorageIndex()); len(h) != 5 {
		t.Fatalf("holders: %v", h)
	}
}

func TestFullServers(t *testing.T) {
	const size = 200 << 10
	cases := []struct {
		name    string
		full    int // servers 0..full-1 have no room
		wantErr []string
	}{
		{"one full server is passed over", 1, nil},
		{"two full servers leave too few", 2, []string{"only 3 usable", "5 answered, 2 full"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := testgrid.New(t, 5, &testgrid.Options{Server: func(i int, cfg *storageserver.Config) {
				if i < tc.full {
					cfg.Reserved = storagememory.DefaultLimit - 50<<10 // room for no share
				}
			}})
			c, _ := newClient(t, g, nil)
			data := random(size)
			cp, err := c.Upload(ctxFor(t, time.Minute), bytes.NewReader(data), size, nil)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				v := chkOf(t, cp)
				for sh, srvs := range g.Holders(v.StorageIndex()) {
					for _, i := range srvs {
						if i < tc.full {
							t.Errorf("share %d on full server %d", sh, i)
						}
					}
				}
				download(t, c, cp, data)
				return
			}
			if !errors.Is(err, grid.ErrNotHappy) {
				t.Fatalf("upload: %v, want ErrNotHappy", err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// failingReader gives n bytes, then an error.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk on fire")
	}
	p = p[:min(len(p), f.n)]
	f.n -= len(p)
	return len(p), nil
}

func TestReaderErrorFailsUpload(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	for _, conv := range []bool{true, false} {
		t.Run(fmt.Sprintf("convergent=%v", conv), func(t *testing.T) {
			c, _ := newClient(t, g, func(cfg *grid.Config) {
				if !conv {
					cfg.Convergence = nil
				}
			})
			_, err := c.Upload(ctxFor(t, time.Minute), &failingReader{n: 5 * seg}, 10*seg, nil)
			if err == nil || !strings.Contains(err.Error(), "disk on fire") {
				t.Fatalf("upload from a failing reader: %v", err)
			}
			c.Close()
			if n := g.Counts().Seals; n != 0 {
				t.Fatalf("%d shares sealed", n)
			}
		})
	}
}

func TestReuploadWritesOnlyMissingShares(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(4 * seg)
	cp := chkOf(t, upload(t, c, data))
	si := cp.StorageIndex()
	lost := 0
	for sh, srvs := range g.Holders(si) {
		if sh < 2 {
			if err := g.Servers[srvs[0]].Backend.DeleteShare(storage.Ref{Index: si, Num: uint32(sh)}); err != nil {
				t.Fatal(err)
			}
			lost++
		}
	}
	before := g.Counts()
	if again := chkOf(t, upload(t, c, data)); again != cp {
		t.Fatal("re-upload gave another cap")
	}
	after := g.Counts()
	if got := after.Seals - before.Seals; got != int64(lost) {
		t.Fatalf("re-upload sealed %d shares, want the %d missing", got, lost)
	}
	if h := g.Holders(si); len(h) != 5 {
		t.Fatalf("holders after re-upload: %v", h)
	}
	download(t, c, cp, data)
}

func TestReuploadDoesNotTrustCorruptShares(t *testing.T) {
	g := testgrid.New(t, 6, nil)
	c, logs := newClient(t, g, nil)
	data := random(4 * seg)
	cp := chkOf(t, upload(t, c, data))
	si := cp.StorageIndex()
	// Damage the extension block of one share in place.
	var victim, num int = -1, -1
	for sh, srvs := range g.Holders(si) {
		victim, num = srvs[0], sh
		break
	}
	if err := g.Servers[victim].Backend.Corrupt(storage.Ref{Index: si, Num: uint32(num)}, chk.HeaderSize+20, 4); err != nil {
		t.Fatal(err)
	}
	if again := chkOf(t, upload(t, c, data)); again != cp {
		t.Fatal("re-upload gave another cap")
	}
	// The share is now whole on a server other than the victim.
	whole := false
	for _, i := range g.Holders(si)[num] {
		whole = whole || i != victim
	}
	if !whole {
		t.Fatalf("share %d was not written again elsewhere: holders %v", num, g.Holders(si))
	}
	c.Close()
	if g.Servers[victim].Stats().CorruptionAdvice == 0 || !strings.Contains(logs.String(), "corrupt share found in place") {
		t.Error("corrupt share in place was not reported")
	}
	// Even without the victim's other shares, the file reads back.
	g.Servers[victim].Stop()
	fresh, _ := newClient(t, g, nil)
	download(t, fresh, cp, data)
}
