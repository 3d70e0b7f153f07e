package davreplay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/webdav"
)

// server is x/net/webdav over memory behind Basic auth, counting the
// requests of each method.
func server(t *testing.T) (*httptest.Server, map[string]*atomic.Int64) {
	t.Helper()
	counts := map[string]*atomic.Int64{}
	for _, m := range []string{"PROPFIND", "MKCOL", "PUT", "GET"} {
		counts[m] = &atomic.Int64{}
	}
	h := &webdav.Handler{FileSystem: webdav.NewMemFS(), LockSystem: webdav.NewMemLS()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "pw" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if c := counts[r.Method]; c != nil {
			c.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, counts
}

func files(n int) []File {
	out := make([]File, n)
	for i := range out {
		out[i] = File{Name: fmt.Sprintf("f %03d", i), Data: []byte(fmt.Sprintf("content of file %d", i))}
	}
	return out
}

// TestUpDown: the requests per file are rclone's (one MKCOL, PUT and
// PROPFIND up, one GET down), and the bytes come back.
func TestUpDown(t *testing.T) {
	for _, workers := range []int{1, 4} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			srv, counts := server(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg := Config{URL: srv.URL + "/", User: "u", Password: "pw", Folder: "small", Workers: workers}
			fs := files(20)
			if _, err := Up(ctx, cfg, fs); err != nil {
				t.Fatal(err)
			}
			if _, err := Down(ctx, cfg, fs); err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{"MKCOL": 21, "PUT": 20, "PROPFIND": 22, "GET": 20}
			for m, n := range want {
				if got := counts[m].Load(); got != n {
					t.Errorf("%s sent %d times, want %d", m, got, n)
				}
			}
		})
	}
}

// TestFailures: a wrong password, a file that comes back other than put
// and a bad URL are errors, not hangs.
func TestFailures(t *testing.T) {
	srv, _ := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	good := Config{URL: srv.URL, User: "u", Password: "pw", Folder: "/d/"}
	fs := files(5)
	if _, err := Up(ctx, good, fs); err != nil {
		t.Fatal(err)
	}
	changed := append([]File(nil), fs...)
	changed[3] = File{Name: fs[3].Name, Data: []byte("other bytes")}
	for _, tc := range []struct {
		name string
		run  func() error
		is   error
	}{
		{"wrong password up", func() error {
			c := good
			c.Password = "bad"
			_, err := Up(ctx, c, fs)
			return err
		}, ErrStatus},
		{"wrong password down", func() error {
			c := good
			c.Password = "bad"
			_, err := Down(ctx, c, fs)
			return err
		}, ErrStatus},
		{"missing file", func() error {
			_, err := Down(ctx, good, append(fs, File{Name: "none", Data: nil}))
			return err
		}, ErrStatus},
		{"other bytes", func() error { _, err := Down(ctx, good, changed); return err }, nil},
		{"bad url", func() error { _, err := Up(ctx, Config{URL: "ftp://x/", Folder: "d"}, fs); return err }, nil},
		{"no folder", func() error { _, err := Up(ctx, Config{URL: srv.URL, Folder: "/"}, fs); return err }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("%v, want %v", err, tc.is)
			}
		})
	}
}
