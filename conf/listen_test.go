package conf

import (
	"path/filepath"
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
