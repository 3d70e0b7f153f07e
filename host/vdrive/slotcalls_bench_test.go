package vdrive_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/vdrive"
)

// BenchmarkAddOneSlotCalls adds one entry at a time to a 10,000-entry
// directory on grids of 5 and 15 servers and reports what each add costs
// in mutable-slot calls to servers and bytes read, figures that a loaded
// machine does not blur: lists grow with the grid (one tiny call per
// server and slot), reads and writes must not.
func BenchmarkAddOneSlotCalls(b *testing.B) {
	for _, servers := range []int{5, 15} {
		g := newGridN(b, servers)
		c := newClient(b, g)
		ctx := ctxFor(b, 10*time.Minute)
		rootCap := sizedDir(b, g, c, bigN)
		d, _ := vdrive.New(vdrive.GridStore(c), rootCap, vdrive.WithCache(0))
		b.Run(fmt.Sprintf("servers=%d", servers), func(b *testing.B) {
			before := c.Stats()
			for i := 0; i < b.N; i++ {
				if err := d.Link(ctx, fmt.Sprintf("/big/call-%d-%d", b.N, i), cap.Literal{Data: []byte("x")}.String()); err != nil {
					b.Fatal(err)
				}
			}
			after := c.Stats()
			n := float64(b.N)
			b.ReportMetric(float64(after.SlotLists-before.SlotLists)/n, "lists/add")
			b.ReportMetric(float64(after.SlotReads-before.SlotReads)/n, "reads/add")
			b.ReportMetric(float64(after.SlotWrites-before.SlotWrites)/n, "writes/add")
			b.ReportMetric(float64(after.BytesDownloaded-before.BytesDownloaded)/n/1024, "KiB-down/add")
		})
	}
}
