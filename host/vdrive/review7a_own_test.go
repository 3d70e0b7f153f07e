package vdrive

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tarnfs/tarn/host/cap"
)

// TestReview7aTriedBounded: a name whose links keep being taken into
// folder changes that fail (a file rewritten through a long outage, each
// retry taking a new cap) keeps a bounded list of them, and a new
// record's Prev and Also are the same as with the whole list.
func TestReview7aTriedBounded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		takes  int
		base   string
		repeat bool // the latest cap taken again (and base among them)
	}{
		{name: "few", takes: 3, base: "b"},
		{name: "many", takes: 200, base: "b"},
		{name: "base among them", takes: 50, base: "c17", repeat: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Behind{dirs: map[cap.MutableRead]*behindDir{}}
			var k cap.MutableRead
			bd := &behindDir{pending: map[string]*plink{}, inflight: map[string]*plink{}, busy: map[string]chan struct{}{}}
			b.dirs[k] = bd
			base := tc.base
			bd.own = map[string]*ownName{"x": {base: &base}}
			var all []string // every cap taken, as the unbounded list held
			for i := range tc.takes {
				c := fmt.Sprintf("c%d", i)
				l := &plink{rec: linkRecord{Name: "x", Cap: c}}
				bd.takenLocked(l)
				if !slices.Contains(all, c) {
					all = append(all, c)
				}
				if tc.repeat {
					bd.takenLocked(l)
				}
			}
			if n := len(bd.own["x"].tried); n > maxTried {
				t.Fatalf("tried holds %d caps after %d takes, want at most %d", n, tc.takes, maxTried)
			}
			bd.pending["x"] = &plink{rec: linkRecord{Name: "x", Cap: "new"}}
			prev := "entry"
			gotP, gotA := b.ownPrior(k, "x", &prev, nil)
			// The same with the whole list.
			bd.own["x"].tried = all
			wantP, wantA := b.ownPrior(k, "x", &prev, nil)
			if *gotP != *wantP || !slices.Equal(gotA, wantA) {
				t.Fatalf("record prior: got %s %v, want %s %v", *gotP, gotA, *wantP, wantA)
			}
			if len(gotA) == 0 || gotA[len(gotA)-1] != "new" {
				t.Fatalf("also %v does not end with the pending link", gotA)
			}
		})
	}
}
