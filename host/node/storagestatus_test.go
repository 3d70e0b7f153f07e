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

	"golang.org/x/sys/unix"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/api"
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

// TestStorageFullSeenSoon: a storage node whose disk fills past its
// reserve (another program's file here) tells the next uploader it has no
// room and re-announces itself at once: every client sees it full within
// seconds, not at the next 10-minute announcement.
func TestStorageFullSeenSoon(t *testing.T) {
	root := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * st.Bsize
	const margin, fill = 1 << 30, 4 << 30
	if avail < fill+margin+(1<<30) {
		t.Skipf("%d bytes free on the test's disk; the test fills 4 GiB", avail)
	}
	g := newGridWith(t, 3, io.Discard, func(i int, p *conf.Profile) {
		if i == 1 {
			p.Storage.ReservedSpace = conf.Size(avail - margin)
		}
	})
	full := g.storage[0].Info().NodeID
	freeSeen := func() uint64 {
		for _, s := range g.client.Servers() {
			if s.NodeID == full {
				return s.FreeSpace
			}
		}
		t.Fatalf("client does not know %s", full)
		return 0
	}
	if f := freeSeen(); f == 0 {
		t.Fatalf("storage-1 announced full before the disk filled")
	}

	// Another program takes 4 GiB of the disk (blocks allocated, nothing
	// written).
	f, err := os.Create(filepath.Join(root, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, fill); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			t.Skip("the test's file system cannot preallocate")
		}
		t.Fatal(err)
	}
	start := time.Now()
	data := randomBytes(3*segSize + 1)
	// The upload fails: storage-1 answers it has no room, and H=3 needs
	// all three.
	if _, err := g.api.Put(context.Background(), bytes.NewReader(data), int64(len(data))); err == nil {
		t.Fatal("upload with storage-1 full succeeded")
	}
	for freeSeen() != 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("client still sees %d bytes free on storage-1 %s after it filled", freeSeen(), time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("seen full %s after the disk filled", time.Since(start).Round(time.Millisecond))
}
