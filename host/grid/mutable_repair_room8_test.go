package grid_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/introducer"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestMutableRepairSkipsServersAnnouncedFull: the shares of a mutable file
// (a directory is one) are lost from the servers that held them, which
// then announce too little free space for a share. A repair, and a
// modify, put the lost share numbers on other servers (the repair names
// the full ones in its report; before, each went back to its full
// server), as long as the others that answered can still be happy (H=4
// of 5); with two full, or an announcement that says nothing (unknown
// figure, never announced), the share goes back where it was. The file
// reads back and verifies healthy either way.
func TestMutableRepairSkipsServersAnnouncedFull(t *testing.T) {
	cases := []struct {
		name  string
		lose  []int  // share numbers lost (their servers announce free)
		free  uint64 // what those servers announce
		known bool   // as a live announcement (SpaceKnown)
		skip  bool   // the lost shares go elsewhere
	}{
		{name: "one announced full", lose: []int{1}, free: 0, known: true, skip: true},
		{name: "one below the share size", lose: []int{3}, free: 100, known: true, skip: true},
		{name: "two full at H=4: used", lose: []int{0, 2}, free: 0, known: true},
		{name: "unknown figure is room", lose: []int{1}, free: introducer.FreeSpaceUnknown, known: true},
		{name: "never announced is room", lose: []int{1}, free: 0, known: false},
	}
	for _, tc := range cases {
		for _, modify := range []bool{false, true} {
			t.Run(op(modify)+"/"+tc.name, func(t *testing.T) {
				testLostSharesAnnouncedFull(t, tc.lose, tc.free, tc.known, tc.skip, modify)
			})
		}
	}
}

// testLostSharesAnnouncedFull loses shares lose of a new mutable file,
// has their servers announce free (known: as a live announcement), then
// repairs it (or, modify, overwrites it) through a client that sees those
// announcements, and checks that the lost share numbers went elsewhere
// exactly when skip.
func testLostSharesAnnouncedFull(t *testing.T, lose []int, free uint64, known, skip, modify bool) {
	dirs := make([]string, 5)
	g := testgrid.New(t, 5, &testgrid.Options{
		Backend: func(i int) (storage.Backend, error) {
			dirs[i] = t.TempDir()
			return storagedisk.New(dirs[i])
		},
		Server: func(_ int, cfg *storageserver.Config) { cfg.ValidateSlotWrite = mutable.ValidateSlotWrite },
	})
	data := pseudo(5, 20000)
	w := create(t, mutClient(t, g), data)
	si := w.StorageIndex()

	// Lose the shares; their servers announce free.
	full := map[string]bool{}
	was := map[int]string{} // share number -> the server that held it
	for _, num := range lose {
		for i, nums := range slotsOf(t, g, si) {
			if !slices.Contains(nums, uint32(num)) {
				continue
			}
			p := filepath.Join(dirs[i], "slots", fmt.Sprintf("%x", si[:1]), fmt.Sprintf("%x", si[:]), fmt.Sprint(num))
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			full[g.Servers[i].NodeID] = true
			was[num] = g.Servers[i].NodeID
		}
		if was[num] == "" {
			t.Fatalf("no server holds share %d", num)
		}
	}
	src := grid.ServerFunc(func() []grid.Server {
		out := g.Source()
		for i := range out {
			out[i].FreeSpace, out[i].SpaceKnown = 1<<40, known
			if full[out[i].NodeID] {
				out[i].FreeSpace = free
			}
		}
		return out
	})

	seq := uint64(1)
	if modify {
		data = pseudo(6, 20000)
		var err error
		if seq, err = knowing(t, g, src).Overwrite(mctx(t), w, data); err != nil || seq != 2 {
			t.Fatalf("modify: version %d, %v", seq, err)
		}
	} else {
		rep, err := knowing(t, g, src).RepairMutable(mctx(t), w.ReadCap().Verify())
		if err != nil || !slices.Equal(rep.Written, lose) || len(rep.Failed) != 0 {
			t.Fatalf("repair: %+v, %v; want %v written", rep, err, lose)
		}
		var wantLeftOut []string
		if skip {
			for id := range full {
				wantLeftOut = append(wantLeftOut, id)
			}
			slices.Sort(wantLeftOut)
		}
		if !slices.Equal(rep.LeftOutFull, wantLeftOut) {
			t.Fatalf("servers left out: %v, want %v", rep.LeftOutFull, wantLeftOut)
		}
	}
	for _, num := range lose {
		var at []string
		for i, nums := range slotsOf(t, g, si) {
			if slices.Contains(nums, uint32(num)) {
				at = append(at, g.Servers[i].NodeID)
			}
		}
		if len(at) != 1 {
			t.Fatalf("share %d on %d servers after the %s, want 1", num, len(at), op(modify))
		}
		if back := at[0] == was[num]; back == skip {
			t.Fatalf("share %d written back to its old server %v, want %v (announced %d, known %v)", num, back, !skip, free, known)
		}
	}
	chk, err := mutClient(t, g).VerifyMutable(mctx(t), w.ReadCap().Verify())
	if err != nil || !chk.Healthy || chk.Good != 5 {
		t.Fatalf("verify after the repair: %+v, %v", chk, err)
	}
	readMut(t, mutClient(t, g), w.ReadCap(), data, seq)
}

func op(modify bool) string {
	if modify {
		return "modify"
	}
	return "repair"
}
