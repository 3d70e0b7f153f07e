package grid_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestDownloadReadsSmallSharesOnce: a share that fits one cache window is
// read whole, once (header, extension block, trees and blocks together),
// and a larger file still reads each block on its own; a corrupt byte in
// a share read whole is still caught, and the bytes are the file's.
func TestDownloadReadsSmallSharesOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		corrupt  bool
		maxReads int64 // backend share reads for one download (K = 3)
	}{
		{"4 KiB", 4096, false, 3},
		{"share just under a window", 3 * 30 << 10, false, 3},
		{"4 KiB, one share corrupt", 4096, true, 4},
		// header and trees through the window cache, then one read per
		// block: 3 shares x (1 + 5 segments)
		{"5 segments", 5 * seg, false, 18},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testgrid.New(t, 5, nil)
			c, _ := newClient(t, g, nil)
			data := random(tc.size)
			cp := chkOf(t, upload(t, c, data))
			l, err := chk.NewLayout(chk.Params{K: 3, N: 5, SegmentSize: seg}, int64(tc.size))
			if err != nil {
				t.Fatal(err)
			}
			if tc.corrupt {
				// The share of the first server in ring order is read first.
				first := ringOrder(g, cp.StorageIndex())[0]
				for sh, srvs := range g.Holders(cp.StorageIndex()) {
					for _, s := range srvs {
						if s == first {
							g.Servers[s].Backend.Corrupt(storage.Ref{Index: cp.StorageIndex(), Num: uint32(sh)}, l.BlocksOffset+7, 1)
						}
					}
				}
			}
			before := g.Counts().Reads
			for _, s := range g.Servers {
				s.Backend.LogReads(true)
			}
			f, err := c.Open(ctxFor(t, time.Minute), cp)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := f.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("download: %v (%d bytes, equal %v)", err, out.Len(), bytes.Equal(out.Bytes(), data))
			}
			reads := g.Counts().Reads - before
			if reads > tc.maxReads {
				var log []string
				for i, s := range g.Servers {
					for _, r := range s.Backend.ReadLog() {
						log = append(log, fmt.Sprintf("server %d share %d %d+%d", i, r.Ref.Num, r.Off, r.Len))
					}
				}
				t.Fatalf("%d share reads, want at most %d: %v", reads, tc.maxReads, log)
			}
			if tc.corrupt != (len(f.Problems()) > 0) {
				t.Fatalf("problems %v, corrupt share: %v", f.Problems(), tc.corrupt)
			}
		})
	}
}
