package grid_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/sdk/storage"
)

// recoverRetry is the servers' back-off in these tests (30 s or more
// outside tests).
const recoverRetry = 4 * time.Second

// downFirst takes down the first n servers of si's ring order (those a
// download reads first), after checking that the others hold fewer than K
// shares, and returns them.
func downFirst(t *testing.T, g *testgrid.Grid, si cap.StorageIndex, n int, down func(*testgrid.Server)) []*testgrid.Server {
	t.Helper()
	var out []*testgrid.Server
	for _, i := range ringOrder(g, si)[:n] {
		out = append(out, g.Servers[i])
	}
	left := map[int]bool{}
	for sh, srvs := range g.Holders(si) {
		for _, i := range srvs {
			for _, s := range out {
				if g.Servers[i] == s {
					goto next
				}
			}
			left[sh] = true
		next:
		}
	}
	if len(left) >= 3 {
		t.Fatalf("the servers left up hold shares %v: a read would not fail", left)
	}
	for _, s := range out {
		down(s)
	}
	return out
}

// readPiece reads 4 KiB at segment i of f and checks them.
func readPiece(f *grid.File, data []byte, i int) error {
	off := int64(i) * seg
	buf := make([]byte, 4<<10)
	n, err := f.ReadAt(buf, off)
	if err == nil && !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
		return errors.New("wrong bytes")
	}
	return err
}

// TestRecover7FileReadsAgainAfterOutage: a File whose read failed because
// 3 of 5 servers were frozen or stopped (fewer than K shares left) reads
// again, the right bytes, once they are back and the back-off is over,
// without being opened again; during the back-off a read fails at once
// (the servers are not asked).
func TestRecover7FileReadsAgainAfterOutage(t *testing.T) {
	grid.SetRetryAfter(t, recoverRetry)
	const timeout = 2 * time.Second
	for _, tc := range []struct {
		name     string
		down, up func(*testgrid.Server)
	}{
		{"frozen", (*testgrid.Server).Freeze, (*testgrid.Server).Thaw},
		{"stopped", (*testgrid.Server).Stop, func(s *testgrid.Server) {
			if err := s.Restart(); err != nil {
				t.Error(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testgrid.New(t, 5, nil)
			c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.ServerTimeout = timeout })
			data := random(8*seg - 99)
			cp := upload(t, c, data)
			f, err := c.Open(ctxFor(t, time.Minute), cp)
			if err != nil {
				t.Fatal(err)
			}
			if err := readPiece(f, data, 0); err != nil {
				t.Fatal(err)
			}
			downs := downFirst(t, g, chkOf(t, cp).StorageIndex(), 3, tc.down)
			err = readPiece(f, data, 5)
			failed := time.Now()
			if !errors.Is(err, chk.ErrNotEnoughShares) {
				t.Fatalf("read with 3 of 5 servers down: %v, want not enough shares", err)
			}
			for _, s := range downs {
				tc.up(s)
			}
			start := time.Now()
			if err := readPiece(f, data, 6); !errors.Is(err, chk.ErrNotEnoughShares) {
				t.Fatalf("read during the back-off: %v, want not enough shares", err)
			}
			if d := time.Since(start); d > timeout/2 {
				t.Errorf("read during the back-off took %s: it asked servers that failed", d)
			}
			time.Sleep(time.Until(failed.Add(recoverRetry + 200*time.Millisecond)))
			for _, i := range []int{5, 6, 0} {
				if err := readPiece(f, data, i); err != nil {
					t.Fatalf("read of segment %d after the back-off: %v", i, err)
				}
			}
			got, err := io.ReadAll(f.Reader())
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("whole file after the back-off: %d of %d bytes, equal %v: %v", len(got), len(data), bytes.Equal(got, data), err)
			}
			var out bytes.Buffer
			if _, err := f.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("WriteTo after the back-off: %d of %d bytes: %v", out.Len(), len(data), err)
			}
		})
	}
}

// TestRecover7CorruptShareStaysOut: a share found corrupt is not read
// again after the back-off, even when the File needs it (the other shares
// missing); once the servers that failed are back the File reads without
// it.
func TestRecover7CorruptShareStaysOut(t *testing.T) {
	const retry = 2 * time.Second
	grid.SetRetryAfter(t, retry)
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(8*seg - 99)
	cp := upload(t, c, data)
	si := chkOf(t, cp).StorageIndex()
	ring := ringOrder(g, si)
	l, err := chk.NewLayout(chk.Params{K: 3, N: 5, SegmentSize: seg}, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// Every block of the first server's shares is corrupt.
	bad := g.Servers[ring[0]]
	nums, _ := bad.Backend.Shares(si)
	for _, sh := range nums {
		for i := range l.Segments {
			off, _ := l.Block(i)
			if err := bad.Backend.Corrupt(storage.Ref{Index: si, Num: sh}, off+5, 0x40); err != nil {
				t.Fatal(err)
			}
		}
	}
	bad.Backend.LogReads(true)
	f, err := c.Open(ctxFor(t, time.Minute), cp)
	if err != nil {
		t.Fatal(err)
	}
	if err := readPiece(f, data, 0); err != nil {
		t.Fatal(err) // (the corrupt share found, the 4 others good)
	}
	// The next 2 servers stop: 2 good shares left.
	var downs []*testgrid.Server
	for _, i := range ring[1:3] {
		g.Servers[i].Stop()
		downs = append(downs, g.Servers[i])
	}
	err = readPiece(f, data, 5)
	failed := time.Now()
	if !errors.Is(err, chk.ErrNotEnoughShares) {
		t.Fatalf("read with a corrupt share and 2 servers down: %v, want not enough shares", err)
	}
	reads := len(bad.Backend.ReadLog())
	time.Sleep(time.Until(failed.Add(retry + 200*time.Millisecond)))
	err = readPiece(f, data, 6)
	failed = time.Now()
	if !errors.Is(err, chk.ErrNotEnoughShares) {
		t.Fatalf("read after the back-off, servers still down: %v, want not enough shares", err)
	}
	for _, s := range downs {
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	// (A second failure in a row: twice the back-off.)
	time.Sleep(time.Until(failed.Add(2*retry + 200*time.Millisecond)))
	got, err := io.ReadAll(f.Reader())
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("whole file once the servers are back: %d of %d bytes, equal %v: %v", len(got), len(data), bytes.Equal(got, data), err)
	}
	if n := len(bad.Backend.ReadLog()) - reads; n != 0 {
		t.Errorf("the corrupt share's server was read %d times after its share was found corrupt", n)
	}
	corrupt := false
	for _, p := range f.Problems() {
		corrupt = corrupt || errors.Is(p, chk.ErrCorrupt)
	}
	if !corrupt {
		t.Errorf("no corrupt share among the problems: %v", f.Problems())
	}
}
