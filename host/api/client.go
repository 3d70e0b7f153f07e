package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Client calls a node's local API.
type Client struct {
	// BaseURL is the API's URL, "http://127.0.0.1:PORT".
	BaseURL string
	Token   string
	// HTTP is the client used; nil means a plain http.Client (no timeout:
	// transfers may be long; pass a context to bound them).
	HTTP *http.Client
}

// Error is an error answer of the API.
type Error struct {
	Status int    // HTTP status code
	Msg    string // the server's message

	changed bool // an upload by descriptor found the file changed (ErrChanged)
}

func (e *Error) Error() string { return e.Msg }

// Is lets callers branch with errors.Is(err, api.ErrNotFound) and friends.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrBadCap:
		return e.Status == http.StatusBadRequest
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrChanged:
		return e.changed
	}
	return false
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("reach the node's API at %s: %w", c.BaseURL, err)
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		return &Error{Status: resp.StatusCode, Msg: eb.Error}
	}
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = resp.Status
	}
	return &Error{Status: resp.StatusCode, Msg: msg}
}

// Put uploads size bytes of r (all of r when size < 0, sent chunked) and
// returns the read cap.
func (c *Client) Put(ctx context.Context, r io.Reader, size int64) (string, error) {
	body := io.NopCloser(r)
	if size == 0 {
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.BaseURL+"/v1/file?format=json", body)
	if err != nil {
		return "", err
	}
	req.ContentLength = size
	if size < 0 {
		req.ContentLength = -1
	}
	resp, err := c.do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var ur UploadResult
	if err := json.NewDecoder(resp.Body).Decode(&ur); err != nil {
		return "", fmt.Errorf("read upload answer: %w", err)
	}
	if ur.Cap == "" {
		return "", errors.New("read upload answer: no cap in it")
	}
	return ur.Cap, nil
}

// PutFile uploads the regular file f, all of it from offset 0, and
// returns the read cap: the cap Put gives for the same bytes. When the
// node takes uploads by descriptor (fdput.go) it is handed f and reads
// it in place; progress, if set, gets the bytes it read so far (both
// passes: up to twice the size with a convergence secret). Otherwise f
// is sent as a body, and progress gets the bytes sent. f must not change
// until PutFile returns (by descriptor: ErrChanged when it did).
func (c *Client) PutFile(ctx context.Context, f *os.File, progress func(int64)) (string, error) {
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", f.Name())
	}
	capStr, err := c.putFd(ctx, f, progress)
	if !errors.Is(err, errNoFdPath) {
		return capStr, err
	}
	var r io.Reader = io.NewSectionReader(f, 0, st.Size())
	if progress != nil {
		r = &progressBody{r: r, fn: progress}
	}
	return c.Put(ctx, r, st.Size())
}

// progressBody reports the bytes read through it.
type progressBody struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (p *progressBody) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.n += int64(n)
		p.fn(p.n)
	}
	return n, err
}

// Get opens the file a cap names; the caller reads and closes the body.
// size is the file's length. A body that ends early fails its Read with
// io.ErrUnexpectedEOF.
func (c *Client) Get(ctx context.Context, capStr string) (body io.ReadCloser, size int64, err error) {
	return c.GetRange(ctx, capStr, 0, -1)
}

// GetRange reads length bytes from off (to the end when length < 0). A
// body that ends early fails its Read with an error wrapping
// ErrTruncated that carries the node's reason when the node sent one
// (the Tarn-Error trailer), else io.ErrUnexpectedEOF.
func (c *Client) GetRange(ctx context.Context, capStr string, off, length int64) (io.ReadCloser, int64, error) {
	if length == 0 {
		return http.NoBody, 0, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+"/v1/file/"+url.PathEscape(strings.TrimSpace(capStr)), nil)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case off > 0 && length < 0:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	case length >= 0:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	default:
		// A whole file: ask for the reason of a failure mid-stream.
		req.Header.Set("TE", "trailers")
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, 0, err
	}
	return trailerBody(resp)
}

// trailerBody returns a response's body and length: Content-Length, or
// the Tarn-Size header of a chunked whole-file answer, whose body is
// checked against it at EOF (with the Tarn-Error trailer as the reason
// when it falls short).
func trailerBody(resp *http.Response) (io.ReadCloser, int64, error) {
	if resp.ContentLength >= 0 || resp.Header.Get(TarnSize) == "" {
		return resp.Body, resp.ContentLength, nil
	}
	size, err := strconv.ParseInt(resp.Header.Get(TarnSize), 10, 64)
	if err != nil || size < 0 {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("read answer: bad %s header %q", TarnSize, resp.Header.Get(TarnSize))
	}
	return &checkedBody{resp: resp, size: size}, size, nil
}

type checkedBody struct {
	resp *http.Response
	size int64
	n    int64
}

func (b *checkedBody) Read(p []byte) (int, error) {
	n, err := b.resp.Body.Read(p)
	b.n += int64(n)
	if err == io.EOF && b.n != b.size {
		// Trailers are read once the body is at EOF.
		reason := b.resp.Trailer.Get(TarnError)
		if reason == "" {
			return n, fmt.Errorf("%w after %d of %d bytes: %w", ErrTruncated, b.n, b.size, io.ErrUnexpectedEOF)
		}
		return n, fmt.Errorf("%w after %d of %d bytes: %s", ErrTruncated, b.n, b.size, reason)
	}
	return n, err
}

func (b *checkedBody) Close() error { return b.resp.Body.Close() }

// Status reads the node's status (GET /v1/status; the token is sent when
// the Client has one, as a node off the loopback requires).
func (c *Client) Status(ctx context.Context) (*Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+"/v1/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	return &st, nil
}
