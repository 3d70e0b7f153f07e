package grid_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
)

// announced is a server list whose announced free space a test sets per
// server (by grid index): announced full (0) or roomy (1 TiB), live.
type announced struct {
	g    *countedGrid
	mu   sync.Mutex
	full map[int]bool
}

func (a *announced) set(full ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.full = map[int]bool{}
	for _, i := range full {
		a.full[i] = true
	}
}

func (a *announced) Servers() []grid.Server {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.g.Source()
	for i := range out {
		out[i].FreeSpace, out[i].SpaceKnown = 1<<40, true
		if a.full[i] {
			out[i].FreeSpace = 0
		}
	}
	return out
}

// storageIndexOf is the storage index a test client's upload of data
// gets (convergent key), known before the upload.
func storageIndexOf(t *testing.T, data []byte) cap.StorageIndex {
	t.Helper()
	info, err := codecreedsolomon.New().Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := chk.ConvergentKey([]byte("test convergence secret"), chk.Params{K: 3, N: 5, SegmentSize: seg}, info.Name, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return cap.StorageIndexOf(key)
}

// TestSmallDownloadPredictsRoomSkip: a small file uploaded while a server
// was announced full (left out by the upload) is read without a locate
// (no list_shares, K read_share calls): the prediction leaves out the
// same servers. Here the full server is the file's first on the ring,
// where the prediction would otherwise look for share 0. When the
// announcements changed between the upload and the download (full now and
// not then, or the other way), the prediction misses and the locate
// returns the right bytes.
func TestSmallDownloadPredictsRoomSkip(t *testing.T) {
	cases := []struct {
		name string
		// warm: connect every server first (an upload with no server
		// full), so the file takes the one-call path; else the survey.
		warm bool
		// atUpload and atDownload: ring positions of the file announced
		// full at its upload and at its download.
		atUpload, atDownload []int
		locate               bool // the download must locate
	}{
		{name: "full at both, survey path", atUpload: []int{0}, atDownload: []int{0}},
		{name: "full at both, one-call path", warm: true, atUpload: []int{0}, atDownload: []int{0}},
		{name: "second on the ring full at both", warm: true, atUpload: []int{1}, atDownload: []int{1}},
		// 5 servers, H=4: two full cannot both be left out; the upload
		// asks them (they have room), and the prediction knows it.
		{name: "too many full to skip", warm: true, atUpload: []int{0, 1}, atDownload: []int{0, 1}},
		{name: "full now, not at upload", warm: true, atDownload: []int{0}, locate: true},
		{name: "full at upload, not now", warm: true, atUpload: []int{0}, locate: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newCountedGrid(t, 5)
			src := &announced{g: g}
			c, _ := newClient(t, g.Grid, func(cfg *grid.Config) { cfg.Servers = src })
			if tc.warm {
				upload(t, c, random(5000))
			}
			data := random(4096)
			si := storageIndexOf(t, data)
			ring := ringOrder(g.Grid, si)
			at := func(pos []int) []int {
				var out []int
				for _, p := range pos {
					out = append(out, ring[p])
				}
				return out
			}
			src.set(at(tc.atUpload)...)
			cp := chkOf(t, upload(t, c, data))
			if cp.StorageIndex() != si {
				t.Fatalf("storage index %s, computed %s", cp.StorageIndex(), si)
			}
			if len(tc.atUpload) == 1 {
				for sh, srvs := range g.Holders(si) {
					for _, s := range srvs {
						if s == ring[tc.atUpload[0]] {
							t.Fatalf("share %d landed on server %d, announced full", sh, s)
						}
					}
				}
			}
			src.set(at(tc.atDownload)...)
			// A right prediction reads K shares and no list_shares, but
			// the locate also starts when the predicted reads take over
			// the hedge delay (100 ms; a loaded machine): up to three
			// downloads, one without a locate is enough. A wrong
			// prediction misses every time.
			var got [][2]int64
			for try := 0; try < 3; try++ {
				lists0, reads0 := g.calls()
				download(t, c, cp, data)
				lists, reads := g.calls()
				got = append(got, [2]int64{lists - lists0, reads - reads0})
				if tc.locate || (lists == lists0 && reads-reads0 == 3) {
					break
				}
			}
			t.Logf("list_shares, read_share per download: %v", got)
			last := got[len(got)-1]
			switch {
			case tc.locate && last[0] == 0:
				t.Fatalf("no locate (%d read_share): the prediction cannot have been right", last[1])
			case !tc.locate && (last[0] != 0 || last[1] != 3):
				t.Fatalf("list_shares and read_share calls per download %v, want 0 and 3 (no locate) once", got)
			}
		})
	}
}
