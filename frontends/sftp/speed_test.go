//go:build unix

package sftp

import (
	"bytes"
	"io"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestThroughput prints put and get MB/s of a 64 MiB file through SFTP
// over the in-process test grid (a figure, and a check that large files
// round-trip).
func TestThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	e := newEnv(t, envOptions{})
	c := e.client("alice", alicePW)
	const size = 64 << 20
	data := pseudo(5, size)
	cpu0 := cpuTime()
	start := time.Now()
	f, err := c.Create("/big")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	written := time.Since(start)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	put := time.Since(start)
	putCPU := cpuTime() - cpu0
	start = time.Now()
	r, err := c.Open("/big")
	if err != nil {
		t.Fatal(err)
	}
	h := &countWriter{}
	if _, err := r.WriteTo(h); err != nil {
		t.Fatal(err)
	}
	r.Close()
	get := time.Since(start)
	if h.n != size {
		t.Fatalf("read %d bytes", h.n)
	}
	start = time.Now()
	vf, err := e.drive("alice").Open(ctxT(t), "/big")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vf.(io.WriterTo).WriteTo(&countWriter{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("vdrive WriteTo alone: %.1f MiB/s", float64(size)/(1<<20)/time.Since(start).Seconds())
	t.Logf("put %.1f MiB/s (writes %v, close %v; CPU of the whole process, client and grid, %.2f ns/B), get %.1f MiB/s",
		float64(size)/(1<<20)/put.Seconds(), written.Round(time.Millisecond), (put - written).Round(time.Millisecond),
		float64(putCPU.Nanoseconds())/size, float64(size)/(1<<20)/get.Seconds())
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)

// TestSmallFiles prints how many 4 KiB files a second one session
// uploads (each close is an upload and a directory change).
func TestSmallFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	e := newEnv(t, envOptions{})
	c := e.client("alice", alicePW)
	const n = 100
	data := pseudo(1, 4096)
	start := time.Now()
	for i := range n {
		f, err := c.Create("/s" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
		if err != nil {
			t.Fatal(err)
		}
		f.Write(data)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d small files in %v: %.0f files/s", n, time.Since(start).Round(time.Millisecond), n/time.Since(start).Seconds())
}
