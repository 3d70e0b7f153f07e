package grid_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
)

// TestRange7CacheBound: more sequential readers of one File than its
// cache holds groups for (4 and 8, each with a window of pieces in
// flight) keep it near its 12 segments: read-ahead never takes the place
// of a segment read ahead and not read yet, nor grows the cache past its
// limit, and a new segment evicts as many as it takes. Only the segments
// the readers' pieces in flight wait for may pass it. (Before: 27 to 33
// segments at once for 4 readers, 32 to 48 for 8, and up to 15 left once
// all was read.)
func TestRange7CacheBound(t *testing.T) {
	const segs = 48
	size := segs * seg
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(size)
	cp := upload(t, c, data)
	const limit = 3 * grid.AheadSegs
	const piece, inflight = seg / 8, 16
	for _, readers := range []int{4, 8} {
		t.Run(fmt.Sprint(readers, " readers"), func(t *testing.T) {
			f, err := c.Open(ctxFor(t, time.Minute), cp)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, readers)
			for r := range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					from := int64(size) * int64(r) / int64(readers)
					to := int64(size) * int64(r+1) / int64(readers)
					if err := rangeRead(f, from, to, piece, inflight, data); err != nil {
						errs <- fmt.Errorf("reader %d: %w", r, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			kept := grid.WaitRangeAhead(f)
			peak := grid.RangePeak(f)
			t.Logf("%d readers: at most %d segments cached, %d left", readers, peak, kept)
			// Each reader's pieces in flight span up to 3 segments.
			if most := limit + readers*(inflight*piece/seg+1); peak > most {
				t.Errorf("%d segments cached at once, want at most %d", peak, most)
			}
			if kept > limit {
				t.Errorf("%d segments left cached, want at most %d", kept, limit)
			}
		})
	}
}
