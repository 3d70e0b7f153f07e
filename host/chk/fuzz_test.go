package chk

import (
	"bytes"
	"context"
	"testing"
)

// FuzzShare feeds arbitrary bytes as share 0 of a real file: the decoder
// must still return the file from the other shares, never panic, and
// VerifyShare may accept share 0 only if it is byte-for-byte the original.
func FuzzShare(f *testing.F) {
	p := Params{K: 2, N: 4, SegmentSize: 256}
	data := content(5*256+3, 21)
	c, clean := encode(f, p, testKey(8), data)
	f.Add(clean.Shares[0])
	f.Add(clean.Shares[0][:HeaderSize+UEBSize])
	f.Add(clean.Shares[1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, share0 []byte) {
		m := &MemShares{Shares: [][]byte{share0, clean.Shares[1], clean.Shares[2], clean.Shares[3]}}
		got, _, err := decodeAll(t, c, m, &Options{TreePrefetch: int64(len(share0) % 3 * 1000)})
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("decode: %v", err)
		}
		if VerifyShare(context.Background(), c.Verify(), m, 0) == nil && !bytes.Equal(share0, clean.Shares[0]) {
			t.Fatal("verify accepted a share that differs from the original")
		}
	})
}
