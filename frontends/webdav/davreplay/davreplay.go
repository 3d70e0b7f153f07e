// Package davreplay sends the WebDAV requests rclone 1.60's webdav backend
// (vendor other) sends per file when it copies a folder of files to a
// server and back (traced with `rclone copy -vv --dump headers`), but
// without rclone's pacer, which lets one request start every 10 ms at
// most and so caps rclone at 100 requests/s against any server. Up: a
// PROPFIND and MKCOL of the folder, then per file MKCOL of the folder
// (405: it exists), PUT, PROPFIND Depth 1 of the file. Down: a PROPFIND
// Depth 1 of the folder, then per file one GET, its bytes checked. It
// measures what a WebDAV server does per file, not what rclone does.
package davreplay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File is one file to copy.
type File struct {
	Name string // a name in the folder, no slashes
	Data []byte
}

// Config says where the files go.
type Config struct {
	// URL is the server's root collection ("http://127.0.0.1:8080/").
	URL string
	// User and Password are sent as Basic credentials with every request.
	User, Password string
	// Folder is the collection under URL the files go to (made when
	// missing).
	Folder string
	// Workers is how many files are in flight (rclone's --transfers;
	// default 4).
	Workers int
	// Client sends the requests (default: one keeping Workers idle
	// connections).
	Client *http.Client
}

// ErrStatus is the error of a request answered with a status the replay
// did not expect.
var ErrStatus = errors.New("unexpected status")

type replay struct {
	cfg  Config
	base string // URL of the folder, with a trailing slash
	cl   *http.Client
}

func newReplay(cfg Config) (*replay, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("davreplay: url %q: want http(s)://host/...", cfg.URL)
	}
	folder := strings.Trim(cfg.Folder, "/")
	if folder == "" {
		return nil, errors.New("davreplay: no folder")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	cl := cfg.Client
	if cl == nil {
		cl = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Workers}}
	}
	base := strings.TrimSuffix(cfg.URL, "/") + "/" + (&url.URL{Path: folder}).EscapedPath() + "/"
	return &replay{cfg: cfg, base: base, cl: cl}, nil
}

// do sends one request and reads the whole answer; an answer whose status
// is not among want is an error naming the request.
func (r *replay) do(ctx context.Context, method, u string, hdr map[string]string, body []byte, want ...int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	req.SetBasicAuth(r.cfg.User, r.cfg.Password)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := r.cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, u, err)
	}
	for _, w := range want {
		if res.StatusCode == w {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s %s: %w %d (want %v)", method, u, ErrStatus, res.StatusCode, want)
}

// each runs fn for every file, Workers at a time, and stops at the first
// error.
func (r *replay) each(ctx context.Context, files []File, fn func(ctx context.Context, f File) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					return
				}
				if err := fn(ctx, files[i]); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

func (r *replay) fileURL(name string) string {
	return r.base + (&url.URL{Path: name}).EscapedPath()
}

// Up copies files into the folder as rclone does and returns how long
// the per-file requests took (the folder's own PROPFIND and MKCOL before
// them are not timed).
func Up(ctx context.Context, cfg Config, files []File) (time.Duration, error) {
	r, err := newReplay(cfg)
	if err != nil {
		return 0, err
	}
	if _, err := r.do(ctx, "PROPFIND", r.base, map[string]string{"Depth": "1"}, nil, http.StatusMultiStatus, http.StatusNotFound); err != nil {
		return 0, err
	}
	if _, err := r.do(ctx, "MKCOL", r.base, nil, nil, http.StatusCreated, http.StatusMethodNotAllowed); err != nil {
		return 0, err
	}
	t0 := time.Now()
	err = r.each(ctx, files, func(ctx context.Context, f File) error {
		if _, err := r.do(ctx, "MKCOL", r.base, nil, nil, http.StatusMethodNotAllowed, http.StatusCreated); err != nil {
			return err
		}
		u := r.fileURL(f.Name)
		hdr := map[string]string{"Content-Type": "application/octet-stream"}
		if _, err := r.do(ctx, "PUT", u, hdr, f.Data, http.StatusCreated, http.StatusNoContent); err != nil {
			return err
		}
		_, err := r.do(ctx, "PROPFIND", u, map[string]string{"Depth": "1"}, nil, http.StatusMultiStatus)
		return err
	})
	return time.Since(t0), err
}

// Down reads files back from the folder as rclone does, checks their
// bytes, and returns how long the GETs took (the folder's listing before
// them is not timed).
func Down(ctx context.Context, cfg Config, files []File) (time.Duration, error) {
	r, err := newReplay(cfg)
	if err != nil {
		return 0, err
	}
	if _, err := r.do(ctx, "PROPFIND", r.base, map[string]string{"Depth": "1"}, nil, http.StatusMultiStatus); err != nil {
		return 0, err
	}
	t0 := time.Now()
	err = r.each(ctx, files, func(ctx context.Context, f File) error {
		u := r.fileURL(f.Name)
		b, err := r.do(ctx, "GET", u, map[string]string{"Depth": "0"}, nil, http.StatusOK)
		if err != nil {
			return err
		}
		if !bytes.Equal(b, f.Data) {
			return fmt.Errorf("GET %s: %d bytes other than the %d put", u, len(b), len(f.Data))
		}
		return nil
	})
	return time.Since(t0), err
}
