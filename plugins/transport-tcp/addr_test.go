package transporttcp

import (
	"errors"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/sdk/transport"
)

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Addr
		bad      string // part of the error, "" when the address is good
	}{
		{"ipv4", "tcp:127.0.0.1:3456", Addr{"127.0.0.1", 3456}, ""},
		{"name", "tcp:storage-1.example.org:80", Addr{"storage-1.example.org", 80}, ""},
		{"name trailing dot", "tcp:example.org.:80", Addr{"example.org.", 80}, ""},
		{"ipv6", "tcp:[::1]:3456", Addr{"::1", 3456}, ""},
		{"ipv6 zone", "tcp:[fe80::1%eth0]:1", Addr{"fe80::1%eth0", 1}, ""},
		{"any interface", "tcp::0", Addr{"", 0}, ""},
		{"port max", "tcp:h:65535", Addr{"h", 65535}, ""},
		{"empty", "", Addr{}, `"tcp:"`},
		{"other scheme", "udp:1.2.3.4:5", Addr{}, `"tcp:"`},
		{"upper scheme", "TCP:1.2.3.4:5", Addr{}, `"tcp:"`},
		{"no port", "tcp:127.0.0.1", Addr{}, "HOST:PORT"},
		{"empty port", "tcp:127.0.0.1:", Addr{}, "port"},
		{"port too big", "tcp:h:65536", Addr{}, "port"},
		{"port negative", "tcp:h:-1", Addr{}, "port"},
		{"port plus", "tcp:h:+1", Addr{}, "port"},
		{"port name", "tcp:h:http", Addr{}, "port"},
		{"ipv6 unbracketed", "tcp:::1:3456", Addr{}, "HOST:PORT"},
		{"name bracketed", "tcp:[example.org]:1", Addr{}, "brackets"},
		{"ipv4 bracketed", "tcp:[1.2.3.4]:1", Addr{}, "brackets"},
		{"bad ipv6", "tcp:[::g]:1", Addr{}, "IPv6"},
		{"space in name", "tcp:a b:1", Addr{}, "host name"},
		{"empty label", "tcp:a..b:1", Addr{}, "host name"},
		{"slash", "tcp:a/b:1", Addr{}, "host name"},
		{"nul", "tcp:a\x00:1", Addr{}, "host name"},
		{"too long", "tcp:" + strings.Repeat("a", 300) + ":1", Addr{}, "too long"},
		{"label too long", "tcp:" + strings.Repeat("a", 64) + ".b:1", Addr{}, "host name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAddr(tc.in)
			if tc.bad == "" {
				if err != nil {
					t.Fatalf("ParseAddr(%q): %v", tc.in, err)
				}
				if got != tc.want {
					t.Fatalf("ParseAddr(%q) = %+v, want %+v", tc.in, got, tc.want)
				}
				if again, err := ParseAddr(got.String()); err != nil || again != got {
					t.Fatalf("round trip of %q through %q: %+v, %v", tc.in, got.String(), again, err)
				}
				return
			}
			if !errors.Is(err, transport.ErrBadAddress) {
				t.Fatalf("ParseAddr(%q) = %+v, %v; want transport.ErrBadAddress", tc.in, got, err)
			}
			if !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("ParseAddr(%q) error %q does not say %q", tc.in, err, tc.bad)
			}
		})
	}
}

// FuzzParseAddr: no input panics; every error is ErrBadAddress; every
// accepted address prints to a form that parses to itself.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"tcp:127.0.0.1:3456", "tcp:[::1]:1", "tcp:[fe80::1%eth0]:1", "tcp::0",
		"tcp:example.org:80", "tcp:::1:2", "tcp:[a]:1", "tcp:h:99999", "", "tcp:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		if err != nil {
			if !errors.Is(err, transport.ErrBadAddress) {
				t.Fatalf("ParseAddr(%q): %v is not ErrBadAddress", s, err)
			}
			return
		}
		b, err := ParseAddr(a.String())
		if err != nil || b != a {
			t.Fatalf("ParseAddr(%q) = %+v prints %q which parses to %+v, %v", s, a, a.String(), b, err)
		}
	})
}
