package mutable_test

import (
	"context"
	"fmt"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/mutable"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/storage"
)

// A writer encodes version 1 of a slot; each share is what one server
// slot holds, and the server's check accepts it; a reader with only the
// read cap verifies K shares and decodes them.
func Example() {
	ctx := context.Background()
	rs := codecreedsolomon.New()
	w, _ := cap.NewMutableWrite()
	v, err := mutable.Encode(ctx, rs, w, 1, codec.Params{K: 2, N: 3}, []byte("hello, slot"))
	if err != nil {
		panic(err)
	}
	for i, b := range v.Shares {
		ref := storage.Ref{Index: w.StorageIndex(), Num: uint32(i)}
		if err := mutable.ValidateSlotWrite(ctx, ref, nil, b); err != nil {
			panic(err)
		}
	}

	rc := w.ReadCap() // what a reader holds
	var shares []*mutable.Share
	for _, b := range v.Shares[1:] {
		s, err := mutable.VerifyShare(rc.PublicKeyHash, b)
		if err != nil {
			panic(err)
		}
		shares = append(shares, s)
	}
	data, err := mutable.Decode(ctx, rs, rc, shares)
	fmt.Printf("version %d: %s %v\n", v.Header.Seq, data, err)
	// Output: version 1: hello, slot <nil>
}
