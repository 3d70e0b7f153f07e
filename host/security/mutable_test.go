package security

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/sdk/storage"

	"github.com/tarnfs/tarn/host/grid"
)

// TestSlotsHoldNoKeys writes a mutable file with a plaintext marker and scans
// every slot on every server: no plaintext, write secret, write key, read key
// or signing key may be stored; the verify cap reads nothing.
func TestSlotsHoldNoKeys(t *testing.T) {
	g := testgrid.New(t, 5, &testgrid.Options{Server: func(_ int, cfg *storageserver.Config) {
		cfg.ValidateSlotWrite = mutable.ValidateSlotWrite
	}})
	c := newClient(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	marker := []byte("TARN-SECURITY-MUTABLE-MARKER-01!")
	w, err := c.CreateMutable(ctx, bytes.Repeat(marker, 200))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Overwrite(ctx, w, bytes.Repeat(marker, 300)); err != nil {
		t.Fatal(err)
	}
	wk, rk := w.WriteKey(), w.ReadCap().ReadKey
	secrets := map[string][]byte{
		"plaintext":    marker[:16],
		"write secret": w.Secret[:],
		"write key":    wk[:],
		"read key":     rk[:],
		"signing key":  w.SigningKey().Seed(),
	}
	si := w.StorageIndex()
	scanned := 0
	for _, s := range g.Servers {
		for num := 0; num < 5; num++ {
			b, _, err := s.Backend.ReadSlot(ctx, storage.Ref{Index: si, Num: uint32(num)})
			if err != nil {
				continue
			}
			scanned++
			for what, sec := range secrets {
				if bytes.Contains(b, sec) {
					t.Errorf("slot %d on server %s holds the %s", num, s.Addr, what)
				}
			}
		}
	}
	if scanned < 5 {
		t.Fatalf("scanned %d slots, want at least 5", scanned)
	}
	if _, _, err := c.ReadMutable(ctx, w.VerifyCap()); !errors.Is(err, grid.ErrNotReadable) {
		t.Fatalf("read of the verify cap: %v, want ErrNotReadable", err)
	}
}
