package cap

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

func sampleMutable() MutableWrite {
	var w MutableWrite
	for i := range w.Secret {
		w.Secret[i] = byte(i)
	}
	return w
}

func TestMutableRoundTrip(t *testing.T) {
	w := sampleMutable()
	r := w.ReadCap()
	v := r.Verify()
	for _, tc := range []struct {
		name string
		c    Cap
	}{
		{"write", w},
		{"read", r},
		{"verify", v},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(" " + tc.c.String() + "\n")
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.c {
				t.Fatalf("parsed %v, want %v", got, tc.c)
			}
			if !strings.HasPrefix(tc.c.String(), "tarn:mut") {
				t.Fatalf("cap %s lacks the tarn:mut prefix", tc.c)
			}
		})
	}
}

func TestMutableDiminish(t *testing.T) {
	w := sampleMutable()
	r := w.ReadCap()
	for _, tc := range []struct {
		name string
		c    Cap
	}{{"write", w}, {"read", r}, {"verify", r.Verify()}} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Diminish(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if d != Cap(r.Verify()) {
				t.Fatalf("diminished to %v, want %v", d, r.Verify())
			}
		})
	}
	if r.PublicKeyHash != PublicKeyHashOf(w.PublicKey()) {
		t.Fatal("read cap's public key hash is not the hash of the write cap's public key")
	}
	if w.StorageIndex() != r.StorageIndex() || r.StorageIndex() != r.Verify().StorageIndex() {
		t.Fatal("storage index differs between the forms of one cap")
	}
	if wk := w.WriteKey(); wk == r.ReadKey {
		t.Fatal("write key equals read key")
	}
	msg := []byte("m")
	if !ed25519.Verify(w.PublicKey(), msg, ed25519.Sign(w.SigningKey(), msg)) {
		t.Fatal("signing key does not match public key")
	}
	other, err := NewMutableWrite()
	if err != nil {
		t.Fatal(err)
	}
	if other.StorageIndex() == w.StorageIndex() || other.ReadCap() == r {
		t.Fatal("two fresh write caps share an index or read cap")
	}
}

func TestMutableParseErrors(t *testing.T) {
	w := sampleMutable().String()
	r := sampleMutable().ReadCap().String()
	for _, tc := range []struct {
		name, in, want string
	}{
		{"write no field", "tarn:mut:", "write secret"},
		{"write two fields", w + ":aa", "has 2 fields, want 1"},
		{"write short", "tarn:mut:aaaa", "write secret is 2 bytes, want 32"},
		{"write upper", strings.ToUpper(w[:9]) + w[9:], "does not start"},
		{"write bad base32", w[:len(w)-1] + "1", "bad base32"},
		{"read one field", "tarn:mut-ro:" + strings.Split(r, ":")[2], "has 1 fields, want 2"},
		{"read short hash", r[:len(r)-2], "public key hash"},
		{"verify empty", "tarn:mut-verify:", "public key hash"},
		{"unknown", "tarn:mut-rw:aa", "unknown kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) = %v, want an error containing %q", tc.in, err, tc.want)
			}
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrUnknownKind) {
				t.Fatalf("error %v is neither ErrSyntax nor ErrUnknownKind", err)
			}
		})
	}
}

// TestMutableGolden pins the printed forms documented in docs/formats.md.
func TestMutableGolden(t *testing.T) {
	w := sampleMutable()
	const (
		write  = "tarn:mut:aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq"
		read   = "tarn:mut-ro:asqndpdugddx6w23lwdthqsigoknsy3xl3ptv2f3iydjoe4fdgga:zeepy3ugri4xrv27augj7j2utiolnikyte22kwsy2ijjehmb7x2q"
		verify = "tarn:mut-verify:zeepy3ugri4xrv27augj7j2utiolnikyte22kwsy2ijjehmb7x2q"
	)
	if w.String() != write || w.ReadCap().String() != read || w.ReadCap().Verify().String() != verify {
		t.Fatalf("caps changed:\n%s\n%s\n%s", w, w.ReadCap(), w.ReadCap().Verify())
	}
}

func FuzzParseMutableCap(f *testing.F) {
	w := sampleMutable()
	for _, s := range []string{w.String(), w.ReadCap().String(), w.ReadCap().Verify().String(), "tarn:mut:", "tarn:mut-ro::", "tarn:mut-verify:a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if got.String() != strings.TrimSpace(s) {
			t.Fatalf("%q accepted but prints as %q", s, got.String())
		}
		if _, err := Diminish(got); err != nil && got.Kind() != KindLiteral {
			t.Fatalf("%s does not diminish: %v", got, err)
		}
	})
}
