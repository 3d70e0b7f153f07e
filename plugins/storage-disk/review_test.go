package storagedisk

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/sdk/storage"
)

// TestPackTornRecordHidesForgedTombstone: a share's bytes come from a
// client and may hold a sound tombstone naming another share. When that
// share's append is torn (its header sound, its data cut short by the end
// of the pack), the scan at open cuts the pack at the torn record's
// header: it does not look for records inside the torn data, so the
// forged tombstone never deletes the other, acknowledged share.
func TestPackTornRecordHidesForgedTombstone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	victim, attacker := packRef(1), packRef(2)
	if err := d.Put(ctx, victim, packData(1, 1000)); err != nil {
		t.Fatal(err)
	}
	forged := make([]byte, recHeaderLen)
	encodeHeader(forged, recKindDelete, victim, nil)
	data := append(append(make([]byte, 500), forged...), make([]byte, 500)...)
	if err := d.Put(ctx, attacker, data); err != nil {
		t.Fatal(err)
	}
	d.Close()
	// The attacker's append as a crash may leave it: its header and the
	// first 600 bytes of its data (the forged tombstone among them).
	pack := packFiles(t, dir)[0]
	sound := int64(recHeaderLen + 1000)
	if err := os.Truncate(pack, sound+recHeaderLen+600); err != nil {
		t.Fatal(err)
	}
	logged := catchPackLogs(t)
	d2 := newDisk(t, dir)
	mustRead(t, d2, victim, packData(1, 1000))
	if _, err := d2.Stat(ctx, attacker); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the torn share: %v, want ErrNotFound", err)
	}
	if st, err := os.Stat(pack); err != nil || st.Size() != sound {
		t.Errorf("pack after the cut: %v, %v; want %d bytes", st.Size(), err, sound)
	}
	if l := logged(); len(l) != 1 || !strings.Contains(l[0], "torn tail") {
		t.Errorf("logged %q, want one torn tail line", l)
	}
}
