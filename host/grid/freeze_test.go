package grid_test

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
)

// timeout is the server timeout of the hang tests; every hung server may
// cost a few of them, never more. The race detector slows the whole
// process (and the machine is shared), so it gets more.
var timeout = map[bool]time.Duration{false: time.Second, true: 3 * time.Second}[raceEnabled]

func TestFreezeDuringUpload(t *testing.T) {
	cases := []struct {
		name string
		conv []byte
	}{
		{"convergent, replaced shares re-encoded from the spool", []byte("secret")},
		{"random key streamed, replaced shares re-encoded from the grid", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := testgrid.New(t, 5, nil)
			c, logs := newClient(t, g, func(cfg *grid.Config) {
				cfg.Convergence = tc.conv
				cfg.ServerTimeout = timeout
			})
			data := random(40 * seg)
			frozen := g.Servers[2]
			var once sync.Once
			start := time.Now()
			cp, err := c.Upload(ctxFor(t, time.Minute), bytes.NewReader(data), int64(len(data)), func(n int64) {
				if n > int64(len(data))/3 {
					once.Do(frozen.Freeze)
				}
			})
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("upload with a frozen server: %v\n%s", err, logs)
			}
			if elapsed > 8*timeout {
				t.Errorf("upload took %s with a %s server timeout", elapsed, timeout)
			}
			if !frozen.Frozen() {
				t.Fatal("server was never frozen")
			}
			v := chkOf(t, cp)
			// Every share sealed on a live server.
			placed := map[int]bool{}
			for sh, srvs := range g.Holders(v.StorageIndex()) {
				for _, i := range srvs {
					if i != frozen.Index {
						placed[sh] = true
					}
				}
			}
			if len(placed) != 5 {
				t.Fatalf("shares on live servers: %v, want all 5", placed)
			}
			if st := c.Stats(); st.ServersFailed != 1 {
				t.Errorf("servers failed: %d, want 1", st.ServersFailed)
			}
			download(t, c, cp, data)
			t.Logf("upload with a server frozen at 1/3: %s", elapsed)
		})
	}
}

func TestFreezeDuringDownload(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.ServerTimeout = timeout })
	data := random(40 * seg)
	cp := chkOf(t, upload(t, c, data))

	t.Run("frozen mid-read", func(t *testing.T) {
		for _, s := range g.Servers {
			s.Backend.LogReads(true)
		}
		f, err := c.Open(ctxFor(t, time.Minute), cp)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(data))
		if _, err := f.ReadAt(buf[:seg], 0); err != nil {
			t.Fatal(err)
		}
		// Freeze a server the first segment was read from.
		var victim *testgrid.Server
		for _, s := range g.Servers {
			if len(s.Backend.ReadLog()) > 0 {
				victim = s
				break
			}
		}
		if victim == nil {
			t.Fatal("no server served the first segment")
		}
		victim.Freeze()
		defer victim.Thaw()
		start := time.Now()
		if _, err := f.ReadAt(buf[seg:], seg); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 4*timeout {
			t.Errorf("read took %s with a %s server timeout", d, timeout)
		}
		if !bytes.Equal(buf, data) {
			t.Fatal("wrong bytes")
		}
	})
	t.Run("frozen before open", func(t *testing.T) {
		// A fresh client: nothing known about the frozen server.
		fresh, _ := newClient(t, g, func(cfg *grid.Config) { cfg.ServerTimeout = timeout })
		for _, i := range ringOrder(g, cp.StorageIndex())[:1] {
			g.Servers[i].Freeze()
			defer g.Servers[i].Thaw()
		}
		start := time.Now()
		download(t, fresh, cp, data)
		if d := time.Since(start); d > 4*timeout {
			t.Errorf("download took %s with a %s server timeout", d, timeout)
		}
	})
}

func TestRangeReadFetchesOnlyItsSegments(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	const segs = 40
	data := random(segs*seg - 100)
	cp := chkOf(t, upload(t, c, data))
	l, err := chk.NewLayout(chk.Params{K: 3, N: 5, SegmentSize: seg}, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		off, n   int64
		segments []int
	}{
		{"inside one segment", 10*seg + 100, 1000, []int{10}},
		{"across two segments", 20*seg - 10, 20, []int{19, 20}},
		{"the last bytes", int64(len(data)) - 5, 5, []int{segs - 1}},
		{"three whole segments", 5 * seg, 3 * seg, []int{5, 6, 7}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := c.Open(ctxFor(t, time.Minute), cp)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range g.Servers {
				s.Backend.LogReads(true)
			}
			buf := make([]byte, tc.n)
			if _, err := f.ReadAt(buf, tc.off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf, data[tc.off:tc.off+tc.n]) {
				t.Fatal("wrong bytes")
			}
			blocks := map[int]int{} // segment -> block reads
			for _, s := range g.Servers {
				for _, r := range s.Backend.ReadLog() {
					if r.Off < l.BlocksOffset {
						continue // header and hash trees
					}
					blocks[int((r.Off-l.BlocksOffset)/int64(l.BlockSize))]++
				}
			}
			want := map[int]int{}
			for _, i := range tc.segments {
				want[i] = 3 // K blocks
			}
			if fmt.Sprint(blocks) != fmt.Sprint(want) {
				t.Fatalf("block reads by segment: %v, want %v", blocks, want)
			}
		})
	}
}

func TestConcurrentUploadsAndDownloads(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	// No server hangs here: a server timeout no loaded machine reaches.
	// With the tests' 2 s, twelve transfers at once under -race on a busy
	// machine timed out dials and shares ("only 3 usable: ... 2 failed").
	slow := func(cfg *grid.Config) { cfg.ServerTimeout = time.Minute }
	c, logs := newClient(t, g, slow)
	other, ologs := newClient(t, g, func(cfg *grid.Config) { slow(cfg); cfg.Convergence = nil })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client log:\n%s\nother client log:\n%s", logs, ologs)
		}
	})
	same := random(7*seg + 11)
	var wg sync.WaitGroup
	var failures atomic.Int32
	caps := make([]string, 4)
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c
			if i%2 == 1 {
				cl = other
			}
			data := pseudo(uint64(i), 3*seg+i*1000)
			if i < 4 {
				data, cl = same, c // the same convergent file four times at once
			}
			cp, err := cl.Upload(ctxFor(t, time.Minute), bytes.NewReader(data), int64(len(data)), nil)
			if err != nil {
				t.Errorf("upload %d: %v", i, err)
				failures.Add(1)
				return
			}
			if i < 4 {
				caps[i] = cp.String()
			}
			f, err := cl.Open(ctxFor(t, time.Minute), cp)
			if err != nil {
				t.Errorf("open %d: %v", i, err)
				return
			}
			got := make([]byte, len(data))
			if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
				t.Errorf("download %d: %v (equal %v)", i, err, bytes.Equal(got, data))
			}
		}()
	}
	wg.Wait()
	if failures.Load() == 0 {
		for _, cp := range caps[1:] {
			if cp != caps[0] {
				t.Errorf("concurrent uploads of one file gave caps %v", caps)
				break
			}
		}
	}
}

// TestNothingLeftRunning checks that a client and a grid leave no
// goroutine behind once closed and cleaned up, even after a server hung
// during an upload and a download.
func TestNothingLeftRunning(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("work", func(t *testing.T) {
		g := testgrid.New(t, 5, nil)
		c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.ServerTimeout = timeout; cfg.Convergence = nil })
		data := random(20 * seg)
		var once sync.Once
		cp, err := c.Upload(ctxFor(t, time.Minute), bytes.NewReader(data), int64(len(data)), func(n int64) {
			if n > int64(len(data))/2 {
				once.Do(g.Servers[1].Freeze)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		download(t, c, cp, data)
		c.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
