package conf

import (
	"strings"
	"testing"
)

// FuzzCanonicalKeyHash: any string either fails or yields a canonical hash
// that is its own canonical form.
func FuzzCanonicalKeyHash(f *testing.F) {
	for _, s := range []string{"", "abc", strings.Repeat("a", KeyHashLen), strings.Repeat("A", KeyHashLen) + "====", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CanonicalKeyHash(s)
		if err != nil {
			return
		}
		if again, err := CanonicalKeyHash(c); err != nil || again != c {
			t.Fatalf("canonical %q of %q is not stable: %q, %v", c, s, again, err)
		}
	})
}

// FuzzCheckAddress: transport addresses and node URLs from profiles and the
// command line never panic.
func FuzzCheckAddress(f *testing.F) {
	for _, s := range []string{"tcp:0.0.0.0:3457", "tcp:[::1]:0", "tcp:", "x:y", "tarn://" + strings.Repeat("a", KeyHashLen) + "@tcp:127.0.0.1:1,tcp:[::1]:2", "tarn://@", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = CheckAddress(s, true)
		_ = CheckAddress(s, false)
		_ = CheckHostPort(s)
		_ = CheckNodeURL(s)
	})
}

// FuzzParseSize: a size that parses prints to a string that parses back to
// the same size.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1", "10KiB", "1.5GB", "-1", "9999999999999999999TiB", "1e3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		back, err := ParseSize(n.String())
		if err != nil || back != n {
			t.Fatalf("size %q = %d prints %q which parses to %d, %v", s, n, n.String(), back, err)
		}
	})
}
