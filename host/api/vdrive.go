package api

// The vdrive part of the API: path operations under a directory cap, done
// by the node (which holds the grid client) for the CLI, which never
// touches the grid itself.
//
//	POST /v1/dir                               new empty directory -> DirCaps
//	GET  /v1/fs/{dircap}/{path...}?op=stat     Entry
//	GET  /v1/fs/{dircap}/{path...}?op=list     one Entry per line (JSON lines), streamed
//	GET  /v1/fs/{dircap}/{path...}             the file's bytes (Range, If-Range, ETag)
//	PUT  /v1/fs/{dircap}/{path...}             store the body as the file there -> Entry
//	POST /v1/fs/{dircap}/{path...}?op=OP       mkdir, mkdir-p, rm, rm-r, mv, ln, ln-many, setmeta
//
// Errors are ErrorBody plus a "kind" that names the vdrive sentinel, so the
// client can give errors.Is(err, vdrive.ErrNotExist) back to its caller.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/vdrive"
)

// Entry is one directory entry (or the root) as the API shows it.
type Entry struct {
	Name     string            `json:"name"`
	Type     string            `json:"type"` // "file" or "dir"
	Size     int64             `json:"size"` // bytes of a file; entries of a directory when stat'ed as the root
	Ctime    time.Time         `json:"ctime,omitzero"`
	Mtime    time.Time         `json:"mtime,omitzero"`
	ReadCap  string            `json:"read_cap"`
	WriteCap string            `json:"write_cap,omitempty"` // directories and mutable files reached by a write cap
	Extra    map[string]string `json:"extra,omitempty"`
}

// IsDir reports whether the entry is a directory.
func (e *Entry) IsDir() bool { return e.Type == "dir" }

// DirCaps are the three caps of a directory.
type DirCaps struct {
	WriteCap  string `json:"write_cap,omitempty"`
	ReadCap   string `json:"read_cap"`
	VerifyCap string `json:"verify_cap"`
}

// FSRequest is the JSON body of POST ops that need more than a path.
type FSRequest struct {
	// To is the destination path of mv, under the same dircap.
	To string `json:"to,omitempty"`
	// Cap is what ln attaches.
	Cap string `json:"cap,omitempty"`
	// Links (name -> cap) are what ln-many attaches in the directory, all
	// or none.
	Links map[string]string `json:"links,omitempty"`
	// Mtime, when set, is the new modification time (setmeta).
	Mtime *time.Time `json:"mtime,omitempty"`
	// Set and Delete change free-form metadata keys (setmeta).
	Set    map[string]string `json:"set,omitempty"`
	Delete []string          `json:"delete,omitempty"`
}

// FSErrorBody is the JSON of an error answer of /v1/fs and /v1/dir.
type FSErrorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}

// Error kinds of FSErrorBody, one per vdrive sentinel.
const (
	KindNotExist = "not-exist"
	KindExist    = "exist"
	KindNotDir   = "not-dir"
	KindIsDir    = "is-dir"
	KindNotEmpty = "not-empty"
	KindReadOnly = "read-only"
	KindConflict = "conflict"
	KindBadName  = "bad-name"
	// KindNameTooLong is also a bad name: a client that knows only
	// KindBadName still branches right on ErrBadName.
	KindNameTooLong = "name-too-long"
	KindInvalid     = "invalid"
	KindBadCap      = "bad-cap"
	KindCorrupt     = "corrupt"
)

// kinds pairs each kind with its sentinel and status code, most specific
// first (ErrBadName is also fs.ErrInvalid; ErrReadOnly fs.ErrPermission).
var kinds = []struct {
	kind   string
	err    error
	status int
}{
	{KindReadOnly, vdrive.ErrReadOnly, http.StatusForbidden},
	{KindNameTooLong, vdrive.ErrNameTooLong, http.StatusBadRequest},
	{KindBadName, vdrive.ErrBadName, http.StatusBadRequest},
	{KindNotExist, vdrive.ErrNotExist, http.StatusNotFound},
	{KindExist, vdrive.ErrExist, http.StatusConflict},
	{KindNotDir, vdrive.ErrNotDir, http.StatusConflict},
	{KindIsDir, vdrive.ErrIsDir, http.StatusConflict},
	{KindNotEmpty, vdrive.ErrNotEmpty, http.StatusConflict},
	{KindConflict, vdrive.ErrConflict, http.StatusConflict},
	{KindBadCap, ErrBadCap, http.StatusBadRequest},
	{KindBadCap, cap.ErrSyntax, http.StatusBadRequest},
	{KindBadCap, cap.ErrUnknownKind, http.StatusBadRequest},
	{KindCorrupt, vdrive.ErrCorrupt, http.StatusBadGateway},
	{KindInvalid, vdrive.ErrInvalid, http.StatusBadRequest},
}

// FSStatus maps a vdrive error to its status code and kind.
func FSStatus(err error) (int, string) {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.status, k.kind
		}
	}
	return StatusCode(err), ""
}

// sentinelOf is the vdrive sentinel of a kind (nil if none).
func sentinelOf(kind string) error {
	if kind == KindNameTooLong {
		// Matches ErrNameTooLong and everything a bad name matches.
		return &vdrive.NameTooLongError{}
	}
	for _, k := range kinds {
		if k.kind == kind {
			return k.err
		}
	}
	return nil
}

// maxFSBody bounds a POST body (ln-many of many links).
const maxFSBody = 16 << 20

// drivesMax bounds the drives kept open (one per root cap in use).
const drivesMax = 64

// fsAPI serves /v1/fs and /v1/dir over a Store.
type fsAPI struct {
	s     *Server
	store vdrive.Store

	mu     sync.Mutex
	drives map[string]*vdrive.Drive
}

// mountFS adds the vdrive routes to mux (when the node gave a Store).
func (s *Server) mountFS(mux *http.ServeMux) {
	if s.cfg.Store == nil {
		return
	}
	a := &fsAPI{s: s, store: s.cfg.Store, drives: map[string]*vdrive.Drive{}}
	mux.HandleFunc("POST /v1/dir", a.newDir)
	for _, p := range []string{"/v1/fs/{dircap}", "/v1/fs/{dircap}/{path...}"} {
		mux.HandleFunc("GET "+p, a.get) // also HEAD
		mux.HandleFunc("PUT "+p, a.put)
		mux.HandleFunc("POST "+p, a.post)
	}
}

// drive opens (or reuses) the drive of a root cap: a drive keeps decoded
// directory chunks, which never go stale, so reuse saves reads.
func (a *fsAPI) drive(rootCap string) (*vdrive.Drive, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if d, ok := a.drives[rootCap]; ok {
		return d, nil
	}
	d, err := vdrive.New(a.store, rootCap, vdrive.WithCache(20_000))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCap, err)
	}
	if len(a.drives) >= drivesMax {
		clear(a.drives)
	}
	a.drives[rootCap] = d
	return d, nil
}

func (a *fsAPI) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	code, kind := FSStatus(err)
	if code >= 500 {
		a.s.failures.Add(1)
	}
	noteError(r, err)
	args := []any{"method", r.Method, "path", shortCap(r.URL.Path), "status", code, "error", err}
	if code == http.StatusNotFound && (op == "stat" || op == "list") {
		// A stat of a missing path is how callers ask whether it exists.
		a.s.log.Debug(op+" refused", args...)
	} else {
		logFailure(a.s.log, code, op, args...)
	}
	writeJSON(w, code, FSErrorBody{Error: err.Error(), Kind: kind})
}

// target is the drive and path of a /v1/fs request.
func (a *fsAPI) target(r *http.Request) (*vdrive.Drive, string, error) {
	d, err := a.drive(r.PathValue("dircap"))
	if err != nil {
		return nil, "", err
	}
	p := "/" + r.PathValue("path")
	// The path comes unescaped, so a name holding "/" as %2F would be cut
	// in two, and "a%2Fb" would write b into folder a. No name holds "/":
	// refused, as Apache (AllowEncodedSlashes Off) and nginx's WebDAV do.
	if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1/fs/"); ok {
		if _, names, ok := strings.Cut(rest, "/"); ok && strings.Contains(strings.ToLower(names), "%2f") {
			return nil, "", &fs.PathError{Op: "path", Path: p,
				Err: fmt.Errorf("%w: a name holds \"/\" (%%2F); names cannot contain \"/\"", vdrive.ErrBadName)}
		}
	}
	return d, p, nil
}

func (a *fsAPI) newDir(w http.ResponseWriter, r *http.Request) {
	wc, err := vdrive.NewRoot(r.Context(), a.store)
	if err != nil {
		a.fail(w, r, "create directory", err)
		return
	}
	writeJSON(w, http.StatusCreated, CapsOf(wc))
}

// CapsOf lists a directory write cap's three forms.
func CapsOf(wc cap.DirWrite) DirCaps {
	rc := wc.ReadCap()
	return DirCaps{WriteCap: wc.String(), ReadCap: rc.String(), VerifyCap: rc.Verify().String()}
}

func entryOf(i *vdrive.Info) Entry {
	m := i.Metadata()
	e := Entry{Name: i.Name(), Type: m.Type.String(), Size: m.Size, Ctime: m.Ctime, Mtime: m.Mtime,
		ReadCap: i.ReadCap(), WriteCap: i.WriteCap(), Extra: m.Extra}
	return e
}

func (a *fsAPI) get(w http.ResponseWriter, r *http.Request) {
	d, p, err := a.target(r)
	if err != nil {
		a.fail(w, r, "open", err)
		return
	}
	ctx := r.Context()
	switch op := r.URL.Query().Get("op"); op {
	case "stat":
		info, err := d.Stat(ctx, p)
		if err != nil {
			a.fail(w, r, "stat", err)
			return
		}
		e := entryOf(info)
		if p == "/" {
			e.WriteCap = ""
			if !d.ReadOnly() {
				e.WriteCap = d.RootCap()
			}
		}
		writeJSON(w, http.StatusOK, e)
	case "list":
		infos, err := d.ReadDir(ctx, p)
		if err != nil {
			a.fail(w, r, "list", err)
			return
		}
		// One JSON object per line: a client reads a big directory
		// entry by entry instead of as one document.
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("X-Entries", fmt.Sprint(len(infos)))
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		for _, i := range infos {
			if err := enc.Encode(entryOf(i)); err != nil {
				return // client gone
			}
		}
	case "", "read":
		a.read(w, r, d, p)
	default:
		a.fail(w, r, "get", fmt.Errorf("unknown op %q for GET (want stat, list or read): %w", op, vdrive.ErrInvalid))
	}
}

func (a *fsAPI) read(w http.ResponseWriter, r *http.Request, d *vdrive.Drive, p string) {
	ctx := r.Context()
	info, err := d.Stat(ctx, p)
	if err != nil {
		a.fail(w, r, "read", err)
		return
	}
	if info.IsDir() {
		a.fail(w, r, "read", &fs.PathError{Op: "read", Path: p, Err: vdrive.ErrIsDir})
		return
	}
	f, err := d.Open(ctx, p)
	if err != nil {
		a.fail(w, r, "read", err)
		return
	}
	if c, ok := f.(io.Closer); ok {
		defer c.Close()
	}
	sum := sha256.Sum256([]byte(info.ReadCap()))
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Tarn-Cap", info.ReadCap())
	rd := &errReaderAt{r: f}
	cw := &countingWriter{w: w}
	if wt, ok := f.(io.WriterTo); ok && plainGet(r) {
		streamWhole(w, r, cw, wt, f.Size(), rd)
	} else {
		http.ServeContent(cw, r, "", info.ModTime(), io.NewSectionReader(rd, 0, f.Size()))
	}
	a.s.bytesOut.Add(cw.n)
	noteTarget(r, r.URL.Path, cw.n)
	if rd.err != nil {
		a.s.failures.Add(1)
		noteError(r, rd.err)
		a.s.log.Error("read failed mid-stream", "path", shortCap(r.URL.Path), "sent", cw.n, "size", f.Size(), "error", rd.err)
		return
	}
	if r.Method != http.MethodHead {
		a.s.downloads.Add(1)
	}
}

func (a *fsAPI) put(w http.ResponseWriter, r *http.Request) {
	d, p, err := a.target(r)
	if err != nil {
		a.fail(w, r, "put", err)
		return
	}
	ctx := r.Context()
	cr := &countingReader{r: r.Body}
	size := r.ContentLength
	if size < 0 {
		size = -1
	}
	err = d.Put(ctx, p, cr, size, nil)
	a.s.bytesIn.Add(cr.n)
	if err != nil {
		a.fail(w, r, "put", err)
		return
	}
	a.s.uploads.Add(1)
	if mt := r.URL.Query().Get("mtime"); mt != "" {
		if t, err := time.Parse(time.RFC3339Nano, mt); err == nil {
			err = d.SetMetadata(ctx, p, func(m *vdrive.Metadata) error { m.Mtime = t.UTC(); return nil })
			if err != nil {
				a.fail(w, r, "put", err)
				return
			}
		}
	}
	a.stat(ctx, w, r, d, p, http.StatusCreated)
}

func (a *fsAPI) stat(ctx context.Context, w http.ResponseWriter, r *http.Request, d *vdrive.Drive, p string, code int) {
	info, err := d.Stat(ctx, p)
	if err != nil {
		a.fail(w, r, "stat", err)
		return
	}
	writeJSON(w, code, entryOf(info))
}

func (a *fsAPI) post(w http.ResponseWriter, r *http.Request) {
	d, p, err := a.target(r)
	if err != nil {
		a.fail(w, r, "post", err)
		return
	}
	ctx := r.Context()
	op := r.URL.Query().Get("op")
	var req FSRequest
	if r.ContentLength != 0 {
		dec := json.NewDecoder(io.LimitReader(r.Body, maxFSBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			a.fail(w, r, op, fmt.Errorf("%s: request body: %v: %w", op, err, vdrive.ErrInvalid))
			return
		}
	}
	switch op {
	case "mkdir":
		err = d.Mkdir(ctx, p)
	case "mkdir-p":
		err = d.MkdirAll(ctx, p)
	case "rm":
		err = d.Remove(ctx, p)
	case "rm-r":
		// rm -r of nothing is an error for a person (RemoveAll's nil is
		// for scripts); say so.
		if _, err = d.Stat(ctx, p); err == nil {
			err = d.RemoveAll(ctx, p)
		}
	case "mv":
		if req.To == "" {
			err = fmt.Errorf("mv %s: no destination (\"to\"): %w", p, vdrive.ErrInvalid)
			break
		}
		err = d.Rename(ctx, p, req.To)
		if err == nil {
			a.stat(ctx, w, r, d, req.To, http.StatusOK)
			return
		}
	case "ln":
		err = d.Link(ctx, p, req.Cap)
	case "ln-many":
		err = d.LinkMany(ctx, p, req.Links)
	case "setmeta":
		err = d.SetMetadata(ctx, p, func(m *vdrive.Metadata) error {
			if req.Mtime != nil {
				m.Mtime = req.Mtime.UTC()
			}
			if len(req.Set) > 0 && m.Extra == nil {
				m.Extra = map[string]string{}
			}
			for k, v := range req.Set {
				m.Extra[k] = v
			}
			for _, k := range req.Delete {
				delete(m.Extra, k)
			}
			return nil
		})
	default:
		err = fmt.Errorf("unknown op %q for POST (want mkdir, mkdir-p, rm, rm-r, mv, ln, ln-many or setmeta): %w", op, vdrive.ErrInvalid)
	}
	if err != nil {
		a.fail(w, r, op, err)
		return
	}
	switch op {
	case "rm", "rm-r", "ln-many":
		writeJSON(w, http.StatusOK, struct{}{})
	default:
		a.stat(ctx, w, r, d, p, http.StatusOK)
	}
}
