package mutable

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/storage"
)

func fuzzWrite() cap.MutableWrite {
	var w cap.MutableWrite
	for i := range w.Secret {
		w.Secret[i] = byte(i * 7)
	}
	return w
}

func FuzzParseHeader(f *testing.F) {
	v, err := Encode(context.Background(), rs, fuzzWrite(), 3, codec.Params{K: 3, N: 5}, []byte("fuzz seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v.Header.Marshal())
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if !bytes.Equal(h.Marshal(), b) {
			t.Fatal("accepted header does not marshal back to its bytes")
		}
	})
}

// FuzzShare feeds mutated shares to the parser, the verifier and the
// server's write check: none may panic, a parsed share marshals back to
// its bytes, and only the original bytes verify.
func FuzzShare(f *testing.F) {
	w := fuzzWrite()
	pkh := w.ReadCap().PublicKeyHash
	// Fuzz workers are other processes: give them the same salt.
	randRead = func(b []byte) (int, error) { clear(b); return len(b), nil }
	defer func() { randRead = rand.Read }()
	v, err := Encode(context.Background(), rs, w, 3, codec.Params{K: 3, N: 5}, []byte("fuzz seed content"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range v.Shares {
		f.Add(s)
	}
	f.Add([]byte(shareMagic))
	valid := map[string]bool{}
	for _, s := range v.Shares {
		valid[string(s)] = true
	}
	ref := storage.Ref{Index: w.StorageIndex(), Num: 1}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseShare(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatal("accepted share does not marshal back to its bytes")
		}
		if s.Verify(pkh) == nil && !valid[string(b)] {
			t.Fatal("altered share verified")
		}
		if ValidateSlotWrite(context.Background(), ref, v.Shares[1], b) == nil && !bytes.Equal(b, v.Shares[1]) {
			t.Fatal("server check accepted an altered share")
		}
	})
}

// FuzzValidateSlotWrite fuzzes both the value a slot holds and the one
// written over it: the check never panics, and whatever it accepts is a
// valid share of the slot that does not go back from a valid current one.
func FuzzValidateSlotWrite(f *testing.F) {
	w := fuzzWrite()
	pkh := w.ReadCap().PublicKeyHash
	randRead = func(b []byte) (int, error) { clear(b); return len(b), nil }
	defer func() { randRead = rand.Read }()
	p := codec.Params{K: 2, N: 3}
	v1, err1 := Encode(context.Background(), rs, w, 1, p, []byte("one"))
	v2, err2 := Encode(context.Background(), rs, w, 2, p, []byte("two"))
	if err1 != nil || err2 != nil {
		f.Fatal(err1, err2)
	}
	f.Add(v1.Shares[0], v2.Shares[0])
	f.Add(v2.Shares[0], v1.Shares[0])
	f.Add([]byte(nil), v1.Shares[0])
	f.Add([]byte("x"), v2.Shares[0])
	ref := storage.Ref{Index: w.StorageIndex(), Num: 0}
	f.Fuzz(func(t *testing.T, current, next []byte) {
		if len(current) == 0 {
			current = nil
		}
		if ValidateSlotWrite(context.Background(), ref, current, next) != nil {
			return
		}
		n, err := VerifyShare(pkh, next)
		if err != nil || n.Num != 0 {
			t.Fatalf("accepted a share that does not verify for slot 0: %v", err)
		}
		if c, err := VerifyShare(pkh, current); err == nil && n.Header.Seq < c.Header.Seq {
			t.Fatalf("accepted version %d over version %d", n.Header.Seq, c.Header.Seq)
		}
	})
}
