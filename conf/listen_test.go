package conf

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestPortZeroTwice: several listeners on port 0 do not collide (the system
// gives each its own port); two on one fixed port do.
func TestPortZeroTwice(t *testing.T) {
	base := "[client]\nenabled = true\napi_listen = \"127.0.0.1:0\"\n" +
		"[[accounts]]\nname = \"me\"\npassword_hash = \"$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\"\nroot_cap_file = \"root.cap\"\n"
	for _, tc := range []struct {
		name, sftp string
		ok         bool
	}{
		{"both port 0", "127.0.0.1:0", true},
		{"same fixed port", "127.0.0.1:3456", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := base
			if !tc.ok {
				text = "[client]\nenabled = true\napi_listen = \"127.0.0.1:3456\"\n" + text[len("[client]\nenabled = true\napi_listen = \"127.0.0.1:0\"\n"):]
			}
			text += "[[sftp]]\nlisten = \"" + tc.sftp + "\"\naccounts = [\"me\"]\n"
			_, err := Parse(filepath.Join(t.TempDir(), FileName), []byte(text))
			if (err == nil) != tc.ok {
				t.Fatalf("ok=%v, err=%v", tc.ok, err)
			}
		})
	}
}

// TestUnannouncedWarning: without storage.announce, the warning says what
// clients are actually told for the listen address given.
func TestUnannouncedWarning(t *testing.T) {
	cases := []struct{ name, listen, want string }{
		{"unspecified v4", "tcp:0.0.0.0:3457", "host name"},
		{"unspecified v6", "tcp:[::]:3457", "host name"},
		{"loopback", "tcp:127.0.0.1:3457", "loopback"},
		{"named host", "tcp:storage1.example.net:3457", "may not be reachable"},
		{"announce set", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := "[storage]\nenabled = true\n"
			if tc.listen != "" {
				text += "listen = [\"" + tc.listen + "\"]\n"
			} else {
				text += "announce = [\"tcp:storage1.example.net:3457\"]\n"
			}
			p, err := Parse(filepath.Join(t.TempDir(), FileName), []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, w := range p.Warnings() {
				if w.Key == "storage.announce" {
					got = w.Msg
				}
			}
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("warning %q, want one containing %q", got, tc.want)
			}
		})
	}
}
