package grid_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// askedBackend counts the backend calls a storage server makes for
// clients' requests (space checks of version and put, creates, lists,
// reads, slot reads and writes): zero means no request reached it.
type askedBackend struct {
	storage.Backend
	n atomic.Int64
}

func (b *askedBackend) Space(ctx context.Context) (storage.Space, error) {
	b.n.Add(1)
	return b.Backend.Space(ctx)
}

func (b *askedBackend) Create(ctx context.Context, ref storage.Ref, size int64) (storage.Writer, error) {
	b.n.Add(1)
	return b.Backend.Create(ctx, ref, size)
}

func (b *askedBackend) List(ctx context.Context, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	b.n.Add(1)
	return b.Backend.List(ctx, index)
}

func (b *askedBackend) ReadAt(ctx context.Context, ref storage.Ref, p []byte, off int64) (int, error) {
	b.n.Add(1)
	return b.Backend.ReadAt(ctx, ref, p, off)
}

func (b *askedBackend) ReadSlot(ctx context.Context, ref storage.Ref) ([]byte, string, error) {
	b.n.Add(1)
	return b.Backend.ReadSlot(ctx, ref)
}

func (b *askedBackend) WriteSlot(ctx context.Context, ref storage.Ref, expect string, value []byte) (string, error) {
	b.n.Add(1)
	return b.Backend.WriteSlot(ctx, ref, expect, value)
}

func (b *askedBackend) ListSlots(ctx context.Context, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	b.n.Add(1)
	return b.Backend.ListSlots(ctx, index)
}

// TestUploadSkipsServersAnnouncedFull: a server whose announced free
// space is known to be too small for a share (0: FULL, or below the share
// size) gets no request from uploads (general path, one-call path) or a
// new mutable file, while the others can be happy; when they cannot, the
// full ones are asked anyway; a server of unknown space is used.
func TestUploadSkipsServersAnnouncedFull(t *testing.T) {
	const tiny = 1 << 10 // a really full server: no share of these files fits
	cases := []struct {
		name  string
		full  map[int]uint64 // server -> announced free space
		limit map[int]int64  // server -> backend size, if not the default
		known bool           // the announcements are live (SpaceKnown)
		// asked: whether the servers in full get requests.
		asked bool
	}{
		{name: "one announced full", full: map[int]uint64{2: 0}, limit: map[int]int64{2: tiny}, known: true},
		{name: "one below the share size", full: map[int]uint64{1: 4 << 10}, limit: map[int]int64{1: tiny}, known: true},
		// 5 servers, H=4: leaving two out would leave 3, so they are
		// asked (the announcement may be stale: here they have room).
		{name: "too many full to skip", full: map[int]uint64{0: 0, 3: 0}, known: true, asked: true},
		{name: "unknown space is room", full: map[int]uint64{4: 0}, known: false, asked: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			counters := make([]*askedBackend, 5)
			g := testgrid.New(t, 5, &testgrid.Options{Backend: func(i int) (storage.Backend, error) {
				limit := int64(storagememory.DefaultLimit)
				if l, ok := tc.limit[i]; ok {
					limit = l
				}
				counters[i] = &askedBackend{Backend: storagememory.NewLimit(limit)}
				return counters[i], nil
			}})
			src := grid.ServerFunc(func() []grid.Server {
				out := g.Source()
				for i := range out {
					if free, ok := tc.full[i]; ok {
						out[i].FreeSpace, out[i].SpaceKnown = free, tc.known
					} else {
						out[i].FreeSpace, out[i].SpaceKnown = 1<<40, tc.known
					}
				}
				return out
			})
			c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.Servers = src })
			// writes counts the requests each server got from uploads and
			// the mutable file's creation (downloads and reads ask every
			// server: not counted).
			writes := make([]int64, len(counters))
			counted := func(f func()) {
				before := make([]int64, len(counters))
				for i, b := range counters {
					before[i] = b.n.Load()
				}
				f()
				for i, b := range counters {
					writes[i] += b.n.Load() - before[i]
				}
			}
			// A multi-segment file (general path), then small files: the
			// first connects every server it uses, the next take the
			// one-call path.
			files := [][]byte{random(3 * seg), random(20 << 10), random(20 << 10), random(20 << 10)}
			for _, data := range files {
				var cp cap.Cap
				counted(func() { cp = upload(t, c, data) })
				for sh, srvs := range g.Holders(chkOf(t, cp).StorageIndex()) {
					for _, s := range srvs {
						if _, full := tc.full[s]; full && !tc.asked {
							t.Errorf("share %d of a %d-byte file landed on server %d, announced full", sh, len(data), s)
						}
					}
				}
				download(t, c, cp, data)
			}
			// A directory of 16 KiB: its shares (about 6 KiB) do not fit
			// the server announcing 4 KiB either.
			dir := random(16 << 10)
			var w cap.MutableWrite
			counted(func() {
				var err error
				if w, err = c.CreateMutable(ctxFor(t, 30*time.Second), dir); err != nil {
					t.Fatalf("create mutable file: %v", err)
				}
			})
			got, _, err := c.ReadMutable(ctxFor(t, 30*time.Second), w)
			if err != nil || !bytes.Equal(got, dir) {
				t.Fatalf("read mutable file: %d bytes, %v", len(got), err)
			}
			asked := false
			for i := range tc.full {
				n := writes[i]
				if n > 0 {
					asked = true
				}
				if !tc.asked && n > 0 {
					t.Errorf("server %d, announced full, got %d requests", i, n)
				}
			}
			if tc.asked && !asked {
				t.Errorf("servers %v got no request; they should have been asked", tc.full)
			}
		})
	}
}
