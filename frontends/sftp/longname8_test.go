package sftp

import (
	"context"
	"errors"
	"github.com/tarnfs/tarn/host/vdrive/vdrivetest"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	xsftp "github.com/pkg/sftp"
)

// plantName links a file holding data at name in account's root folder
// straight through the directory format, past vdrive's rule for new
// names, as an older version could (names up to 1,024 bytes).
func plantName(t *testing.T, e *env, account, name string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := vdrivetest.PlantFile(ctx, e.store, e.roots[account], name, data); err != nil {
		t.Fatal(err)
	}
}

// TestOverlongNameWrittenInPlace: a file whose name is over 255 bytes (an
// older version's) opens for writing over SFTP and its new content is
// read back, by each way clients open a file to write (truncate; create
// without truncate, as scp does; read-write in place), where a NEW name
// that long is still refused at the open (TestNewNameTooLong). Before,
// every such open failed "name too long".
func TestOverlongNameWrittenInPlace(t *testing.T) {
	e := newEnv(t, envOptions{})
	long := "/" + strings.Repeat("l", 300)
	plantName(t, e, "alice", long[1:], []byte("old content"))
	c := e.client("alice", alicePW)
	for _, tc := range []struct {
		name  string
		flags int
		data  string
		want  string
	}{
		{"truncate", os.O_WRONLY | os.O_CREATE | os.O_TRUNC, "new", "new"},
		{"create without truncate", os.O_WRONLY | os.O_CREATE, "NEW", "NEW"},
		{"read-write in place", os.O_RDWR, "xy", "xyW"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := c.OpenFile(long, tc.flags)
			if err != nil {
				t.Fatalf("open for writing: %v", err)
			}
			if _, err := f.Write([]byte(tc.data)); err != nil {
				f.Close()
				t.Fatalf("write: %v", err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			r, err := c.Open(long)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || string(got) != tc.want {
				t.Fatalf("read back %q (%v), want %q", got, err, tc.want)
			}
		})
	}
	f, err := c.OpenFile("/"+strings.Repeat("n", 300), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err == nil {
		f.Close()
		t.Fatal("a new name of 300 bytes opened for writing")
	}
	var se *xsftp.StatusError
	if !errors.As(err, &se) || se.FxCode() != xsftp.ErrSSHFxBadMessage || !strings.Contains(se.Error(), "name too long") {
		t.Fatalf("new long name: %v, want SSH_FX_BAD_MESSAGE, name too long", err)
	}
}
