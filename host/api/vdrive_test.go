package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
)

// gridFiles is the API's Files over a real grid client.
type gridFiles struct{ c *grid.Client }

func (g gridFiles) Upload(ctx context.Context, r io.Reader, size int64) (string, error) {
	c, err := g.c.Upload(ctx, r, size, nil)
	if err != nil {
		return "", err
	}
	return c.String(), nil
}

func (g gridFiles) Open(ctx context.Context, c cap.Cap) (api.File, error) { return g.c.Open(ctx, c) }

// newFSServer is an API over a 5-server in-process grid, vdrive routes on.
func newFSServer(t *testing.T) *api.Client {
	t.Helper()
	cl, _ := newFSServerStore(t)
	return cl
}

// newFSServerStore is newFSServer, and the node's Store (to write a
// directory as an older version did).
func newFSServerStore(t *testing.T) (*api.Client, vdrive.Store) {
	t.Helper()
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
	st := vdrive.GridStore(c)
	s, err := api.Start(api.Config{Listen: "127.0.0.1:0", Token: "sekrit", Files: gridFiles{c}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &api.Client{BaseURL: s.URL(), Token: "sekrit"}, st
}

func TestFSRoutes(t *testing.T) {
	cl := newFSServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dc, err := cl.NewDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dc.WriteCap, "tarn:dir:") || !strings.HasPrefix(dc.ReadCap, "tarn:dir-ro:") || !strings.HasPrefix(dc.VerifyCap, "tarn:dir-verify:") {
		t.Fatalf("new dir caps: %+v", dc)
	}
	root := dc.WriteCap
	big := make([]byte, 300<<10)
	rand.Read(big)
	const uname = "Ünïcødé dir/sp ace é.txt"
	steps := []struct {
		name string
		do   func() error
		want error // nil: success
	}{
		{"mkdir", func() error { _, err := cl.Mkdir(ctx, root, "/a", false); return err }, nil},
		{"mkdir again", func() error { _, err := cl.Mkdir(ctx, root, "/a", false); return err }, vdrive.ErrExist},
		{"mkdir -p", func() error { _, err := cl.Mkdir(ctx, root, "/a/b/c", true); return err }, nil},
		{"mkdir -p unicode", func() error { _, err := cl.Mkdir(ctx, root, "/Ünïcødé dir", true); return err }, nil},
		{"write big", func() error {
			_, err := cl.Write(ctx, root, "/a/big.bin", bytes.NewReader(big), int64(len(big)), time.Time{})
			return err
		}, nil},
		{"write unknown size", func() error {
			_, err := cl.Write(ctx, root, uname, strings.NewReader("hello"), -1, time.Time{})
			return err
		}, nil},
		{"write empty", func() error {
			_, err := cl.Write(ctx, root, "/a/empty", bytes.NewReader(nil), 0, time.Time{})
			return err
		}, nil},
		{"write over dir", func() error {
			_, err := cl.Write(ctx, root, "/a/b", strings.NewReader("x"), 1, time.Time{})
			return err
		}, vdrive.ErrIsDir},
		{"write no parent", func() error {
			_, err := cl.Write(ctx, root, "/nope/x", strings.NewReader("x"), 1, time.Time{})
			return err
		}, vdrive.ErrNotExist},
		{"bad name", func() error { _, err := cl.Mkdir(ctx, root, "/a/\x00", false); return err }, vdrive.ErrBadName},
		{"name too long", func() error { _, err := cl.Mkdir(ctx, root, "/a/"+strings.Repeat("n", 256), false); return err }, vdrive.ErrNameTooLong},
		{"name too long is a bad name", func() error { _, err := cl.Mkdir(ctx, root, "/a/"+strings.Repeat("n", 300), false); return err }, vdrive.ErrBadName},
		{"rm not empty", func() error { return cl.Remove(ctx, root, "/a", false) }, vdrive.ErrNotEmpty},
		{"rm missing", func() error { return cl.Remove(ctx, root, "/zzz", true) }, vdrive.ErrNotExist},
		{"mv", func() error { _, err := cl.Rename(ctx, root, "/a/b", "/b2"); return err }, nil},
		{"mv missing", func() error { _, err := cl.Rename(ctx, root, "/a/b", "/b3"); return err }, vdrive.ErrNotExist},
		{"ln", func() error { _, err := cl.Link(ctx, root, "/linked", dc.ReadCap); return err }, nil},
		{"ln verify cap", func() error { _, err := cl.Link(ctx, root, "/v", dc.VerifyCap); return err }, vdrive.ErrInvalid},
		{"ln bad cap", func() error { _, err := cl.Link(ctx, root, "/v", "tarn:nope"); return err }, vdrive.ErrInvalid},
		{"setmeta", func() error {
			mt := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
			_, err := cl.SetMetadata(ctx, root, "/a/empty", &mt, map[string]string{"unix:mode": "0600"}, nil)
			return err
		}, nil},
		{"read-only root", func() error { _, err := cl.Mkdir(ctx, dc.ReadCap, "/x", false); return err }, vdrive.ErrReadOnly},
		{"bad root cap", func() error { _, err := cl.Stat(ctx, "tarn:chk:zz", "/"); return err }, api.ErrBadCap},
		{"rm -r", func() error { return cl.Remove(ctx, root, "/b2", true) }, nil},
	}
	for _, st := range steps {
		err := st.do()
		switch {
		case st.want == nil && err != nil:
			t.Fatalf("%s: %v", st.name, err)
		case st.want != nil && !errors.Is(err, st.want):
			t.Fatalf("%s: error %v (%T), want %v", st.name, err, err, st.want)
		}
	}
	var names []string
	if err := cl.List(ctx, root, "/", func(e api.Entry) error { names = append(names, e.Name+":"+e.Type); return nil }); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(names, ","), "a:dir,linked:dir,Ünïcødé dir:dir"; got != want {
		t.Errorf("root lists %q, want %q", got, want)
	}
	e, err := cl.Stat(ctx, root, "/a/empty")
	if err != nil || e.Size != 0 || e.Extra["unix:mode"] != "0600" || e.Mtime.Year() != 2001 {
		t.Errorf("stat /a/empty: %+v %v", e, err)
	}
	// Range read.
	body, n, err := cl.Read(ctx, root, "/a/big.bin", 1000, 5000)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if n != 5000 || !bytes.Equal(got, big[1000:6000]) {
		t.Errorf("range read: %d bytes (%d), differ", len(got), n)
	}
	body, _, err = cl.Read(ctx, root, "/a/big.bin", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(body)
	body.Close()
	if !bytes.Equal(got, big) {
		t.Errorf("whole read: %d bytes, differ", len(got))
	}
	if _, _, err := cl.Read(ctx, root, "/a", 0, -1); !errors.Is(err, vdrive.ErrIsDir) {
		t.Errorf("read of a directory: %v", err)
	}
	// ln-many: one change for many links, all or none; a listing of them
	// streams one entry a line.
	links := map[string]string{}
	for i := range 300 {
		links[fmt.Sprintf("n%03d", i)] = cap.Literal{Data: []byte(fmt.Sprint(i))}.String()
	}
	if _, err := cl.Mkdir(ctx, root, "/many", false); err != nil {
		t.Fatal(err)
	}
	if err := cl.LinkMany(ctx, root, "/many", links); err != nil {
		t.Fatal(err)
	}
	clash := map[string]string{"new": links["n000"], "n001": links["n000"]}
	if err := cl.LinkMany(ctx, root, "/many", clash); !errors.Is(err, vdrive.ErrExist) {
		t.Errorf("ln-many over an existing name: %v", err)
	}
	n = 0
	if err := cl.List(ctx, root, "/many", func(e api.Entry) error {
		if e.Name != fmt.Sprintf("n%03d", n) || e.Type != "file" {
			return fmt.Errorf("entry %d is %+v", n, e)
		}
		n++
		return nil
	}); err != nil || n != 300 {
		t.Errorf("list of 300: %d entries, %v", n, err)
	}
	// Unauthorized and unknown ops.
	bad := &api.Client{BaseURL: cl.BaseURL, Token: "wrong"}
	if _, err := bad.Stat(ctx, root, "/"); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("wrong token: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, cl.BaseURL+"/v1/fs/"+root+"/a?op=explode", nil)
	req.Header.Set("Authorization", "Bearer sekrit")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown op: %s", resp.Status)
	}
}

// TestFSConcurrentWritesOneNode: several requests of one node change one
// directory at once; every entry must be kept. (It once failed: a read
// racing the node's own publish was taken for a rollback.)
func TestFSConcurrentWritesOneNode(t *testing.T) {
	cl := newFSServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dc, err := cl.NewDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := cl.Write(ctx, dc.WriteCap, fmt.Sprintf("/w%d-%02d", g, i), strings.NewReader("x"), 1, time.Time{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	es, err := cl.ReadDir(ctx, dc.WriteCap, "/")
	if err != nil || len(es) != writers*each {
		t.Fatalf("%d entries (%v), want %d", len(es), err, writers*each)
	}
}
