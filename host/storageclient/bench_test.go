package storageclient

import (
	"testing"

	"github.com/tarnfs/tarn/host/storageserver"
)

// BenchmarkUploadRead moves one 16 MiB share through a real TLS link on
// loopback into a memory backend, in 128 KiB writes, and reads it back;
// MB/s counts the bytes of both directions.
func BenchmarkUploadRead(b *testing.B) {
	ts := startServer(b, storageserver.Config{}, false)
	c := ts.dial(b, ts.secret, Options{})
	ctx := b.Context()
	data := randBytes(16 << 20)
	b.SetBytes(2 * int64(len(data)))
	for b.Loop() {
		index := randIndex()
		a, err := c.Allocate(ctx, index, []uint32{0}, int64(len(data)), randBytes(32))
		if err != nil {
			b.Fatal(err)
		}
		w := a.Writers[0]
		for off := 0; off < len(data); off += 128 << 10 {
			if err := w.WriteAt(ctx, data[off:off+128<<10], int64(off)); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Seal(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(ctx, index, 0, 0, int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}
