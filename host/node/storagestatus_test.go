//go:build linux

package node_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/introducer"
	"github.com/tarnfs/tarn/host/node"
)

// apiOf is a client of node n's own API.
func apiOf(t *testing.T, n *node.Node) *api.Client {
	t.Helper()
	in := n.Info()
	tok, err := node.ReadToken(in.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return &api.Client{BaseURL: in.APIURL, Token: tok}
}

// storageCounted waits for a storage node's start count and returns its
// storage status.
func storageCounted(t *testing.T, n *node.Node) *api.StorageStatus {
	t.Helper()
	c := apiOf(t, n)
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if s := st.Storage; s != nil && !s.HeldCounting {
			if s.HeldError != "" {
				t.Fatalf("count: %s", s.HeldError)
			}
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("storage status still counting: %+v", st.Storage)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStorageStatusSharesHeld: a storage node's status says the shares it
// holds and their bytes, not only those sealed since start, and says the
// same after a restart (counted from its backend).
func TestStorageStatusSharesHeld(t *testing.T) {
	g := newGrid(t, 3, io.Discard)
	ctx := context.Background()
	for range 2 {
		data := randomBytes(3*segSize + 7)
		if _, err := g.api.Put(ctx, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	before := storageCounted(t, g.storage[0])
	// N=3 shares of each file on 3 servers: one each.
	if before.SharesHeld != 2 || before.SharesSealed != 2 || before.BytesHeld < 3*segSize {
		t.Fatalf("before restart: %d shares held (%d bytes), %d sealed; want 2 held of at least %d bytes, 2 sealed",
			before.SharesHeld, before.BytesHeld, before.SharesSealed, 3*segSize)
	}
	g.storage[0].Stop()
	n := startNode(t, g.dirs["storage-1"], io.Discard)
	after := storageCounted(t, n)
	if after.SharesHeld != before.SharesHeld || after.BytesHeld != before.BytesHeld || after.SharesSealed != 0 {
		t.Fatalf("after restart: %d shares held (%d bytes), %d sealed since start; want %d (%d bytes), 0",
			after.SharesHeld, after.BytesHeld, after.SharesSealed, before.SharesHeld, before.BytesHeld)
	}
}

// nearlyFullGrid is a grid whose storage-1 has 1 GiB free above its
// reserve (set from the disk's free space now); fill takes 4 GiB of that
// disk, as another program would (blocks allocated, nothing written), and
// seen is storage-1 as the client sees it.
func nearlyFullGrid(t *testing.T) (g *testGrid, fill func(), seen func() introducer.Server) {
	root := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	const margin, size = 1 << 30, 4 << 30
	if avail < size+margin+(1<<30) {
		t.Skipf("%d bytes free on the test's disk; the test fills 4 GiB", avail)
	}
	g = newGridWith(t, 3, io.Discard, func(i int, p *conf.Profile) {
		if i == 1 {
			p.Storage.ReservedSpace = conf.Size(avail - margin)
		}
	})
	id := g.storage[0].Info().NodeID
	seen = func() introducer.Server {
		for _, s := range g.client.Servers() {
			if s.NodeID == id {
				return s
			}
		}
		t.Fatalf("client does not know %s", id)
		return introducer.Server{}
	}
	if f := seen().FreeSpace; f == 0 {
		t.Fatalf("storage-1 announced full before the disk filled")
	}
	fill = func() {
		f, err := os.Create(filepath.Join(root, "filler"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				t.Skip("the test's file system cannot preallocate")
			}
			t.Fatal(err)
		}
	}
	return g, fill, seen
}

// waitFull waits until the client sees storage-1 full.
func waitFull(t *testing.T, seen func() introducer.Server, start time.Time, within time.Duration) {
	t.Helper()
	for seen().FreeSpace != 0 {
		if time.Since(start) > within {
			t.Fatalf("client still sees %d bytes free on storage-1 %s after it filled", seen().FreeSpace, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("seen full %s after the disk filled", time.Since(start).Round(time.Millisecond))
}

// TestStorageFullSeenSoon: a storage node whose disk fills past its
// reserve (another program's file here) tells the next uploader it has no
// room and re-announces itself at once: every client sees it full within
// seconds, not at the next 10-minute announcement.
func TestStorageFullSeenSoon(t *testing.T) {
	g, fill, seen := nearlyFullGrid(t)
	fill()
	start := time.Now()
	data := randomBytes(3*segSize + 1)
	// The upload fails: storage-1 answers it has no room, and H=3 needs
	// all three.
	if _, err := g.api.Put(context.Background(), bytes.NewReader(data), int64(len(data))); err == nil {
		t.Fatal("upload with storage-1 full succeeded")
	}
	waitFull(t, seen, start, 10*time.Second)
}

// TestStorageFullSeenWithoutUploads: with no upload to turn away, the
// storage node's periodic read of its free space (every 200 ms here, 20 s
// by default) finds it full and re-announces.
func TestStorageFullSeenWithoutUploads(t *testing.T) {
	g, fill, seen := nearlyFullGrid(t)
	// storage-1 again, reading its free space often.
	before := seen().Sequence
	g.storage[0].Stop()
	lg := hclog.New(&hclog.LoggerOptions{Name: "storage-1", Level: hclog.Info, Output: io.Discard})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, g.dirs["storage-1"], node.Options{Logger: lg, SpaceCheckEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	// Its first announcement since the restart (with room) reached the
	// client: only the periodic read can tell it full now.
	deadline := time.Now().Add(10 * time.Second)
	for s := seen(); s.Sequence == before || s.FreeSpace == 0; s = seen() {
		if time.Now().After(deadline) {
			t.Fatalf("restarted storage-1 not announced with room: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fill()
	waitFull(t, seen, time.Now(), 5*time.Second)
}
