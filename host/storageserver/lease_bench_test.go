package storageserver

import (
	"crypto/sha256"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkLeasePut: lease records put by 8 goroutines at once (as
// concurrent seals do), each on its own storage index, into a bbolt store
// on disk; commits/op shows how many puts share one commit.
func BenchmarkLeasePut(b *testing.B) {
	ls, _, err := openLeases(filepath.Join(b.TempDir(), "leases.db"), DefaultLeaseDuration, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	defer ls.close()
	var n atomic.Int64
	exp := time.Now().Add(time.Hour)
	b.SetParallelism(4) // 8 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if err := ls.put([16]byte{byte(i >> 16), byte(i >> 8), byte(i)}, sha256.Sum256(nil), exp); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(ls.(*boltLeases).commits.Load())/float64(b.N), "commits/op")
}
