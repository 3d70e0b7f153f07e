package storageclient

import (
	"bytes"
	"testing"

	"github.com/tarnfs/tarn/host/storageserver"
	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
)

func TestDiskBackendSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	var b *storagedisk.Disk
	open := func() *testServer {
		var err error
		b, err = storagedisk.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return startServer(t, storageserver.Config{Backend: b, LeasePath: dir + "/leases.db"}, false)
	}
	ts := open()
	c := ts.dial(t, ts.secret, Options{})
	ctx := testCtx(t)
	index := randIndex()
	data := randBytes(3<<20 + 17)
	upload(t, c, index, map[uint32][]byte{0: data, 5: data}, randBytes(32))
	a, err := c.Allocate(ctx, index, []uint32{9}, 100, randBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Writers[9].WriteAt(ctx, randBytes(100), 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Writers[9].flush(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	ts.srv.Close()
	b.Close()

	// A new server over the same folder has the sealed shares, not the
	// unsealed one.
	ts2 := open()
	c2 := ts2.dial(t, ts2.secret, Options{})
	list, err := c2.List(ctx, index)
	if err != nil || len(list) != 2 || list[0].Num != 0 || list[1].Num != 5 {
		t.Fatalf("list after restart = %v, %v", list, err)
	}
	got, err := c2.Read(ctx, index, 5, 0, int64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after restart: %v", err)
	}
	if ls, _ := ts2.srv.Leases(index); len(ls) != 2 { // one per lease secret used
		t.Fatalf("leases after restart: %v", ls)
	}
}
