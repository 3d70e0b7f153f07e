package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
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

// bigSource is a deterministic stream of the same kind the CLI's big-file
// figure writes (writeRandomFile), under its own seed. Each path gets other
// bytes: the grid keys files convergently, so a second upload of the CLI's
// file would find its shares in place and store nothing (a WebDAV PUT of
// the same bytes once read 220 MB/s beside the CLI's 90 for that reason).
func bigSource(size int64, seed byte) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{seed, 'b'}), size)
}

// Seeds of the big files: each path uploads other bytes (see bigSource).
const (
	seedCLIBig    = 2
	seedWebDAVBig = 6
	seedSFTPBig   = 7
)

// webdavBig PUTs size bytes to the client's WebDAV frontend, GETs them
// back, and fails when the hash of what came back differs.
func webdavBig(ctx context.Context, r *Report, g *devGrid, size int64) error {
	ep := g.front.WebDAV
	if ep == nil {
		r.Notes = append(r.Notes, "webdav: endpoints.json names no webdav frontend; figures skipped")
		return nil
	}
	name := sizeName(size)
	url := ep.URL + "tarnbench-" + name + ".bin"
	h := sha256.New()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, io.TeeReader(bigSource(size, seedWebDAVBig), h))
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
	want := h.Sum(nil)

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
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	get := time.Since(t1)
	if err != nil {
		return fmt.Errorf("webdav get %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webdav get %s: %s", url, resp.Status)
	}
	if n != size || !bytes.Equal(got.Sum(nil), want) {
		return fmt.Errorf("webdav get of the %s file returned other bytes than were put (%d bytes)", name, n)
	}
	addVsPipeline(r, Figure{Key: "e2e.webdav.put." + name, Name: "WebDAV PUT " + name, Value: mbps(size, put), Unit: "MB/s"})
	addVsPipeline(r, Figure{Key: "e2e.webdav.get." + name, Name: "WebDAV GET " + name, Value: mbps(size, get), Unit: "MB/s"})
	return nil
}

// sftpBig puts size bytes through the client's SFTP frontend and gets them
// back, checking the hash.
func sftpBig(ctx context.Context, r *Report, g *devGrid, size int64) error {
	ep := g.front.SFTP
	if ep == nil {
		r.Notes = append(r.Notes, "sftp: endpoints.json names no sftp frontend; figures skipped")
		return nil
	}
	name := sizeName(size)
	cfg := &ssh.ClientConfig{
		User: ep.User,
		Auth: []ssh.AuthMethod{ssh.Password(ep.Password)},
		// The server is the dev grid's own client node on loopback, started
		// by this run with a host key made a moment ago: there is no known
		// key to pin, and no one between the two ends to guard against.
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         30 * time.Second,
	}
	conn, err := ssh.Dial("tcp", ep.Addr, cfg)
	if err != nil {
		return fmt.Errorf("sftp dial %s: %w", ep.Addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, err := sftp.NewClient(conn, sftp.UseConcurrentWrites(true))
	if err != nil {
		return fmt.Errorf("sftp session on %s: %w", ep.Addr, err)
	}
	defer c.Close()
	path := "/tarnbench-sftp-" + name + ".bin"

	h := sha256.New()
	t0 := time.Now()
	f, err := c.Create(path)
	if err != nil {
		return fmt.Errorf("sftp create %s: %w", path, err)
	}
	// pkg/sftp's ReadFrom pipelines its writes (64 in flight, as OpenSSH's
	// sftp and rclone do) only when it can tell the reader's size, from an
	// *io.LimitedReader among others; a bare TeeReader made it send one
	// 32 KiB write per round trip, a client no real tool is.
	src := &io.LimitedReader{R: io.TeeReader(bigSource(size, seedSFTPBig), h), N: size}
	if _, err := f.ReadFrom(src); err != nil {
		f.Close()
		return fmt.Errorf("sftp write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sftp close %s: %w", path, err)
	}
	put := time.Since(t0)
	want := h.Sum(nil)

	got := sha256.New()
	t1 := time.Now()
	f, err = c.Open(path)
	if err != nil {
		return fmt.Errorf("sftp open %s: %w", path, err)
	}
	n, err := f.WriteTo(got)
	f.Close()
	get := time.Since(t1)
	if err != nil {
		return fmt.Errorf("sftp read %s: %w", path, err)
	}
	if n != size || !bytes.Equal(got.Sum(nil), want) {
		return fmt.Errorf("sftp get of the %s file returned other bytes than were put (%d bytes)", name, n)
	}
	addVsPipeline(r, Figure{Key: "e2e.sftp.put." + name, Name: "SFTP put " + name, Value: mbps(size, put), Unit: "MB/s"})
	addVsPipeline(r, Figure{Key: "e2e.sftp.get." + name, Name: "SFTP get " + name, Value: mbps(size, get), Unit: "MB/s"})
	return nil
}
