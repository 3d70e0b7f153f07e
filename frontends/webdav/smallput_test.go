package webdav

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/vdrive"
)

// failingStore fails the uploads of bodies of one size (0: none).
type failingStore struct {
	vdrive.Store
	failSize atomic.Int64
}

func (s *failingStore) Upload(ctx context.Context, r io.Reader, size int64, progress func(int64)) (cap.Cap, error) {
	if n := s.failSize.Load(); n != 0 {
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		if int64(len(b)) == n {
			return nil, errors.New("test: upload refused")
		}
		r = bytes.NewReader(b)
	}
	return s.Store.Upload(ctx, r, size, progress)
}

// put sends a PUT with a known Content-Length (as rclone, Finder and
// Explorer do) or, with chunked set, without one.
func (e *env) put(t testing.TB, path string, body []byte, chunked bool) resp {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // hides the length: sent chunked
	}
	req, err := http.NewRequest("PUT", e.url+strings.TrimPrefix(path, "/"), r)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("alice", alicePW)
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

// TestPutSizes: bodies held in memory (small, with a Content-Length) and
// streamed ones (large or chunked) come back byte for byte; a new name
// answers 201 and a replaced one 204, each with the ETag a GET then
// shows.
func TestPutSizes(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"empty", 0, false},
		{"one-byte", 1, false},
		{"literal", 55, false},
		{"past-literal", 56, false},
		{"4KiB", 4096, false},
		{"4KiB-chunked", 4096, true},
		{"largest-in-memory", smallPut, false},
		{"first-streamed", smallPut + 1, false},
		{"two-segments", 2<<20 + 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := "/sizes-" + tc.name
			for round, want := range []int{http.StatusCreated, http.StatusNoContent} {
				body := pseudo(tc.size + round)
				if tc.size > 0 {
					body[0] = byte(round) // each round other bytes
				}
				r := e.put(t, p, body, tc.chunked)
				if r.status != want {
					t.Fatalf("round %d: PUT %d %s, want %d", round, r.status, r.body, want)
				}
				g := e.must(t, http.StatusOK, "GET", p, nil, "")
				if g.body != string(body) {
					t.Fatalf("round %d: GET returns %d bytes, other than the %d put", round, len(g.body), len(body))
				}
				if g.header.Get("ETag") != r.header.Get("ETag") || r.header.Get("ETag") == "" {
					t.Fatalf("round %d: PUT ETag %q, GET ETag %q", round, r.header.Get("ETag"), g.header.Get("ETag"))
				}
			}
		})
	}
}

// TestPutStatusFromLink: the handler's cached view of a folder may miss a
// file another client has just made there; the PUT over it still answers
// 204 (a replacement, as the link found it), keeps the file's ctime, and
// a collection made there meanwhile is refused (405) with nothing
// linked.
func TestPutStatusFromLink(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "MKCOL", "/shared", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/shared/seen", nil, "x") // the handler caches /shared now
	other, err := vdrive.New(e.store, e.root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := other.Put(ctx, "/shared/theirs", strings.NewReader("theirs"), 6, nil); err != nil {
		t.Fatal(err)
	}
	if err := other.Mkdir(ctx, "/shared/dir"); err != nil {
		t.Fatal(err)
	}
	before, err := other.Stat(ctx, "/shared/theirs")
	if err != nil {
		t.Fatal(err)
	}
	if r := e.put(t, "/shared/theirs", []byte("mine"), false); r.status != http.StatusNoContent {
		t.Fatalf("PUT over another client's file: %d %s, want 204", r.status, r.body)
	}
	for _, chunked := range []bool{false, true} {
		if r := e.put(t, "/shared/dir", []byte("not a dir"), chunked); r.status != http.StatusMethodNotAllowed {
			t.Fatalf("PUT (chunked %v) onto another client's new collection: %d %s, want 405", chunked, r.status, r.body)
		}
	}
	fresh, err := vdrive.New(e.store, e.root)
	if err != nil {
		t.Fatal(err)
	}
	after, err := fresh.Stat(ctx, "/shared/theirs")
	if err != nil {
		t.Fatal(err)
	}
	if !after.Metadata().Ctime.Equal(before.Metadata().Ctime) {
		t.Fatalf("ctime %v, was %v", after.Metadata().Ctime, before.Metadata().Ctime)
	}
	if in, err := fresh.Stat(ctx, "/shared/dir"); err != nil || !in.IsDir() {
		t.Fatalf("/shared/dir after refused PUTs: %v", err)
	}
	if g := e.must(t, http.StatusOK, "GET", "/shared/theirs", nil, ""); g.body != "mine" {
		t.Fatalf("GET reads %q", g.body)
	}
}

// TestPutFailuresLinkNothing: a PUT whose upload fails, or whose body
// breaks off before its Content-Length, answers an error and links
// nothing: no new name, and a file already there keeps its bytes.
func TestPutFailuresLinkNothing(t *testing.T) {
	fs := &failingStore{}
	e := newEnv(t, envOpts{wrap: func(s vdrive.Store) vdrive.Store { fs.Store = s; return fs }})
	e.must(t, http.StatusCreated, "MKCOL", "/f", nil, "")
	keep := pseudo(4096)
	e.put(t, "/f/kept", keep, false)
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"small", 4096 + 1, false},
		{"small-chunked", 4096 + 2, true},
		{"streamed", smallPut + 3, false},
	} {
		t.Run("upload-fails-"+tc.name, func(t *testing.T) {
			fs.failSize.Store(int64(tc.size))
			defer fs.failSize.Store(0)
			for _, p := range []string{"/f/new-" + tc.name, "/f/kept"} {
				if r := e.put(t, p, pseudo(tc.size), tc.chunked); r.status < 500 {
					t.Fatalf("PUT %s with a failing upload: %d %s, want 5xx", p, r.status, r.body)
				}
			}
		})
	}
	for _, size := range []int{4096, smallPut + 10} {
		t.Run(fmt.Sprintf("body-breaks-off-%d", size), func(t *testing.T) {
			for _, p := range []string{fmt.Sprintf("/f/cut-%d", size), "/f/kept"} {
				status := brokenPut(t, e, p, size, size/2)
				if status != 0 && status < 400 {
					t.Fatalf("PUT %s of half its body: %d", p, status)
				}
			}
		})
	}
	r := e.must(t, http.StatusMultiStatus, "PROPFIND", "/f/", map[string]string{"Depth": "1"}, "")
	if h := hrefs(t, r.body); len(h) != 2 || !strings.HasSuffix(h[1], "/f/kept") {
		t.Fatalf("/f lists %v, want only kept", h)
	}
	if g := e.must(t, http.StatusOK, "GET", "/f/kept", nil, ""); g.body != string(keep) {
		t.Fatal("/f/kept changed")
	}
}

// brokenPut sends a PUT declaring size bytes, sends only send of them
// and closes its side; it returns the status answered (0: none).
func brokenPut(t *testing.T, e *env, path string, size, send int) int {
	t.Helper()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest("PUT", e.url+strings.TrimPrefix(path, "/"), nil)
	req.SetBasicAuth("alice", alicePW)
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n",
		req.URL.Path, req.Host, req.Header.Get("Authorization"), size)
	conn.Write(pseudo(send))
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// TestConcurrentPutsOneName: transfers that PUT one new name at once all
// succeed, exactly one of them answered 201 (it made the name) and the
// others 204, and the file holds one of their bodies whole.
func TestConcurrentPutsOneName(t *testing.T) {
	e := newEnv(t, envOpts{})
	const n = 6
	bodies := make([][]byte, n)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		bodies[i] = pseudo(4000 + i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.put(t, "/same", bodies[i], false).status
		}()
	}
	wg.Wait()
	created := 0
	for i, s := range statuses {
		switch s {
		case http.StatusCreated:
			created++
		case http.StatusNoContent:
		default:
			t.Fatalf("PUT %d: %d", i, s)
		}
	}
	if created != 1 {
		t.Fatalf("%d PUTs answered 201, want 1: %v", created, statuses)
	}
	got := e.must(t, http.StatusOK, "GET", "/same", nil, "").body
	for _, b := range bodies {
		if got == string(b) {
			return
		}
	}
	t.Fatalf("/same holds %d bytes that no PUT sent", len(got))
}

// TestSmallFileGridCalls: the requests of a desktop client's copy of a
// small file cost what they must and no more: a PUT of a new name into a
// folder the drive has read is one upload and one folder change, with no
// folder read; a PROPFIND of it after and a GET read no folder, and the
// GET opens the file once.
func TestSmallFileGridCalls(t *testing.T) {
	cs := &countingStore{}
	e := newEnv(t, envOpts{wrap: func(s vdrive.Store) vdrive.Store { cs.Store = s; return cs }})
	e.must(t, http.StatusCreated, "MKCOL", "/c", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/c/first", nil, "first") // reads /c once
	body := pseudo(4096)
	for _, tc := range []struct {
		name                          string
		do                            func() resp
		status                        int
		uploads, modifies, reads, opn int64
	}{
		{"PUT new", func() resp { return e.put(t, "/c/f1", body, false) }, http.StatusCreated, 1, 1, 0, 0},
		{"PROPFIND file", func() resp {
			return e.alice(t, "PROPFIND", "/c/f1", map[string]string{"Depth": "1"}, "")
		}, http.StatusMultiStatus, 0, 0, 0, 0},
		{"PROPFIND folder", func() resp {
			return e.alice(t, "PROPFIND", "/c/", map[string]string{"Depth": "1"}, "")
		}, http.StatusMultiStatus, 0, 0, 0, 0},
		{"GET", func() resp { return e.alice(t, "GET", "/c/f1", nil, "") }, http.StatusOK, 0, 0, 0, 1},
		{"HEAD", func() resp { return e.alice(t, "HEAD", "/c/f1", nil, "") }, http.StatusOK, 0, 0, 0, 0},
		{"PUT replace", func() resp { return e.put(t, "/c/f1", body[1:], false) }, http.StatusNoContent, 1, 1, 0, 0},
		{"PUT new chunked", func() resp { return e.put(t, "/c/f2", body, true) }, http.StatusCreated, 1, 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u0, m0, r0, o0 := cs.upload.n.Load(), cs.modify.n.Load(), cs.readSlot.n.Load(), cs.open.n.Load()
			if r := tc.do(); r.status != tc.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
			}
			got := [4]int64{cs.upload.n.Load() - u0, cs.modify.n.Load() - m0, cs.readSlot.n.Load() - r0, cs.open.n.Load() - o0}
			if want := [4]int64{tc.uploads, tc.modifies, tc.reads, tc.opn}; got != want {
				t.Fatalf("uploads, folder changes, folder reads, opens: %v, want %v", got, want)
			}
		})
	}
}

// gatedStore holds folder changes while armed, then makes or fails them.
type gatedStore struct {
	vdrive.Store
	armed   atomic.Bool
	entered chan struct{}
	release chan error // nil: make the change; else fail it with this
}

func (s *gatedStore) Modify(ctx context.Context, c cap.MutableWrite, fn func(old []byte) ([]byte, error)) error {
	if s.armed.Load() {
		s.entered <- struct{}{}
		if err := <-s.release; err != nil {
			return err
		}
	}
	return s.Store.Modify(ctx, c, fn)
}

// TestPutVisibleOnlyOnceLinked: while a PUT's folder change is under way
// the PUT has not answered and a PROPFIND of the folder does not list the
// file; a change that fails answers an error and lists nothing; one that
// is made answers 201 and lists the file.
func TestPutVisibleOnlyOnceLinked(t *testing.T) {
	gs := &gatedStore{entered: make(chan struct{}, 1), release: make(chan error)}
	e := newEnv(t, envOpts{wrap: func(s vdrive.Store) vdrive.Store { gs.Store = s; return gs }})
	e.must(t, http.StatusCreated, "MKCOL", "/h", nil, "")
	list := func() []string {
		r := e.must(t, http.StatusMultiStatus, "PROPFIND", "/h/", map[string]string{"Depth": "1"}, "")
		return hrefs(t, r.body)[1:]
	}
	gs.armed.Store(true)
	for _, tc := range []struct {
		name   string
		fail   error
		status int
		listed int
	}{
		{"fails", errors.New("test: folder change refused"), http.StatusServiceUnavailable, 0},
		{"made", nil, http.StatusCreated, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan resp, 1)
			go func() { done <- e.put(t, "/h/f", pseudo(4096), false) }()
			<-gs.entered
			if got := list(); len(got) != 0 {
				t.Fatalf("during the folder change the folder lists %v", got)
			}
			select {
			case r := <-done:
				t.Fatalf("PUT answered %d before its folder change", r.status)
			default:
			}
			gs.release <- tc.fail
			if r := <-done; r.status != tc.status {
				t.Fatalf("PUT: %d %s, want %d", r.status, r.body, tc.status)
			}
			if got := list(); len(got) != tc.listed {
				t.Fatalf("after the change the folder lists %v, want %d", got, tc.listed)
			}
		})
	}
}
