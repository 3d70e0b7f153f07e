package webdav

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/accounts"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
	"github.com/tarnfs/tarn/sdk/storage"
)

// env is a WebDAV handler over a real test grid (five in-process storage
// servers) with three accounts: alice (writable), reader (read-only, the
// same root) and bob (another root).
type env struct {
	srv    *httptest.Server
	url    string
	store  vdrive.Store
	root   string
	h      *Handler
	grid   *testgrid.Grid
	client *grid.Client
	cfg    HandlerConfig
}

// reads is the number of share reads the grid's servers have served.
func (e *env) reads() int64 {
	var n int64
	for _, s := range e.grid.Servers {
		n += s.Backend.Counts().Reads
	}
	return n
}

const (
	alicePW  = "alice-secret"
	readerPW = "reader-secret"
	bobPW    = "bob-secret"
)

type envOpts struct {
	apple  string
	prefix string
	quota  QuotaFunc
	disk   bool // servers keep shares on disk, out of the test's heap
	// wrap, when set, wraps the store the accounts' drives use (a test's
	// counting or failing store).
	wrap func(vdrive.Store) vdrive.Store
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	gopts := &testgrid.Options{Server: func(_ int, cfg *storageserver.Config) {
		cfg.ValidateSlotWrite = mutable.ValidateSlotWrite
	}}
	if o.disk {
		gopts.Backend = func(int) (storage.Backend, error) { return storagedisk.New(t.TempDir()) }
	}
	g := testgrid.New(t, 5, gopts)
	c, err := grid.New(grid.Config{
		Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret,
		Codec: codecreedsolomon.New(), Servers: g.Source(), K: 3, H: 4, N: 5,
		Convergence: []byte("webdav test convergence"),
		TempDir:     t.TempDir(), ServerTimeout: 10 * time.Second,
		Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	st := vdrive.GridStore(c)
	if o.wrap != nil {
		st = o.wrap(st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	root2, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hash := func(pw string) string {
		h, err := accounts.HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	set, err := accounts.New([]conf.Account{
		{Name: "alice", PasswordHash: hash(alicePW), RootCapFile: write("alice.cap", root.String())},
		{Name: "reader", PasswordHash: hash(readerPW), RootCapFile: write("alice.cap", root.String()), ReadOnly: true},
		{Name: "bob", PasswordHash: hash(bobPW), RootCapFile: write("bob.cap", root2.String())},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := HandlerConfig{
		Prefix: o.prefix, Accounts: set, AppleDouble: o.apple, Quota: o.quota, LockTimeout: time.Hour,
		DriveFor: func(a *accounts.Account) (*vdrive.Drive, error) {
			return vdrive.New(st, a.RootCap, vdrive.WithDirCache(time.Second))
		},
		Logger: hclog.New(&hclog.LoggerOptions{Name: "webdav", Level: hclog.Warn, Output: testWriter{t}}),
	}
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	p := o.prefix
	if p == "" {
		p = "/"
	}
	return &env{srv: srv, url: srv.URL + p, store: st, root: root.String(), h: h, grid: g, client: c, cfg: cfg}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

var _ http.Handler = (*Handler)(nil)
