package sftp

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	xsftp "github.com/pkg/sftp"
)

// TestNewNameTooLong: a new name over 255 bytes (UTF-8, NFC) is refused
// with SSH_FX_BAD_MESSAGE (what OpenSSH's sftp-server answers for
// ENAMETOOLONG) and a message naming its length and the limit, for an
// open that creates (at the latest on close, before anything is linked),
// mkdir and rename (both kinds); 255 bytes are made.
func TestNewNameTooLong(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client("alice", alicePW)
	n255, n256 := strings.Repeat("a", 255), strings.Repeat("b", 256)
	create := func(p string) error {
		f, err := c.Create(p)
		if err != nil {
			return err
		}
		if _, err := f.Write([]byte("data")); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := create("/src"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mkdir("/dsrc"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		op   func() error
		ok   bool
		src  string // the source of a rename, kept when refused
	}{
		{"create 256", func() error { return create("/" + n256) }, false, ""},
		{"open 256", func() error { // refused at the open, before any write
			f, err := c.Create("/" + n256)
			if err == nil {
				f.Close()
				return nil
			}
			return err
		}, false, ""},
		{"create 86 euros", func() error { return create("/" + strings.Repeat("€", 86)) }, false, ""},
		{"mkdir 256", func() error { return c.Mkdir("/" + n256) }, false, ""},
		{"rename 256", func() error { return c.Rename("/src", "/"+n256) }, false, "/src"},
		{"posix-rename dir 256", func() error { return c.PosixRename("/dsrc", "/"+n256) }, false, "/dsrc"},
		{"create 255", func() error { return create("/" + n255) }, true, ""},
		{"create 85 euros", func() error { return create("/" + strings.Repeat("€", 85)) }, true, ""},
		{"mkdir 255", func() error { return c.Mkdir("/d" + n255[1:]) }, true, ""},
		{"rename 255", func() error { return c.Rename("/src", "/r"+n255[1:]) }, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if tc.ok {
				if err != nil {
					t.Fatalf("255 bytes refused: %v", err)
				}
				return
			}
			var se *xsftp.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T), want an SFTP status", err, err)
			}
			if se.FxCode() != xsftp.ErrSSHFxBadMessage {
				t.Fatalf("status %v, want SSH_FX_BAD_MESSAGE", se.FxCode())
			}
			if msg := se.Error(); !strings.Contains(msg, "name too long") || !strings.Contains(msg, " bytes") || !strings.Contains(msg, "limited to 255") {
				t.Fatalf("message %q does not say the name's length and the limit", msg)
			}
			if _, err := c.Stat("/" + n256); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("refused, yet stat: %v", err)
			}
			if tc.src != "" {
				if _, err := c.Stat(tc.src); err != nil {
					t.Fatalf("the source of a refused rename: %v", err)
				}
			}
		})
	}
}
