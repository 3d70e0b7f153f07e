package grid_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/testgrid"
)

// TestUploadDeadlineMarksNoneHung: a small upload whose caller's deadline
// passes while its PutShares calls are out (every server frozen) fails,
// but leaves no server remembered as hung: the deadline was the caller's,
// not a server's fault, and a server remembered as hung is left out of
// maps, surveys and checks for a server timeout.
func TestUploadDeadlineMarksNoneHung(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, logs := newClient(t, g, nil)
	upload(t, c, random(5000)) // dials every server: the next one takes the one-call path
	for _, s := range g.Servers {
		s.Freeze()
		t.Cleanup(s.Thaw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	data := random(5000)
	if _, err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), nil); err == nil {
		t.Fatal("upload to frozen servers past its deadline succeeded")
	}
	if !strings.Contains(logs.String(), "one-call upload refused") {
		t.Fatalf("the upload did not take the one-call path:\n%s", logs)
	}
	for _, s := range g.Servers {
		s.Thaw()
	}
	for _, s := range g.Servers {
		if c.Hung(s.NodeID) {
			t.Errorf("server %s remembered as hung after the caller's deadline passed", s.NodeID)
		}
	}
}
