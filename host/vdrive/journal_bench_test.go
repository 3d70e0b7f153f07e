//go:build unix

package vdrive

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkJournalCommit: callers at once each commit one record of a
// link's size (as a close does) and wait for it, as many times as b.N in
// all. It reports the transactions (two fdatasyncs each) per record and
// the latency a caller waits, and the process's CPU per record.
func BenchmarkJournalCommit(b *testing.B) {
	for _, callers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			j, _, _, err := openJournal(b.TempDir() + "/j.db")
			if err != nil {
				b.Fatal(err)
			}
			defer j.close()
			rec := make([]byte, 600)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var wait time.Duration
			per := b.N / callers
			cpu0 := cpuTime()
			b.ResetTimer()
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var w time.Duration
					for range per {
						t := time.Now()
						if err := j.commit(map[uint64][]byte{j.next(): rec}, nil); err != nil {
							b.Error(err)
							return
						}
						w += time.Since(t)
					}
					mu.Lock()
					wait += w
					mu.Unlock()
				}()
			}
			wg.Wait()
			cpu := cpuTime() - cpu0
			n := float64(per * callers)
			b.ReportMetric(float64(cpu.Microseconds())/n, "µs-cpu/record")
			b.ReportMetric(float64(j.n.txs.Load())/n, "tx/record")
			b.ReportMetric(float64(wait.Microseconds())/n, "µs-wait/record")
			b.ReportMetric(float64(j.n.ns.Load())/1e3/float64(j.n.txs.Load()), "µs/tx")
		})
	}
}
