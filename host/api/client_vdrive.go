package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// FSError is an error answer of the vdrive routes. errors.Is matches the
// vdrive sentinel its Kind names (vdrive.ErrNotExist, ErrExist, ...) and
// the API's own (ErrNotFound, ErrBadCap, ...).
type FSError struct {
	Status int
	Msg    string
	Kind   string
}

func (e *FSError) Error() string { return e.Msg }

// Is matches the sentinel of the kind, or the API error of the status.
func (e *FSError) Is(target error) bool {
	if s := sentinelOf(e.Kind); s != nil && errors.Is(s, target) {
		return true
	}
	return (&Error{Status: e.Status, Msg: e.Msg}).Is(target)
}

// fsURL is the URL of path p under root (path components escaped).
func (c *Client) fsURL(root, p, op string) string {
	var b strings.Builder
	b.WriteString(c.BaseURL)
	b.WriteString("/v1/fs/")
	b.WriteString(url.PathEscape(strings.TrimSpace(root)))
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		switch part {
		case "":
			continue
		case ".", "..":
			// url.PathEscape leaves dots alone, and a URL's "." and ".."
			// are cleaned away on the way (a path could climb out of
			// root): sent escaped, the server refuses them as bad names.
			part = strings.ReplaceAll(part, ".", "%2E")
		default:
			part = url.PathEscape(part)
		}
		b.WriteByte('/')
		b.WriteString(part)
	}
	if strings.Trim(p, "/") == "" {
		b.WriteByte('/')
	}
	if op != "" {
		b.WriteString("?op=")
		b.WriteString(url.QueryEscape(op))
	}
	return b.String()
}

// doFS sends req and turns an error answer into an *FSError.
func (c *Client) doFS(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.http().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("reach the node's API at %s: %w", c.BaseURL, err)
	}
	if resp.StatusCode < 300 || resp.StatusCode == http.StatusNotModified {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb FSErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		return nil, &FSError{Status: resp.StatusCode, Msg: eb.Error, Kind: eb.Kind}
	}
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode == http.StatusNotFound && strings.Contains(msg, "no such endpoint") {
		msg = "this node serves no vdrive API (an older tarn?): " + msg
	}
	if msg == "" {
		msg = resp.Status
	}
	return nil, &FSError{Status: resp.StatusCode, Msg: msg}
}

func (c *Client) fsJSON(ctx context.Context, method, u string, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.doFS(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("read the node's answer: %w", err)
	}
	return nil
}

// NewDir creates an empty directory and returns its caps.
func (c *Client) NewDir(ctx context.Context) (*DirCaps, error) {
	var dc DirCaps
	if err := c.fsJSON(ctx, http.MethodPost, c.BaseURL+"/v1/dir", nil, &dc); err != nil {
		return nil, err
	}
	return &dc, nil
}

// Stat describes the entry at p under the directory root (a dircap).
func (c *Client) Stat(ctx context.Context, root, p string) (*Entry, error) {
	var e Entry
	if err := c.fsJSON(ctx, http.MethodGet, c.fsURL(root, p, "stat"), nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// List calls fn for each entry of the directory at p, in name order, as
// they arrive; fn's error ends the listing and is returned.
func (c *Client) List(ctx context.Context, root, p string, fn func(Entry) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.fsURL(root, p, "list"), nil)
	if err != nil {
		return err
	}
	resp, err := c.doFS(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("read listing: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read listing: %w", err)
	}
	return nil
}

// ReadDir lists the directory at p.
func (c *Client) ReadDir(ctx context.Context, root, p string) ([]Entry, error) {
	var out []Entry
	err := c.List(ctx, root, p, func(e Entry) error { out = append(out, e); return nil })
	return out, err
}

// Read opens the file at p for reading length bytes from off (to the end
// when length < 0); size is the body's length.
func (c *Client) Read(ctx context.Context, root, p string, off, length int64) (body io.ReadCloser, size int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.fsURL(root, p, ""), nil)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case length == 0:
		req.Method = http.MethodHead
	case off > 0 && length < 0:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	case length > 0:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	}
	resp, err := c.doFS(req)
	if err != nil {
		return nil, 0, err
	}
	if length == 0 {
		resp.Body.Close()
		return http.NoBody, 0, nil
	}
	return resp.Body, resp.ContentLength, nil
}

// Write stores size bytes of r (all of r when size < 0) as the file at p,
// replacing a file there; mtime, if not zero, is kept as its modification
// time.
func (c *Client) Write(ctx context.Context, root, p string, r io.Reader, size int64, mtime time.Time) (*Entry, error) {
	body := io.NopCloser(r)
	if size == 0 {
		body = http.NoBody
	}
	u := c.fsURL(root, p, "")
	if !mtime.IsZero() {
		u += "?mtime=" + url.QueryEscape(mtime.UTC().Format(time.RFC3339Nano))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	if size < 0 {
		req.ContentLength = -1
	}
	resp, err := c.doFS(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var e Entry
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		return nil, fmt.Errorf("read the node's answer: %w", err)
	}
	return &e, nil
}

func (c *Client) fsOp(ctx context.Context, root, p, op string, in *FSRequest) (*Entry, error) {
	var e Entry
	var body any
	if in != nil {
		body = in
	}
	if err := c.fsJSON(ctx, http.MethodPost, c.fsURL(root, p, op), body, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// Mkdir makes the directory at p (all missing parents too when parents).
func (c *Client) Mkdir(ctx context.Context, root, p string, parents bool) (*Entry, error) {
	op := "mkdir"
	if parents {
		op = "mkdir-p"
	}
	return c.fsOp(ctx, root, p, op, nil)
}

// Remove unlinks the entry at p; a directory must be empty unless
// recursive.
func (c *Client) Remove(ctx context.Context, root, p string, recursive bool) error {
	op := "rm"
	if recursive {
		op = "rm-r"
	}
	_, err := c.fsOp(ctx, root, p, op, nil)
	return err
}

// Rename moves the entry at from to to, both under root.
func (c *Client) Rename(ctx context.Context, root, from, to string) (*Entry, error) {
	return c.fsOp(ctx, root, from, "mv", &FSRequest{To: "/" + strings.TrimPrefix(to, "/")})
}

// Link attaches an existing cap at p.
func (c *Client) Link(ctx context.Context, root, p, capStr string) (*Entry, error) {
	return c.fsOp(ctx, root, p, "ln", &FSRequest{Cap: strings.TrimSpace(capStr)})
}

// LinkMany attaches name -> cap links in the directory at dir, all or none.
func (c *Client) LinkMany(ctx context.Context, root, dir string, links map[string]string) error {
	_, err := c.fsOp(ctx, root, dir, "ln-many", &FSRequest{Links: links})
	return err
}

// SetMetadata changes the modification time (when mtime is not nil) and
// free-form keys of the entry at p.
func (c *Client) SetMetadata(ctx context.Context, root, p string, mtime *time.Time, set map[string]string, del []string) (*Entry, error) {
	return c.fsOp(ctx, root, p, "setmeta", &FSRequest{Mtime: mtime, Set: set, Delete: del})
}
