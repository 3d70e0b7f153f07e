package vdrive

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkJournalCommit: callers at once each commit one record of a
// link's size (as a close does) and wait for it, as many times as b.N in
// all. It reports the transactions (two fdatasyncs each) per record and
// the latency a caller waits.
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
			n := float64(per * callers)
			b.ReportMetric(float64(j.n.txs.Load())/n, "tx/record")
			b.ReportMetric(float64(wait.Microseconds())/n, "µs-wait/record")
			b.ReportMetric(float64(j.n.ns.Load())/1e3/float64(j.n.txs.Load()), "µs/tx")
		})
	}
}
