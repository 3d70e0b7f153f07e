//go:build unix

package storagedisk

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/storage/storagetest"
)

// BenchmarkWriteSeal measures a sealed (fsynced) 1 MiB share per op on
// this machine's disk, in process and through the plugin's fast path: the
// cost of durability that the memory-backend benchmark leaves out.
func BenchmarkWriteSeal(b *testing.B) {
	for _, tc := range []struct {
		name string
		new  func(b *testing.B) storage.Backend
	}{
		{"inprocess", func(b *testing.B) storage.Backend {
			d, err := New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			return d
		}},
		{"fast", func(b *testing.B) storage.Backend {
			c, _ := storagetest.StartPlugin(b, pluginCmd(), true, settings(b, b.TempDir()))
			return c
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			be := tc.new(b)
			ctx := context.Background()
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			for i := 0; b.Loop(); i++ {
				r := storage.Ref{Num: uint32(i)}
				w, err := be.Create(ctx, r, int64(len(buf)))
				if err == nil {
					err = w.WriteAt(ctx, buf, 0)
				}
				if err == nil {
					err = w.Seal(ctx)
				}
				if err == nil {
					err = be.Delete(ctx, r)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPut measures Put of whole shares of several sizes, 8 at once
// (as 5 servers' worth of PutShares arrive), packed and in files of their
// own: ns and CPU per share, and syncs per share for the pack. It is the
// figure that set maxPackShare.
func BenchmarkPut(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, 256 << 10, 1 << 20} {
		for _, pack := range []bool{true, false} {
			b.Run(fmt.Sprintf("%dKiB/pack=%v", size>>10, pack), func(b *testing.B) {
				d, err := NewOptions(b.TempDir(), Options{NoPack: !pack})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { d.Close() })
				d.packMax = maxRecordData // measure over the threshold too
				buf := make([]byte, size)
				var seq atomic.Uint64
				var ru0, ru1 unix.Rusage
				unix.Getrusage(unix.RUSAGE_SELF, &ru0)
				b.SetBytes(int64(size))
				b.SetParallelism(4) // 4 x GOMAXPROCS(2) = 8 at once
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						n := seq.Add(1)
						var r storage.Ref
						binary.BigEndian.PutUint64(r.Index[:], n)
						if err := d.Put(ctx, r, buf); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				unix.Getrusage(unix.RUSAGE_SELF, &ru1)
				cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
				if d.pack != nil && pack {
					b.ReportMetric(float64(d.pack.syncs.Load())/float64(b.N), "syncs/op")
				}
			})
		}
	}
}

// BenchmarkEncodeHeader measures what a record header costs a Put of 4
// KiB: version 1 (two keyless CRCs) against version 2 (data CRC and a
// SipHash tag under the pack's key).
func BenchmarkEncodeHeader(b *testing.B) {
	data := make([]byte, 4<<10)
	var ref storage.Ref
	for _, c := range []struct {
		name  string
		codec *recCodec
	}{{"v1", codecV1}, {"v2", keyCodec([]byte("0123456789abcdef"), packV3Start)}} {
		b.Run(c.name, func(b *testing.B) {
			var hdr [recHeaderLen]byte
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				c.codec.encodeHeader(hdr[:], recKindShare, ref, data)
			}
		})
	}
}
