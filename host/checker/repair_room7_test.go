package checker_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/checker"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/placement"
	"github.com/tarnfs/tarn/host/testgrid"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// spaceAsked counts the backend calls a repair makes of a target server:
// Space (GetVersion, and Allocate's room check) and Create. Once full is
// set, it has no room in truth.
type spaceAsked struct {
	storage.Backend
	n    atomic.Int64
	full atomic.Bool
}

func (b *spaceAsked) Space(ctx context.Context) (storage.Space, error) {
	b.n.Add(1)
	sp, err := b.Backend.Space(ctx)
	if b.full.Load() {
		sp.Free = 0
	}
	return sp, err
}

func (b *spaceAsked) Create(ctx context.Context, ref storage.Ref, size int64) (storage.Writer, error) {
	b.n.Add(1)
	if b.full.Load() {
		return nil, fmt.Errorf("create share %s: %w", ref, storage.ErrNoSpace)
	}
	return b.Backend.Create(ctx, ref, size)
}

// roomSource is g's server list with the free space each server
// announces (by grid index; 1 TiB unless set), live.
type roomSource struct {
	g    *testgrid.Grid
	mu   sync.Mutex
	free map[int]uint64
}

func (r *roomSource) Servers() []grid.Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.g.Source()
	for i := range out {
		out[i].FreeSpace, out[i].SpaceKnown = 1<<40, true
		if f, ok := r.free[i]; ok {
			out[i].FreeSpace = f
		}
	}
	return out
}

// TestRepairSkipsServersAnnouncedFull: a repair does not ask a server
// announced too full for a share (no GetVersion, no Allocate) nor place
// a share on it while the others can restore happiness, and its report
// names where each share went and which servers it left out; when the
// others cannot (too many announced full, or another server full in
// truth), the announced-full ones are asked and used. Servers announced
// full here have room in truth: a share placed on one shows the
// announcement was ignored.
func TestRepairSkipsServersAnnouncedFull(t *testing.T) {
	cases := []struct {
		name string
		// announced: ring positions of the file announced full at the
		// repair; truly: ring positions with no room in truth.
		announced, truly []int
		// free is what the announced-full servers announce (0: FULL).
		free uint64
		// used: whether the announced-full servers take shares.
		used bool
	}{
		{name: "one target announced full", announced: []int{0}},
		{name: "one announced below the share size", announced: []int{1}, free: 32 << 10},
		// 5 servers, H=4, two lost their shares: leaving two out leaves 3.
		{name: "too many announced full to skip", announced: []int{0, 1}, used: true},
		// The other free server is full in truth (announced with room):
		// without the announced-full one, happiness stays at 3.
		{name: "others too full in truth", announced: []int{0}, truly: []int{1}, used: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := make([]byte, 200<<10) // 4 segments of 64 KiB: shares of ~68 KiB
			rand.Read(data)
			// The ring depends on the storage index, known after the
			// upload: servers are made full in truth then.
			counters := make([]*spaceAsked, 5)
			g := testgrid.New(t, 5, &testgrid.Options{Backend: func(i int) (storage.Backend, error) {
				counters[i] = &spaceAsked{Backend: storagememory.New()}
				return counters[i], nil
			}})
			lease := make([]byte, 32)
			rand.Read(lease)
			log := hclog.NewNullLogger()
			gc, err := grid.New(grid.Config{
				Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret, Codec: codecreedsolomon.New(),
				Servers: g.Source(), K: 3, H: 4, N: 5, SegmentSize: 64 << 10, LeaseSecret: lease,
				Convergence: []byte("checker test"), TempDir: t.TempDir(), ServerTimeout: 10 * time.Second, Logger: log,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { gc.Close() })
			src := &roomSource{g: g}
			ck, err := checker.New(checker.Config{
				Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret, Servers: src,
				Codec: codecreedsolomon.New(), LeaseSecret: lease, H: 4, Grid: gc,
				ServerTimeout: 10 * time.Second, Logger: log,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ck.Close() })
			e := &env{g: g, gc: gc, ck: ck, lease: lease}

			c := e.upload(t, data)
			si := c.StorageIndex()
			ids := make([]string, len(g.Servers))
			at := map[string]int{}
			for i, s := range g.Servers {
				ids[i], at[s.NodeID] = s.NodeID, i
			}
			var ring []int
			for _, id := range placement.Permute(si[:], ids) {
				ring = append(ring, at[id])
			}
			// Shares 0 and 1 (on the first two of the ring) are lost: the
			// repair rebuilds them, and its plan's first targets are
			// those two servers.
			for sh, srvs := range g.Holders(si) {
				if len(srvs) != 1 || srvs[0] != ring[sh] {
					t.Fatalf("share %d on servers %v, ring order %v", sh, srvs, ring)
				}
				if sh < 2 {
					if err := g.Servers[srvs[0]].Backend.DeleteShare(storage.Ref{Index: si, Num: uint32(sh)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, p := range tc.truly {
				counters[ring[p]].full.Store(true)
			}
			src.mu.Lock()
			src.free = map[int]uint64{}
			full := map[string]bool{}
			for _, p := range tc.announced {
				src.free[ring[p]] = tc.free
				full[g.Servers[ring[p]].NodeID] = true
			}
			src.mu.Unlock()
			before := make([]int64, 5)
			for i, b := range counters {
				before[i] = b.n.Load()
			}

			r := e.check(t, c, checker.Options{Repair: true})
			if r.Repair == nil {
				t.Fatalf("no repair: outcome %s", r.Outcome)
			}
			t.Logf("outcome %s, placed %+v, left out %v, errors %v", r.Outcome, r.Repair.Placed, r.Repair.LeftOutFull, r.Repair.Errors)
			if r.Outcome != checker.Repaired || len(r.Repair.Errors) > 0 {
				t.Fatalf("outcome %s, errors %v, want repaired without errors", r.Outcome, r.Repair.Errors)
			}
			placed := map[int]bool{}
			onFull := false
			for _, p := range r.Repair.Placed {
				placed[p.Share] = true
				if full[p.Server] {
					onFull = true
				}
				holders := g.Holders(si)[p.Share]
				if !slices.Contains(holders, at[p.Server]) {
					t.Errorf("report places share %d on %s; the grid has it on servers %v", p.Share, p.Server, holders)
				}
			}
			if !placed[0] || !placed[1] {
				t.Errorf("placed %+v: shares 0 and 1 must be placed", r.Repair.Placed)
			}
			var asked int64
			for id := range full {
				asked += counters[at[id]].n.Load() - before[at[id]]
			}
			var wantLeft []string
			if !tc.used {
				for id := range full {
					wantLeft = append(wantLeft, id)
				}
				slices.Sort(wantLeft)
			}
			switch {
			case tc.used && !onFull:
				t.Errorf("no share on the servers announced full, which the repair needed")
			case !tc.used && (onFull || asked > 0):
				t.Errorf("servers announced full got %d requests and a share: %v", asked, onFull)
			case !slices.Equal(r.Repair.LeftOutFull, wantLeft):
				t.Errorf("report leaves out %v, want %v", r.Repair.LeftOutFull, wantLeft)
			}
			e.readBack(t, c, data)
		})
	}
}
