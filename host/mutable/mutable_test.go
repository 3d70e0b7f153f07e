package mutable

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/storageserver"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/storage"
)

var rs = codecreedsolomon.New()

func pseudo(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newWrite(t testing.TB) cap.MutableWrite {
	t.Helper()
	w, err := cap.NewMutableWrite()
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func encode(t testing.TB, w cap.MutableWrite, seq uint64, p codec.Params, data []byte) *Version {
	t.Helper()
	v, err := Encode(context.Background(), rs, w, seq, p, data)
	if err != nil {
		t.Fatalf("encode %d bytes: %v", len(data), err)
	}
	return v
}

func verifyAll(t testing.TB, pkh [32]byte, v *Version) []*Share {
	t.Helper()
	var out []*Share
	for i, b := range v.Shares {
		s, err := VerifyShare(pkh, b)
		if err != nil {
			t.Fatalf("share %d: %v", i, err)
		}
		if len(b) > MaxSlotSize {
			t.Fatalf("share %d is %d bytes, over the slot limit", i, len(b))
		}
		out = append(out, s)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	p := codec.Params{K: 3, N: 10}
	for _, tc := range []struct {
		name string
		size int
		p    codec.Params
	}{
		{"empty", 0, p},
		{"one byte", 1, p},
		{"one block", 3, p},
		{"odd", 1001, p},
		{"100 KiB", 100 << 10, p},
		{"max 3-of-10", int(MaxSize(p)), p},
		{"max 1-of-1", int(MaxSize(codec.Params{K: 1, N: 1})), codec.Params{K: 1, N: 1}},
		{"3-of-5", 5000, codec.Params{K: 3, N: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWrite(t)
			data := pseudo(uint64(tc.size), tc.size)
			v := encode(t, w, 7, tc.p, data)
			shares := verifyAll(t, w.ReadCap().PublicKeyHash, v)
			// Every K-subset of a few kinds decodes: the first K, the last K.
			for _, sub := range [][]*Share{shares[:tc.p.K], shares[len(shares)-tc.p.K:]} {
				got, err := Decode(context.Background(), rs, w.ReadCap(), sub)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatal("decoded content differs")
				}
			}
			if tc.size > 16 && bytes.Contains(bytes.Join(v.Shares, nil), data[:16]) {
				t.Fatal("a share holds plaintext")
			}
			if v.Header.Seq != 7 || v.Header.Size != int64(tc.size) {
				t.Fatalf("header %+v", v.Header)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	if MaxSlotSize != storageserver.MaxSlotSize {
		t.Fatalf("MaxSlotSize %d, the storage server keeps %d", MaxSlotSize, storageserver.MaxSlotSize)
	}
	p := codec.Params{K: 3, N: 10}
	if got := MaxSize(p); got != 3144576 {
		t.Fatalf("MaxSize(3-of-10) = %d, docs say 3144576", got)
	}
	_, err := Encode(context.Background(), rs, newWrite(t), 1, p, make([]byte, MaxSize(p)+1))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	w := newWrite(t)
	p := codec.Params{K: 3, N: 5}
	v := encode(t, w, 1, p, pseudo(1, 4000))
	shares := verifyAll(t, w.ReadCap().PublicKeyHash, v)
	other := verifyAll(t, w.ReadCap().PublicKeyHash, encode(t, w, 2, p, pseudo(2, 4000)))
	for _, tc := range []struct {
		name   string
		shares []*Share
		want   error
		text   string
	}{
		{"none", nil, ErrNotEnoughShares, "no shares"},
		{"two of three", shares[:2], ErrNotEnoughShares, "2 distinct shares, 3 needed"},
		{"duplicates", []*Share{shares[0], shares[0], shares[1]}, ErrNotEnoughShares, "2 distinct"},
		{"mixed versions", []*Share{shares[0], other[1], shares[2]}, nil, "another version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(context.Background(), rs, w.ReadCap(), tc.shares)
			if err == nil || !strings.Contains(err.Error(), tc.text) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err %v, want %v containing %q", err, tc.want, tc.text)
			}
		})
	}
}

// TestCorruptionDetected flips each region of a share and checks that
// VerifyShare refuses it with the right class of error.
func TestCorruptionDetected(t *testing.T) {
	w := newWrite(t)
	pkh := w.ReadCap().PublicKeyHash
	v := encode(t, w, 3, codec.Params{K: 3, N: 5}, pseudo(3, 3000))
	b := v.Shares[2]
	for _, tc := range []struct {
		name string
		off  int
		want error
	}{
		{"magic", 0, ErrFormat},
		{"public key", 10, ErrBadSignature},
		{"header seq", 40 + 15, ErrBadSignature},
		{"header salt", 40 + 40, ErrBadSignature},
		{"header root", 40 + 90, ErrBadSignature},
		{"header reserved", 40 + 21, ErrFormat},
		{"signature", 40 + HeaderSize + 5, ErrBadSignature},
		{"share number", shareFixed - 7, ErrCorrupt},
		{"reserved", shareFixed - 5, ErrFormat},
		{"block size", shareFixed - 1, ErrFormat},
		{"proof", shareFixed + 3, ErrCorrupt},
		{"block", len(b) - 1, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := bytes.Clone(b)
			c[tc.off] ^= 0x01
			_, err := VerifyShare(pkh, c)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		if _, err := VerifyShare(pkh, b[:len(b)-1]); !errors.Is(err, ErrFormat) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("extended", func(t *testing.T) {
		if _, err := VerifyShare(pkh, append(bytes.Clone(b), 0)); !errors.Is(err, ErrFormat) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestValidateSlotWrite(t *testing.T) {
	ctx := context.Background()
	w := newWrite(t)
	si := w.StorageIndex()
	p := codec.Params{K: 2, N: 3}
	v1 := encode(t, w, 1, p, []byte("one"))
	v2 := encode(t, w, 2, p, []byte("two"))
	v2b := encode(t, w, 2, p, []byte("two, racing"))
	ref := func(n uint32) storage.Ref { return storage.Ref{Index: si, Num: n} }

	// A forger with only the read cap signs with a key of their own.
	forger := newWrite(t)
	forged := encode(t, forger, 9, p, []byte("forged"))
	// The forger's own shares, moved into the victim's slot, are refused
	// because the key does not own the index; re-signing the victim's
	// header with another key fails the signature.
	resigned, _ := ParseShare(v2.Shares[0])
	id := resigned.Header.ID()
	copy(resigned.Signature[:], ed25519.Sign(forger.SigningKey(), id[:]))
	// Changing the header of a real share without the key.
	bumped, _ := ParseShare(v1.Shares[0])
	bumped.Header.Seq = 99

	for _, tc := range []struct {
		name          string
		ref           storage.Ref
		current, next []byte
		ok            bool
		text          string
	}{
		{"new slot", ref(0), nil, v1.Shares[0], true, ""},
		{"newer version", ref(0), v1.Shares[0], v2.Shares[0], true, ""},
		{"same version again (repair)", ref(1), v2.Shares[1], v2.Shares[1], true, ""},
		{"over a corrupt value", ref(0), []byte("garbage"), v1.Shares[0], true, ""},
		{"older version", ref(0), v2.Shares[0], v1.Shares[0], false, "version 1 may not replace version 2"},
		{"same seq, other version", ref(0), v2.Shares[0], v2b.Shares[0], false, "version 2 may not replace version 2"},
		{"wrong slot number", ref(1), nil, v1.Shares[0], false, "share number 0 in slot 1"},
		{"other key's share", ref(0), v1.Shares[0], forged.Shares[0], false, "does not own this storage index"},
		{"re-signed by another key", ref(0), v1.Shares[0], resigned.Marshal(), false, "bad signature"},
		{"header changed without key", ref(0), v1.Shares[0], bumped.Marshal(), false, "bad signature"},
		{"not a share", ref(0), nil, []byte("hello"), false, "malformed"},
		{"empty", ref(0), nil, nil, false, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateSlotWrite(ctx, tc.ref, tc.current, tc.next)
			if tc.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.text)) {
				t.Fatalf("err %v, want ok=%v with %q", err, tc.ok, tc.text)
			}
		})
	}
	// The forger's key substituted while keeping the header and signature:
	// the public key's hash no longer owns the index.
	sw, _ := ParseShare(v2.Shares[0])
	sw.PublicKey = forger.PublicKey()
	if err := ValidateSlotWrite(ctx, ref(0), v1.Shares[0], sw.Marshal()); err == nil {
		t.Fatal("a share with a swapped public key was accepted")
	}
}

func TestSeenStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seen.db")
	f, err := OpenFileSeen(path)
	if err != nil {
		t.Fatal(err)
	}
	si := newWrite(t).StorageIndex()
	for name, s := range map[string]SeenStore{"memory": NewMemorySeen(), "file": f} {
		t.Run(name, func(t *testing.T) {
			for _, step := range []struct{ record, want uint64 }{{0, 0}, {5, 5}, {3, 5}, {9, 9}} {
				if step.record > 0 {
					if err := s.Record(si, step.record); err != nil {
						t.Fatal(err)
					}
				}
				if got, err := s.Seen(si); err != nil || got != step.want {
					t.Fatalf("after %d: seen %d, %v; want %d", step.record, got, err, step.want)
				}
			}
		})
	}
	f.Close()
	f, err = OpenFileSeen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := f.Seen(si); got != 9 {
		t.Fatalf("after reopening: seen %d, want 9", got)
	}
	// Recording a number not higher than the one on disk writes nothing
	// (every slot read records; a write transaction is an fdatasync); a
	// higher one is written.
	writes := func() int64 { st := f.db.Stats(); return st.TxStats.GetWrite() }
	before := writes()
	for _, seq := range []uint64{9, 4, 9, 1} {
		if err := f.Record(si, seq); err != nil {
			t.Fatal(err)
		}
	}
	if n := writes() - before; n != 0 {
		t.Fatalf("recording numbers not higher wrote %d pages", n)
	}
	if err := f.Record(si, 10); err != nil {
		t.Fatal(err)
	}
	if writes() == before {
		t.Fatal("recording a higher number wrote nothing")
	}
	if got, _ := f.Seen(si); got != 10 {
		t.Fatalf("seen %d, want 10", got)
	}
}

func TestRebuild(t *testing.T) {
	w := newWrite(t)
	p := codec.Params{K: 3, N: 7}
	v := encode(t, w, 4, p, pseudo(4, 20000))
	shares := verifyAll(t, w.ReadCap().PublicKeyHash, v)
	got, err := Rebuild(context.Background(), rs, []*Share{shares[6], shares[2], shares[4]})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if !bytes.Equal(got[i], v.Shares[i]) {
			t.Fatalf("rebuilt share %d differs from the original", i)
		}
	}
	if _, err := Rebuild(context.Background(), rs, shares[:2]); !errors.Is(err, ErrNotEnoughShares) {
		t.Fatalf("rebuild from 2 of 3: %v", err)
	}
}
