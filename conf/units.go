package conf

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes. In a profile it is written as a string with a
// unit, "10GiB", "512MB", "1.5MiB", "4096B", or as a plain integer (bytes).
// Binary units (KiB, MiB, GiB, TiB, PiB) count in 1024s, decimal units
// (kB, MB, GB, TB, PB) in 1000s; units are not case sensitive.
type Size int64

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	// No bare "k", "m", "g": whether they mean 1000 or 1024 is a guess.
	"kb": 1000, "kib": 1 << 10,
	"mb": 1000 * 1000, "mib": 1 << 20,
	"gb": 1000 * 1000 * 1000, "gib": 1 << 30,
	"tb": 1000 * 1000 * 1000 * 1000, "tib": 1 << 40,
	"pb": 1000 * 1000 * 1000 * 1000 * 1000, "pib": 1 << 50,
}

// ParseSize parses a size such as "10GiB" or "512MB".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.' || t[i] == '_') {
		i++
	}
	num, unit := strings.ReplaceAll(t[:i], "_", ""), strings.ToLower(strings.TrimSpace(t[i:]))
	mul, ok := sizeUnits[unit]
	if num != "" && len(unit) == 1 && strings.Contains("kmgtp", unit) {
		u := strings.ToUpper(unit)
		if u == "K" {
			return 0, fmt.Errorf("bad size %q: %q is ambiguous: write \"%sKiB\" (1024s) or \"%skB\" (1000s)", s, t[i:], num, num)
		}
		return 0, fmt.Errorf("bad size %q: %q is ambiguous: write \"%s%siB\" (1024s) or \"%s%sB\" (1000s)", s, t[i:], num, u, num, u)
	}
	if num == "" || !ok || strings.Count(num, ".") > 1 || num[0] == '.' || num[len(num)-1] == '.' {
		return 0, fmt.Errorf("bad size %q: want a number of bytes or a number with a unit such as \"512MiB\", \"10GiB\", \"1GB\"", s)
	}
	// Exact arithmetic: "1.5GiB" must be 1610612736, not a float's guess.
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("bad size %q", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mul))
	if !r.IsInt() {
		return 0, fmt.Errorf("bad size %q: not a whole number of bytes", s)
	}
	if r.Num().Cmp(big.NewInt(math.MaxInt64)) > 0 {
		return 0, fmt.Errorf("bad size %q: too large", s)
	}
	return Size(r.Num().Int64()), nil
}

// String writes the size with the largest binary unit that divides it.
func (s Size) String() string {
	units := []struct {
		name string
		n    int64
	}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if s != 0 && int64(s)%u.n == 0 {
			return fmt.Sprintf("%d%s", int64(s)/u.n, u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(s))
}

// MarshalText writes the size as String does.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a size as ParseSize does.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Duration is a time span written as a Go duration string: "30s", "5m",
// "1h30m", "250ms".
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String writes the duration as time.Duration does, without its trailing
// zero units: "744h", "1h30m", "10m" (not "744h0m0s").
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText writes the duration as String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a duration such as "30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

var errNegative = errors.New("must not be negative")

// parseDuration reads Go's duration syntax, plus two things operators
// write: days ("31d", "1d12h"; a day is 24 hours) and spaces ("30 s",
// "1h 30m").
func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(withDays(strings.Join(strings.Fields(s), "")))
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want a number with a unit (ms, s, m, h, d) such as \"30s\", \"5m\", \"1h30m\", \"31d\"", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("bad duration %q: %w", s, errNegative)
	}
	return Duration(v), nil
}

// withDays rewrites each "Nd" of a duration as hours ("1d12h" -> "24h12h",
// which time.ParseDuration adds up); anything else is left for it to judge.
func withDays(s string) string {
	var b strings.Builder
	start := 0 // start of the current number
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9' || c == '.':
			continue
		case c == 'd' && i > start:
			days, err := strconv.ParseFloat(s[start:i], 64)
			if err != nil || days > 1e6 {
				return s
			}
			b.WriteString(strconv.FormatFloat(days*24, 'f', -1, 64))
			b.WriteString("h")
		default:
			b.WriteString(s[start : i+1])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
	return b.String()
}
