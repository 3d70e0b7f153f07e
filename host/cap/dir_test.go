package cap

import (
	"errors"
	"strings"
	"testing"
)

func TestDirCaps(t *testing.T) {
	w, err := NewDirWrite()
	if err != nil {
		t.Fatal(err)
	}
	r := w.ReadCap()
	v := r.Verify()
	for _, tc := range []struct {
		name string
		c    Cap
		kind string
		slot string
	}{
		{"write", w, KindDir, w.Slot.String()},
		{"read", r, KindDirRead, w.Slot.ReadCap().String()},
		{"verify", v, KindDirVerify, w.Slot.ReadCap().Verify().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.c.String()
			if !strings.HasPrefix(s, Prefix+tc.kind+":") || tc.c.Kind() != tc.kind {
				t.Fatalf("%s cap %q has kind %q", tc.name, s, tc.c.Kind())
			}
			// Same fields as the slot cap, kind renamed.
			if _, sf, _ := strings.Cut(strings.TrimPrefix(tc.slot, Prefix), ":"); !strings.HasSuffix(s, ":"+sf) {
				t.Fatalf("dir cap %q does not carry the slot fields of %q", s, tc.slot)
			}
			back, err := Parse(s)
			if err != nil || back != tc.c {
				t.Fatalf("Parse(%q) = %v, %v", s, back, err)
			}
			d, err := Diminish(tc.c)
			if err != nil || d != v {
				t.Fatalf("Diminish(%s) = %v, %v; want %v", tc.name, d, err, v)
			}
		})
	}
	if ro, err := ReadOnly(w); err != nil || ro != r {
		t.Fatalf("ReadOnly(write) = %v, %v", ro, err)
	}
	if ro, err := ReadOnly(r); err != nil || ro != r {
		t.Fatalf("ReadOnly(read) = %v, %v", ro, err)
	}
	if _, err := ReadOnly(v); !errors.Is(err, ErrNoRead) {
		t.Fatalf("ReadOnly(verify) = %v", err)
	}
	for _, bad := range []string{
		"tarn:dir:", "tarn:dir:abc", w.String() + ":x", r.String() + ":",
		"tarn:dir-ro:" + strings.Repeat("a", 52), "tarn:dir-verify:" + strings.ToUpper(v.String()[16:]),
	} {
		if c, err := Parse(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, %v; want ErrSyntax", bad, c, err)
		}
	}
}

func FuzzParseDirCap(f *testing.F) {
	w, _ := NewDirWrite()
	for _, s := range []string{w.String(), w.ReadCap().String(), w.ReadCap().Verify().String(), "tarn:dir:", "tarn:dir-ro::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			return
		}
		if strings.TrimSpace(s) != got.String() {
			t.Fatalf("%q accepted but prints as %q", s, got.String())
		}
		if _, err := Diminish(got); err != nil && !errors.Is(err, ErrNoVerify) {
			t.Fatalf("diminish %q: %v", s, err)
		}
	})
}

func TestDirGolden(t *testing.T) {
	w := DirWrite{Slot: sampleMutable()}
	const (
		write  = "tarn:dir:aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq"
		read   = "tarn:dir-ro:asqndpdugddx6w23lwdthqsigoknsy3xl3ptv2f3iydjoe4fdgga:zeepy3ugri4xrv27augj7j2utiolnikyte22kwsy2ijjehmb7x2q"
		verify = "tarn:dir-verify:zeepy3ugri4xrv27augj7j2utiolnikyte22kwsy2ijjehmb7x2q"
	)
	if w.String() != write || w.ReadCap().String() != read || w.ReadCap().Verify().String() != verify {
		t.Fatalf("caps changed:\n%s\n%s\n%s", w, w.ReadCap(), w.ReadCap().Verify())
	}
}
