package conf

import (
	"testing"
	"time"
)

// TestDurationForms pins the duration spellings operators write besides
// Go's own: days and spaces are accepted, other words are not.
func TestDurationForms(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"31d", 744 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0.5d", 12 * time.Hour, true},
		{"30 s", 30 * time.Second, true},
		{"1h 30m", 90 * time.Minute, true},
		{" 250ms ", 250 * time.Millisecond, true},
		{"0d", 0, true},
		{"d", 0, false},
		{"5 minutes", 0, false},
		{"1w", 0, false},
		{"-1d", 0, false},
		{"10", 0, false},
		{"1e9d", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseDuration(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("parseDuration(%q) = %v, %v; want ok=%v", tc.in, got, err, tc.ok)
			}
			if tc.ok && got.D() != tc.want {
				t.Fatalf("parseDuration(%q) = %v, want %v", tc.in, got.D(), tc.want)
			}
		})
	}
}

// TestAmbiguousSizeUnit: a bare K, M, G, T or P is refused with both
// spellings offered, never guessed.
func TestAmbiguousSizeUnit(t *testing.T) {
	for in, want := range map[string]string{
		"10G":  `bad size "10G": "G" is ambiguous: write "10GiB" (1024s) or "10GB" (1000s)`,
		"1.5t": `bad size "1.5t": "t" is ambiguous: write "1.5TiB" (1024s) or "1.5TB" (1000s)`,
		"64k":  `bad size "64k": "k" is ambiguous: write "64KiB" (1024s) or "64kB" (1000s)`,
	} {
		_, err := ParseSize(in)
		if err == nil || err.Error() != want {
			t.Errorf("ParseSize(%q): %v, want %s", in, err, want)
		}
	}
	if s, err := ParseSize("10 GiB"); err != nil || s != 10<<30 {
		t.Errorf(`ParseSize("10 GiB") = %v, %v`, s, err)
	}
}

// FuzzParseDuration: any input gives a duration or an error, never a panic
// or a negative duration.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "31d", "1d12h", "1h 30m", "d", "-1d", "1.5.5d", "9999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("parseDuration(%q) = %v: negative", s, d)
		}
	})
}
