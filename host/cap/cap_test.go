package cap

import (
	"errors"
	"strings"
	"testing"
)

func sample() CHK {
	var c CHK
	for i := range c.Key {
		c.Key[i] = byte(i)
	}
	for i := range c.UEBHash {
		c.UEBHash[i] = byte(200 - i)
	}
	c.K, c.N, c.Size = 3, 10, 1<<30+7
	return c
}

func TestRoundTrip(t *testing.T) {
	c := sample()
	for _, tc := range []struct {
		name string
		cap  Cap
	}{
		{"chk", c},
		{"chk-verify", c.Verify()},
		{"chk 1 of 1 size 1", CHK{K: 1, N: 1, Size: 1}},
		{"chk 256 of 256", CHK{K: 256, N: 256, Size: MaxFileSize}},
		{"lit empty", Literal{Data: []byte{}}},
		{"lit 1", Literal{Data: []byte("x")}},
		{"lit max", Literal{Data: []byte(strings.Repeat("\xff", LiteralMax))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.cap.String()
			if !strings.HasPrefix(s, Prefix+tc.cap.Kind()+":") || s != strings.ToLower(s) {
				t.Fatalf("bad form %q", s)
			}
			got, err := Parse(" " + s + "\n")
			if err != nil {
				t.Fatalf("parse %q: %v", s, err)
			}
			if got.String() != s {
				t.Fatalf("round trip %q -> %q", s, got.String())
			}
		})
	}
	if n := len(Literal{Data: make([]byte, LiteralMax)}.String()); n >= len(c.String()) {
		t.Errorf("lit cap at the limit (%d chars) is not shorter than a chk cap (%d)", n, len(c.String()))
	}
}

func TestDiminish(t *testing.T) {
	c := sample()
	v, err := Diminish(c)
	if err != nil {
		t.Fatal(err)
	}
	vc := v.(CHKVerify)
	if vc.StorageIndex != c.StorageIndex() || vc.UEBHash != c.UEBHash || vc.K != 3 || vc.N != 10 || vc.Size != c.Size {
		t.Fatalf("verify cap %+v", vc)
	}
	if strings.Contains(vc.String(), enc.EncodeToString(c.Key[:])) {
		t.Fatal("verify cap shows the key")
	}
	if v2, _ := Diminish(vc); v2 != v {
		t.Fatal("verify cap does not diminish to itself")
	}
	if _, err := Diminish(Literal{}); !errors.Is(err, ErrNoVerify) {
		t.Fatalf("lit diminish: %v", err)
	}
	c2 := c
	c2.Key[0] ^= 1
	if c2.StorageIndex() == c.StorageIndex() {
		t.Fatal("storage index ignores key")
	}
}

func TestParseErrors(t *testing.T) {
	good := sample().String()
	f := strings.Split(good, ":")
	join := func(parts ...string) string { return strings.Join(parts, ":") }
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "does not start with"},
		{"other prefix", "URI:CHK:a:b:3:10:5", "does not start with"},
		{"no kind fields", "tarn:chk", "no fields"},
		{"unknown kind", join("tarn", "zzz", "aa"), "unknown kind"},
		{"upper kind", strings.Replace(good, "chk", "CHK", 1), "unknown kind"},
		{"too few", join(f[:6]...), "has 4 fields, want 5"},
		{"too many", good + ":1", "has 6 fields, want 5"},
		{"bad base32", join("tarn", "chk", "!!"+f[2][2:], f[3], f[4], f[5], f[6]), "read key: bad base32"},
		{"upper base32", join("tarn", "chk", strings.ToUpper(f[2]), f[3], f[4], f[5], f[6]), "bad base32"},
		{"short key", join("tarn", "chk", f[2][:50], f[3], f[4], f[5], f[6]), "read key"},
		{"short hash", join("tarn", "chk", f[2], f[3][:24], f[4], f[5], f[6]), "extension block hash is 15 bytes"},
		{"k>n", join("tarn", "chk", f[2], f[3], "11", "10", f[6]), "K=11 N=10"},
		{"k zero", join("tarn", "chk", f[2], f[3], "0", "10", f[6]), "K=0"},
		{"n too big", join("tarn", "chk", f[2], f[3], "3", "257", f[6]), "out of range"},
		{"leading zero", join("tarn", "chk", f[2], f[3], "03", "10", f[6]), "plain decimal"},
		{"sign", join("tarn", "chk", f[2], f[3], "+3", "10", f[6]), "plain decimal"},
		{"size not number", join("tarn", "chk", f[2], f[3], "3", "10", "1e9"), "out of range"},
		{"size zero", join("tarn", "chk", f[2], f[3], "3", "10", "0"), "empty file"},
		{"size huge", join("tarn", "chk", f[2], f[3], "3", "10", "99999999999999999999"), "out of range"},
		{"verify short si", join("tarn", "chk-verify", f[2], f[3], "3", "10", "100"), "storage index is 32 bytes, want 16"},
		{"lit too long", "tarn:lit:" + enc.EncodeToString(make([]byte, LiteralMax+1)), "longer than 55"},
		{"lit two fields", "tarn:lit:aa:bb", "has 2 fields"},
		{"lit stray bits", "tarn:lit:ab", "non-canonical"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("parse %q: no error", tc.in)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("parse %q: error %q, want it to contain %q", tc.in, err, tc.want)
			}
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrUnknownKind) {
				t.Fatalf("error %v is not a sentinel", err)
			}
		})
	}
}

func FuzzParseCap(f *testing.F) {
	c := sample()
	for _, s := range []string{c.String(), c.Verify().String(), "tarn:lit:", "tarn:lit:nbswy3dp", "tarn:chk:", "tarn:dir:x", "tarn::", ":"} {
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
		again, err := Parse(got.String())
		if err != nil || again.String() != got.String() {
			t.Fatalf("%q parses to %q which does not round-trip: %v", s, got.String(), err)
		}
		if strings.TrimSpace(s) != got.String() {
			t.Fatalf("%q accepted but prints as %q", s, got.String())
		}
	})
}

// TestGolden pins the printed form documented in docs/formats.md.
func TestGolden(t *testing.T) {
	c := sample()
	const read = "tarn:chk:aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq:zdd4nroeypbmdqf7x263zo52xg4lpnvvwsz3fmnqv6xk3lflvkuq:3:10:1073741831"
	const verify = "tarn:chk-verify:4fovmoiu2pyhnka2inb72ktthm:zdd4nroeypbmdqf7x263zo52xg4lpnvvwsz3fmnqv6xk3lflvkuq:3:10:1073741831"
	if c.String() != read || c.Verify().String() != verify {
		t.Fatalf("caps changed:\n%s\n%s", c, c.Verify())
	}
	if s := (Literal{Data: []byte("hello")}).String(); s != "tarn:lit:nbswy3dp" {
		t.Fatalf("lit cap %s", s)
	}
}
