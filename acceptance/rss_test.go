//go:build acceptance

package acceptance

import (
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// rssLimitKiB is the most the client node process may hold resident while
// it moves a 1 GiB file (issue 3: under 256 MiB).
const rssLimitKiB = 256 << 10

// peakWatch samples VmRSS of the process tree below pid while a transfer
// runs, so that the plugins' figures are known as well as the client's own
// VmHWM.
type peakWatch struct {
	mu   sync.Mutex
	peak map[string]int64 // by process label, KiB
	stop chan struct{}
	done chan struct{}
}

func watchPeaks(n *Node) *peakWatch {
	w := &peakWatch{peak: map[string]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, p := range children(n.Pid) {
				label := "pid " + strconv.Itoa(p.Pid)
				if k, name, ok := pluginKindName(p); ok {
					label = k + " " + name
				}
				if v, err := vmKB(p.Pid, "VmRSS"); err == nil {
					w.mu.Lock()
					w.peak[label] = max(w.peak[label], v)
					w.mu.Unlock()
				}
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *peakWatch) Stop() map[string]int64 {
	close(w.stop)
	<-w.done
	return w.peak
}

// TestPeakRSS uploads and downloads a 1 GiB file through the client node
// and reads the client process's peak RSS (VmHWM, reset before each
// transfer through /proc/PID/clear_refs): it must stay under 256 MiB.
func TestPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 1 GiB twice")
	}
	const size = 1 << 30
	g := startGrid(t, GridOptions{})
	pid := g.Client.Pid
	hwm := func() int64 {
		v, err := vmKB(pid, "VmHWM")
		if err != nil {
			t.Fatalf("read VmHWM of the client (pid %d): %v", pid, err)
		}
		return v
	}
	reset := func() {
		if err := resetPeakRSS(pid); err != nil {
			t.Logf("cannot reset the peak RSS (%v): the figure counts since start", err)
		}
	}
	startRSS, _ := vmKB(pid, "VmRSS")

	reset()
	w := watchPeaks(g.Client)
	sent := newHashWriter()
	start := time.Now()
	c := g.mustPut(t, g.Client, teeReader(newGen(700, size), sent))
	upTook := time.Since(start)
	upPeak, upPlugins := hwm(), w.Stop()

	reset()
	w = watchPeaks(g.Client)
	start = time.Now()
	sum, n, r := g.getHash(t, g.Client, c)
	downTook := time.Since(start)
	downPeak, downPlugins := hwm(), w.Stop()
	if r.Code != 0 {
		t.Fatalf("get: %v", r)
	}
	if n != size || sum != sent.Sum() {
		t.Fatalf("get returned %d bytes sha256 %s, want %d bytes %s", n, sum, int64(size), sent.Sum())
	}

	figure(t, "client node peak RSS (VmHWM): upload of 1 GiB %.1f MiB, download %.1f MiB (limit %d MiB; %.1f MiB at idle)",
		float64(upPeak)/1024, float64(downPeak)/1024, rssLimitKiB>>10, float64(startRSS)/1024)
	figure(t, "plugin processes peak RSS (sampled): upload %v KiB, download %v KiB", upPlugins, downPlugins)
	figure(t, "1 GiB: put %v (%.1f MiB/s), get %v (%.1f MiB/s)",
		upTook.Round(time.Millisecond), mbps(size, upTook), downTook.Round(time.Millisecond), mbps(size, downTook))
	for _, tc := range []struct {
		name string
		kib  int64
	}{{"upload", upPeak}, {"download", downPeak}} {
		if tc.kib >= rssLimitKiB {
			t.Errorf("client peak RSS during the %s of 1 GiB: %d KiB, limit %d KiB", tc.name, tc.kib, rssLimitKiB)
		}
	}
	// The spool of the convergent upload must be gone.
	if left := findFiles(g.Client.Dir, func(string) bool { return true }); len(left) > 0 {
		for _, f := range left {
			if st, err := os.Stat(f); err == nil && st.Size() >= size/2 {
				t.Errorf("a %d-byte file is left in the client's folder after the upload: %s", st.Size(), f)
			}
		}
	}
}
