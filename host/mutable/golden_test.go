package mutable

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestGoldenShares pins the share bytes of a fixed version (write secret
// 0..31, salt 0..15, 2-of-3, reedsolomon): any change to the format,
// the key derivations or the tags changes them. Ed25519 signatures are
// deterministic, so the whole share is reproducible.
func TestGoldenShares(t *testing.T) {
	var w cap.MutableWrite
	for i := range w.Secret {
		w.Secret[i] = byte(i)
	}
	randRead = func(b []byte) (int, error) {
		for i := range b {
			b[i] = byte(i)
		}
		return len(b), nil
	}
	defer func() { randRead = rand.Read }()
	v, err := Encode(context.Background(), rs, w, 5, codec.Params{K: 2, N: 3}, []byte("tarn golden mutable content"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"4b45aa570c33213f9fdddbcd9be656198fb0092a857f16fc21f72e0122ac70a8",
		"5786584d97f3354b181cca8eeb8d2256f8212a7c7dc96e628bd6b36180ff4603",
		"ca75c3c687702540ed0fb5b6fac4ea262fb0c558dc4b328be22fc0ef7d012bcc",
	}
	for i, s := range v.Shares {
		sum := blake3.Sum256(s)
		if got := hex.EncodeToString(sum[:]); got != want[i] {
			t.Errorf("share %d (%d bytes) has BLAKE3 %s, want %s", i, len(s), got, want[i])
		}
		if err := ValidateSlotWrite(context.Background(), storage.Ref{Index: w.StorageIndex(), Num: uint32(i)}, nil, s); err != nil {
			t.Errorf("share %d: %v", i, err)
		}
	}
}
