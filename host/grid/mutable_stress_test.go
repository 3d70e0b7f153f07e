package grid_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

// TestMutableManyWriters: three clients add 30 lines each at once; none is
// lost or doubled, and no version is wasted. (Eight writers of 20 under
// -race on a loaded 2-core machine also pass, in about a minute.)
func TestMutableManyWriters(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("many writers: slow under -race (TestMutableConcurrentModifiers covers races there)")
	}
	g := mutGrid(t, 5)
	const writers, items = 3, 30
	w := create(t, mutClient(t, g), nil)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for k := 0; k < writers; k++ {
		c := mutClient(t, g)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < items; i++ {
				if _, err := c.Modify(mctx(t), w, addLine(fmt.Sprintf("w%d-%03d", k, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, seq, err := mutClient(t, g).ReadMutable(mctx(t), w.ReadCap())
	if err != nil {
		t.Fatal(err)
	}
	ls := slices.Sorted(slices.Values(lines(got)))
	if len(ls) != writers*items || len(slices.Compact(slices.Clone(ls))) != writers*items {
		t.Fatalf("%d lines (%d distinct), want %d", len(ls), len(slices.Compact(slices.Clone(ls))), writers*items)
	}
	if seq != writers*items+1 {
		t.Logf("version %d: %d publishes beyond one per line", seq, seq-writers*items-1)
	}
}
