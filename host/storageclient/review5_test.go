package storageclient

import (
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/storageserver"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
)

// TestReview5BatchOfManySmallShares: puts within the protocol's limits
// (each at most 256 shares, all of them together at most 1 MiB of share
// data, at most 64 puts) that wait behind a call in flight are stored,
// however many shares they carry: the batch they go in must fit the
// server's message limit (1 MiB of data + 64 KiB), which a batch of
// many small shares' framing passes (a grid of many shares per server:
// N 255 over few servers).
func TestReview5BatchOfManySmallShares(t *testing.T) {
	ctx := testCtx(t)
	ts := startServer(t, storageserver.Config{Backend: slowBackend{storagememory.New(), 20 * time.Millisecond}}, false)
	c := ts.dial(t, ts.secret, Options{})
	const shares, size = 255, 64
	put := func() error {
		m := map[uint32][]byte{}
		for n := range uint32(shares) {
			m[n] = randBytes(size)
		}
		_, err := c.PutSharesGrouped(ctx, randIndex(), size, m, randBytes(32))
		return err
	}
	first := make(chan error, 1)
	go func() { first <- put() }()
	time.Sleep(5 * time.Millisecond) // in flight: the next ones queue
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- put() }()
	}
	wg.Wait()
	close(errs)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for err := range errs {
		if err != nil {
			t.Fatalf("a put of %d shares of %d bytes behind a call in flight: %v", shares, size, err)
		}
	}
	calls, puts := c.PutBatches()
	t.Logf("%d batches carried %d puts", calls, puts)
}
