package nodelink

import (
	"errors"
	"strings"
	"testing"
)

const testPin = "ryw3eydjxgqzb6bqd7nuwxbfsvyvb2mo6ypeh7vfbrxmu3qiz2nq"

func TestParseAddr(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // canonical String(), "" when an error is expected
		nTrans  int
		errPart string
	}{
		{"one tcp", "tarn://" + testPin + "@tcp:127.0.0.1:4410", "tarn://" + testPin + "@tcp:127.0.0.1:4410", 1, ""},
		{"two transports", "tarn://" + testPin + "@tcp:[::1]:1,tor:abc.onion:80", "tarn://" + testPin + "@tcp:[::1]:1,tor:abc.onion:80", 2, ""},
		{"upper case pin", "tarn://" + strings.ToUpper(testPin) + "@tcp:h:1", "tarn://" + testPin + "@tcp:h:1", 1, ""},
		{"padded pin", "tarn://" + testPin + "====@tcp:h:1", "tarn://" + testPin + "@tcp:h:1", 1, ""},
		{"no scheme", testPin + "@tcp:h:1", "", 0, "must start with"},
		{"no at", "tarn://" + testPin, "", 0, "missing '@'"},
		{"empty pin", "tarn://@tcp:h:1", "", 0, "empty key hash"},
		{"short pin", "tarn://abcd@tcp:h:1", "", 0, "bytes, want 32"},
		{"not base32", "tarn://" + strings.Repeat("1", 52) + "@tcp:h:1", "", 0, "not base32"},
		{"no transports", "tarn://" + testPin + "@", "", 0, "no transport address"},
		{"empty transport", "tarn://" + testPin + "@tcp:h:1,", "", 0, "transport address 2 is empty"},
		{"no transport scheme", "tarn://" + testPin + "@localhost", "", 0, "scheme:address"},
		{"empty after scheme", "tarn://" + testPin + "@tcp:", "", 0, "scheme:address"},
		{"space", "tarn://" + testPin + "@tcp:h 1", "", 0, "space"},
		{"second at", "tarn://" + testPin + "@tcp:a@b", "", 0, "'@'"},
		{"too long", "tarn://" + testPin + "@tcp:" + strings.Repeat("a", MaxAddrLen), "", 0, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAddr(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("ParseAddr(%q) = %v, want error", tc.in, a)
				}
				if !errors.Is(err, ErrBadAddr) || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("error %q: want ErrBadAddr containing %q", err, tc.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.String() != tc.want || len(a.Transports) != tc.nTrans {
				t.Fatalf("got %s (%d transports), want %s (%d)", a, len(a.Transports), tc.want, tc.nTrans)
			}
		})
	}
}

func TestKeyHashMatchesPinForm(t *testing.T) {
	c := newCert(t)
	kh := KeyHash(c.Leaf)
	if len(kh) != 52 || strings.ToLower(kh) != kh {
		t.Fatalf("key hash %q: want 52 lower-case characters", kh)
	}
	a, err := ParseAddr("tarn://" + kh + "@tcp:h:1")
	if err != nil || a.KeyHash != kh {
		t.Fatalf("round trip of %q: %v %v", kh, a, err)
	}
	if !SameKeyHash(kh, strings.ToUpper(kh)+"====") || SameKeyHash(kh, testPin) {
		t.Fatal("SameKeyHash wrong")
	}
}

func FuzzParseAddr(f *testing.F) {
	f.Add("tarn://" + testPin + "@tcp:127.0.0.1:4410")
	f.Add("tarn://" + testPin + "@tcp:[::1]:1,tor:abc.onion:80")
	f.Add("tarn://@")
	f.Add("tarn://x@y:z,")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		if err != nil {
			if !errors.Is(err, ErrBadAddr) {
				t.Fatalf("error not ErrBadAddr: %v", err)
			}
			return
		}
		// A parsed address renders to a canonical form that parses to itself.
		b, err := ParseAddr(a.String())
		if err != nil || b.String() != a.String() {
			t.Fatalf("canonical %q does not round trip: %v", a.String(), err)
		}
	})
}
