package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// frontendEndpoints is the part of endpoints.json naming the client's
// WebDAV and SFTP frontends (absent when the client runs neither).
type frontendEndpoints struct {
	WebDAV *struct {
		URL      string `json:"url"`
		User     string `json:"user"`
		Password string `json:"password"`
	} `json:"webdav"`
	SFTP *struct {
		Addr     string `json:"addr"`
		User     string `json:"user"`
		Password string `json:"password"`
	} `json:"sftp"`
}

// frontFile writes the file a frontend's big figure uploads, under its own
// seed, and opens it. Each path gets other bytes: the grid keys files
// convergently, so a second upload of the CLI's file would find its shares
// in place and store nothing (a WebDAV PUT of the same bytes once read 220
// MB/s beside the CLI's 90 for that reason). As for the CLI's figure, the
// bytes come from a local file and what comes back is written to one and
// compared after the clock stops: generating or hashing them inside the
// timed transfer would spend the grid's 2 cores on the harness.
func frontFile(tmp, name string, size int64, seed byte) (*os.File, [32]byte, error) {
	path := filepath.Join(tmp, name)
	sum, err := writeRandomFile(path, size, seed)
	if err != nil {
		return nil, sum, err
	}
	f, err := os.Open(path)
	return f, sum, err
}

// checkBack compares the file a frontend's get wrote with what was put.
func checkBack(path string, size int64, want [32]byte, what string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	got, err := fileSum(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if st.Size() != size || got != want {
		return fmt.Errorf("%s returned other bytes than were put (%d bytes)", what, st.Size())
	}
	return nil
}

// Seeds of the big files: each path uploads other bytes (see frontFile).
const (
	seedCLIBig    = 2
	seedWebDAVBig = 6
	seedSFTPBig   = 7
)

// webdavBig PUTs size bytes to the client's WebDAV frontend, GETs them
// back, and fails when the hash of what came back differs.
func webdavBig(ctx context.Context, r *Report, g *devGrid, tmp string, size int64) error {
	ep := g.front.WebDAV
	if ep == nil {
		r.Notes = append(r.Notes, "webdav: endpoints.json names no webdav frontend; figures skipped")
		return nil
	}
	name := sizeName(size)
	url := ep.URL + "tarnbench-" + name + ".bin"
	src, want, err := frontFile(tmp, "webdav.in", size, seedWebDAVBig)
	if err != nil {
		return fmt.Errorf("webdav put: %w", err)
	}
	defer src.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, src)
	if err != nil {
		return fmt.Errorf("webdav put %s: %w", url, err)
	}
	req.ContentLength = size
	req.SetBasicAuth(ep.User, ep.Password)
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("webdav put %s: %w", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	put := time.Since(t0)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webdav put %s: %s", url, resp.Status)
	}

	outPath := filepath.Join(tmp, "webdav.out")
	out, err := os.Create(outPath)
	if err != nil {
		return err
	}
	defer out.Close()
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("webdav get %s: %w", url, err)
	}
	req.SetBasicAuth(ep.User, ep.Password)
	t1 := time.Now()
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("webdav get %s: %w", url, err)
	}
	_, err = io.Copy(out, resp.Body)
	resp.Body.Close()
	get := time.Since(t1)
	if err != nil {
		return fmt.Errorf("webdav get %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webdav get %s: %s", url, resp.Status)
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := checkBack(outPath, size, want, "webdav get of the "+name+" file"); err != nil {
		return err
	}
	os.Remove(outPath)
	os.Remove(src.Name())
	addVsPipeline(r, Figure{Key: "e2e.webdav.put." + name, Name: "WebDAV PUT " + name, Value: mbps(size, put), Unit: "MB/s"})
	addVsPipeline(r, Figure{Key: "e2e.webdav.get." + name, Name: "WebDAV GET " + name, Value: mbps(size, get), Unit: "MB/s"})
	return nil
}
