package grid_test

import (
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestMutableRepairUnfinishedNewer: a writer killed mid-publish left its
// newer version on the lead slot only (fewer than K shares). Readers get
// the current version, but the slot is unhealthy, and servers refuse to
// put the older version back there. A repair with only the verify cap
// says so; with the write cap it publishes the current content again as a
// newer version everywhere, and the file is healthy with its content.
func TestMutableRepairUnfinishedNewer(t *testing.T) {
	g := mutGrid(t, 5)
	c := mutClient(t, g)
	w := create(t, c, []byte("v1"))
	if _, err := c.Overwrite(mctx(t), w, []byte("current v2")); err != nil {
		t.Fatal(err)
	}
	ctx := mctx(t)
	si := w.StorageIndex()
	ref0 := storage.Ref{Index: si, Num: 0}
	srv := holder(t, g, si, 0)
	_, tok, err := srv.Backend.ReadSlot(ctx, ref0)
	if err != nil {
		t.Fatal(err)
	}
	v3, err := mutable.Encode(ctx, codecreedsolomon.New(), w, 3, codec.Params{K: 3, N: 5}, []byte("never finished v3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialServer(t, g, srv).WriteSlot(ctx, ref0, tok, v3.Shares[0], make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	readMut(t, mutClient(t, g), w.ReadCap(), []byte("current v2"), 2)
	if mc, err := c.VerifyMutable(ctx, w.ReadCap().Verify()); err != nil || mc.Healthy {
		t.Fatalf("verify before repair: %+v, %v; want unhealthy", mc, err)
	}

	rep, err := mutClient(t, g).RepairMutable(ctx, w.ReadCap().Verify())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Republished != 0 || len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0], "holds newer version 3") {
		t.Fatalf("verify-cap repair: %+v; want share 0 named as holding version 3, nothing republished", rep)
	}

	rep, err = mutClient(t, g).RepairMutable(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Republished != 4 || len(rep.Failed) != 0 || len(rep.Written) != 5 {
		t.Fatalf("write-cap repair: %+v; want version 4 published to all 5 shares", rep)
	}
	mc, err := c.VerifyMutable(ctx, w.ReadCap().Verify())
	if err != nil || !mc.Healthy {
		t.Fatalf("verify after repair: %+v, %v; want healthy", mc, err)
	}
	readMut(t, mutClient(t, g), w.ReadCap(), []byte("current v2"), 4)
}
