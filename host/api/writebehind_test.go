package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/metrics"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
)

// refusing refuses directory changes while refuse is set, as servers
// refusing for a while do.
type refusing struct {
	vdrive.Store
	refuse atomic.Bool
}

func (s *refusing) Modify(ctx context.Context, c cap.MutableWrite, fn func([]byte) ([]byte, error)) error {
	if s.refuse.Load() {
		return errors.New("test: servers refuse changes")
	}
	return s.Store.Modify(ctx, c, fn)
}

// TestWriteBehindStatus: a client's write-behind shows in GET
// /v1/status, on the page and in /metrics: links not yet made and the
// age of the oldest, a folder whose changes fail, the lines of the
// failed links.
func TestWriteBehindStatus(t *testing.T) {
	g := testgrid.New(t, 5, &testgrid.Options{Server: func(_ int, cfg *storageserver.Config) {
		cfg.ValidateSlotWrite = mutable.ValidateSlotWrite
	}})
	c, err := grid.New(grid.Config{
		Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret,
		Codec: codecreedsolomon.New(), Servers: g.Source(), K: 3, H: 4, N: 5,
		Convergence: []byte("api test convergence"), TempDir: t.TempDir(),
		ServerTimeout: 5 * time.Second, Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root, err := vdrive.NewRoot(ctx, vdrive.GridStore(c))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rs := &refusing{Store: vdrive.GridStore(c)}
	// Both puts below must be acknowledged before the first change is
	// tried: once it fails, new files into the folder are refused. So the
	// delay is longer than the test and the test tries the change itself
	// (Flush) after the puts: a delay of 50 ms, then 2 s, was shorter than
	// a put on a loaded machine (-race runs refused /b).
	b, err := vdrive.OpenBehind(rs, vdrive.BehindConfig{Dir: dir, Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	s, err := api.Start(api.Config{Listen: "127.0.0.1:0", Token: "sekrit", Files: gridFiles{c}, Store: b, Metrics: metrics.New()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	cl := &api.Client{BaseURL: s.URL(), Token: "sekrit"}

	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wb := st.WriteBehind; wb == nil || wb.Pending != 0 || wb.Failing != 0 || wb.Failed != 0 {
		t.Fatalf("idle write-behind status %+v", wb)
	}
	// Two files acknowledged into a folder whose changes then fail, and
	// an older failed link.
	d, err := vdrive.New(b, root.String(), vdrive.WithWriteBehind())
	if err != nil {
		t.Fatal(err)
	}
	rs.refuse.Store(true)
	for _, p := range []string{"/a", "/b"} {
		if err := d.Put(ctx, p, bytes.NewReader([]byte(p)), int64(len(p)), nil); err != nil {
			t.Fatal(err)
		}
	}
	line := `{"time":"2026-11-27T10:00:00Z","path":"/gone","name":"x","cap":"tarn:lit:x","error":"folder no longer at its path"}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, vdrive.FailedLinksFile), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err == nil || !strings.Contains(err.Error(), "servers refuse changes") {
		t.Fatalf("flush while the servers refuse changes: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for b.Stats().Failing == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the folder is not failing after 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond)
	st, err = cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wb := st.WriteBehind
	if wb == nil || wb.Pending != 2 || wb.Folders != 1 || wb.Failing != 1 || wb.FailingLinks != 2 || wb.Failed != 1 ||
		wb.OldestAge <= 0 || wb.ChangeFailures < 1 {
		t.Fatalf("write-behind status %+v, want 2 pending and failing in 1 folder, 1 failed link", wb)
	}
	get := func(path string) string {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return string(body)
	}
	m := get("/metrics")
	for _, want := range []string{"tarn_writebehind_pending_links 2", "tarn_writebehind_failing_folders 1",
		"tarn_writebehind_failing_links 2", "tarn_writebehind_failed_links 1", "tarn_writebehind_oldest_pending_seconds "} {
		if !strings.Contains(m, want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, grepLines(m, "writebehind"))
		}
	}
	if strings.Contains(m, "tarn_writebehind_oldest_pending_seconds 0\n") {
		t.Fatalf("/metrics: no age for the oldest pending link:\n%s", grepLines(m, "writebehind"))
	}
	page := get("/")
	for _, want := range []string{`id="wb-pending">2 in 1 folders`, `id="wb-failing" class="bad">1 (2 links`, `id="wb-failed" class="bad">1`} {
		if !strings.Contains(page, want) {
			t.Fatalf("the page lacks %q", want)
		}
	}
	rs.refuse.Store(false)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err = cl.Status(ctx); err != nil || st.WriteBehind.Pending != 0 || st.WriteBehind.Failing != 0 {
		t.Fatalf("status once made: %+v %v", st.WriteBehind, err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
