// Package webdav is tarn's WebDAV frontend: golang.org/x/net/webdav over
// each account's vdrive, so desktops (macOS Finder, Windows Explorer,
// davfs2, GNOME Files) and tools (rclone, cadaver) mount and change the
// account's tree. It adds what x/net/webdav lacks: HTTP Basic logins
// against host/accounts, shared locks, entity-tag conditions in If
// headers, dead properties kept in vdrive metadata, ETags from caps,
// content types from names, quota properties, a PROPFIND that lists a
// large directory with one directory read, streaming PUT, COPY of files
// by cap, and refusal of paths that could leave the account's root.
package webdav

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/webdav"

	"github.com/tarnfs/tarn/host/accounts"
	"github.com/tarnfs/tarn/host/vdrive"
)

// Quota is the space of the grid as the quota properties report it.
type Quota struct {
	Available int64 // bytes that may still be stored
	Used      int64 // bytes stored (-1: unknown, not reported)
}

// QuotaFunc reports the quota; nil leaves the quota properties out.
type QuotaFunc func(ctx context.Context) (Quota, error)

// HandlerConfig is what a Handler serves.
type HandlerConfig struct {
	// Prefix is the URL path prefix ("/" or "/dav/").
	Prefix string
	// Accounts may log in (already narrowed to the frontend's list).
	Accounts *accounts.Set
	// DriveFor opens an account's root (called once per account).
	DriveFor func(*accounts.Account) (*vdrive.Drive, error)
	// LockTimeout is the longest lock a client may hold (default 10m).
	LockTimeout time.Duration
	// AppleDouble is "keep" (default), "hide" or "refuse".
	AppleDouble string
	// Quota reports the quota properties (nil: not reported).
	Quota QuotaFunc
	// Logger gets one line per failed request (default: none).
	Logger hclog.Logger
	// Locks holds the WebDAV locks; frontends of one node share one so a
	// lock taken through one listen address holds through the others
	// (nil: the handler's own).
	Locks *Locks
}

// Locks is the WebDAV locks of a node, per root directory: accounts and
// frontends on one root see the same locks.
type Locks struct {
	mu    sync.Mutex
	roots map[string]*lockSystem // by root cap
}

// maxLockTimeout bounds every lock, whatever a profile says.
const maxLockTimeout = 7 * 24 * time.Hour

// lockTimeout is the timeout a LOCK asking for d gets here: d, capped at
// the frontend's lock_timeout (asked for none or "Infinite": the cap).
func (h *Handler) lockTimeout(d time.Duration) time.Duration {
	max := h.cfg.LockTimeout
	if max <= 0 {
		max = 10 * time.Minute
	}
	if d <= 0 || d > max {
		return max
	}
	return d
}

// NewLocks makes an empty lock table.
func NewLocks() *Locks { return &Locks{roots: map[string]*lockSystem{}} }

func (l *Locks) forRoot(root string, make func() *lockSystem) *lockSystem {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.roots[root]
	if ls == nil {
		ls = make()
		l.roots[root] = ls
	}
	return ls
}

// Handler is the WebDAV http.Handler of one frontend.
type Handler struct {
	cfg    HandlerConfig
	prefix string // without the trailing slash; "" for "/"
	log    hclog.Logger

	mu     sync.Mutex
	drives map[string]*vdrive.Drive // by account name
	locks  *Locks
}

var _ http.Handler = (*Handler)(nil)

// NewHandler checks cfg and makes the handler.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Accounts == nil || cfg.Accounts.Len() == 0 {
		return nil, errors.New("webdav: no accounts")
	}
	if cfg.DriveFor == nil {
		return nil, errors.New("webdav: no DriveFor")
	}
	switch cfg.AppleDouble {
	case "":
		cfg.AppleDouble = AppleKeep
	case AppleKeep, AppleHide, AppleRefuse:
	default:
		return nil, fmt.Errorf("webdav: apple_double %q: want keep, hide or refuse", cfg.AppleDouble)
	}
	p := cfg.Prefix
	if p == "" {
		p = "/"
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("webdav: prefix %q must start with /", p)
	}
	p = strings.TrimSuffix(path.Clean(p), "/")
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	locks := cfg.Locks
	if locks == nil {
		locks = NewLocks()
	}
	return &Handler{cfg: cfg, prefix: p, log: log, drives: map[string]*vdrive.Drive{}, locks: locks}, nil
}

// session is one authenticated request's view.
type session struct {
	h      *Handler
	acct   *accounts.Account
	fs     *fileSystem
	ls     *lockSystem
	prefix string
}

func (h *Handler) session(a *accounts.Account) (*session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.drives[a.Name]
	if d == nil {
		var err error
		if d, err = h.cfg.DriveFor(a); err != nil {
			return nil, fmt.Errorf("open the root of account %q: %w", a.Name, err)
		}
		h.drives[a.Name] = d
	}
	ls := h.locks.forRoot(a.RootCap, func() *lockSystem {
		// Each frontend caps its own clients' timeouts (serveLock); the
		// table only bounds them all.
		return newLockSystem(maxLockTimeout, func(ctx context.Context, name string) (string, bool) {
			in, err := d.Stat(ctx, name)
			if err != nil {
				return "", false
			}
			return etagOf(in), true
		})
	})
	fsys := &fileSystem{d: &drive{d}, apple: h.cfg.AppleDouble, quota: h.cfg.Quota, ls: ls, prefix: h.prefix}
	return &session{h: h, acct: a, fs: fsys, ls: ls, prefix: h.prefix}, nil
}

// writeMethods change the tree; a read-only account gets 403 for them.
var writeMethods = map[string]bool{
	"PUT": true, "DELETE": true, "MKCOL": true, "COPY": true, "MOVE": true,
	"PROPPATCH": true, "LOCK": true, "UNLOCK": true, "POST": true,
}

// realm names the Basic-auth protection space.
const realm = "tarn"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == "OPTIONS" && r.Header.Get("Authorization") == "" {
		serveServerOptions(w) // Windows asks first, without credentials
		return
	}
	user, pw, ok := r.BasicAuth()
	if !ok {
		h.unauthorized(w, r, errors.New("no credentials"))
		return
	}
	a, err := h.cfg.Accounts.CheckPassword(r.Context(), user, pw, r.RemoteAddr)
	switch {
	case errors.Is(err, accounts.ErrThrottled):
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many failed logins; try again later", http.StatusTooManyRequests)
		h.log.Warn("login throttled", "remote", r.RemoteAddr, "user", user)
		return
	case err != nil:
		h.unauthorized(w, r, fmt.Errorf("login %q: %w", user, err))
		return
	}
	s, err := h.session(a)
	if err != nil {
		h.log.Error("webdav session", "account", a.Name, "error", err)
		http.Error(w, "cannot open this account's drive; see the node log", http.StatusServiceUnavailable)
		return
	}
	s.serve(w, r)
}

func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`", charset="UTF-8"`)
	http.Error(w, "authentication required", http.StatusUnauthorized)
	h.log.Debug("unauthorized", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "error", err)
}

// name is the request path inside the account's root, checked: a path
// that is not under the prefix, has an encoded slash, NUL, "." or ".."
// components, or invalid UTF-8 is refused.
func (s *session) name(u *url.URL) (string, int, error) {
	if strings.Contains(strings.ToLower(u.RawPath), "%2f") {
		return "", http.StatusBadRequest, fmt.Errorf("encoded slash in %q", u.RawPath)
	}
	p := u.Path
	if s.prefix != "" {
		rest, ok := strings.CutPrefix(p, s.prefix)
		if !ok || (rest != "" && rest[0] != '/') {
			return "", http.StatusNotFound, fmt.Errorf("%q is outside the prefix %s", p, s.prefix)
		}
		p = rest
	}
	if !utf8.ValidString(p) || strings.ContainsRune(p, 0) {
		return "", http.StatusBadRequest, fmt.Errorf("path %q: NUL or invalid UTF-8", p)
	}
	trimmed := strings.Trim(p, "/")
	if trimmed != "" {
		for _, c := range strings.Split(trimmed, "/") {
			if c == "." || c == ".." || c == "" {
				return "", http.StatusBadRequest, fmt.Errorf("path %q: empty, . or .. component", p)
			}
		}
	}
	if _, err := vdrive.SplitPath(p); err != nil {
		return "", http.StatusBadRequest, err
	}
	return clean(p), 0, nil
}

func (s *session) serve(w http.ResponseWriter, r *http.Request) {
	name, status, err := s.name(r.URL)
	if err != nil && status == http.StatusNotFound && r.Method == "OPTIONS" {
		serveServerOptions(w) // outside the prefix: Windows' probe of "/"
		return
	}
	if err != nil {
		s.fail(w, r, status, err)
		return
	}
	if s.acct.ReadOnly && writeMethods[r.Method] {
		s.fail(w, r, http.StatusForbidden, fmt.Errorf("account %q is read-only", s.acct.Name))
		return
	}
	var dst string
	if r.Method == "COPY" || r.Method == "MOVE" {
		u, err := url.Parse(r.Header.Get("Destination"))
		if err != nil || r.Header.Get("Destination") == "" {
			s.fail(w, r, http.StatusBadRequest, fmt.Errorf("%s: bad Destination header", r.Method))
			return
		}
		// Only the path counts: behind a reverse proxy the client names
		// the proxy's scheme and host (https://dav.example.com/...) while
		// this server sees its own Host (x/net/webdav, Apache and
		// wsgidav answer that 502, a known pain; SabreDAV compares paths
		// only, as here). A path outside the prefix is another
		// namespace: 502 (RFC 4918 9.8.5).
		if dst, status, err = s.name(u); err != nil {
			if status == http.StatusNotFound {
				status = http.StatusBadGateway
			}
			s.fail(w, r, status, fmt.Errorf("destination: %w", err))
			return
		}
		// x/net/webdav (a file's COPY) compares the host again.
		r.Header.Set("Destination", u.EscapedPath())
		if dst == name || isUnder(dst, name) || isUnder(name, dst) {
			s.fail(w, r, http.StatusForbidden, fmt.Errorf("%s %s onto %s: source and destination overlap", r.Method, name, dst))
			return
		}
	}
	if s.fs.apple == AppleRefuse {
		target := ""
		switch r.Method {
		case "PUT", "MKCOL", "LOCK", "PROPPATCH":
			target = name
		case "COPY", "MOVE":
			target = dst
		}
		if target != "" && isAppleDouble(path.Base(target)) {
			s.fail(w, r, http.StatusForbidden, errAppleRefused)
			return
		}
	}
	// A new name over vdrive.MaxNewNameLen bytes is 400, here for every
	// method that makes one: x/net/webdav answers MKCOL's refusal with 405
	// (which clients read as "it exists") and a file COPY's with 500. A
	// file written over an existing longer name (an older version's) is
	// replaced in place, so PUT and MOVE let that name through; not a file
	// COPY, which x/net/webdav makes by removing the destination first
	// (the long name would be gone, and then refused as new).
	switch r.Method {
	case "PUT", "MKCOL", "COPY", "MOVE":
		target := name
		if r.Method == "COPY" || r.Method == "MOVE" {
			target = dst
		}
		err := vdrive.CheckNewPath(target)
		if r.Method == "PUT" || r.Method == "MOVE" {
			err = s.fs.d.CheckWritePath(r.Context(), target)
		}
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, fmt.Errorf("%s %s: %w", r.Method, target, err))
			return
		}
	}
	switch r.Method {
	case "DELETE", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK", "MKCOL":
		if s.preconditions(w, r, name) {
			return
		}
	}
	ctx := r.Context()
	switch r.Method {
	case "PUT":
		if s.tooLarge(w, r, name) {
			return
		}
		s.servePut(w, r, name)
		return
	case "COPY":
		if s.copyLockedBelow(w, r, dst) {
			return
		}
		if s.serveCopyTree(w, r, name, dst) {
			return
		}
		// A file: x/net/webdav copies it; locks below a collection it
		// replaced go with their resources.
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if sw.status == http.StatusNoContent {
				s.ls.release(dst, false)
			}
		}()
		w = sw
	case "DELETE":
		s.serveDelete(w, r, name)
		return
	case "MOVE":
		s.serveMove(w, r, name, dst)
		return
	case "LOCK":
		s.serveLock(w, r, name)
		return
	case "PROPFIND":
		switch r.Header.Get("Depth") {
		case "":
			// RFC 4918 says a missing Depth means infinity; a whole-tree
			// walk of a grid is no answer to give by default, and every
			// real client sends Depth. Answer as for 1.
			r.Header.Set("Depth", "1")
		case "infinity":
			w.Header().Set("Content-Type", "application/xml; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?>`+"\n"+`<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>`)
			s.logf(r, http.StatusForbidden, errors.New("PROPFIND Depth infinity is refused; use 0 or 1"))
			return
		}
		if err := checkXMLBody(r); err != nil {
			s.fail(w, r, http.StatusBadRequest, err)
			return
		}
		ctx = withStatCache(ctx)
		if body, ok := r.Body.(*xmlBody); ok {
			cacheOf(ctx).listAll = propfindKindOf(body.b)
		} else {
			cacheOf(ctx).listAll = propfindAllprop // no body
		}
		// Look the resource up here: x/net/webdav answers any failure
		// other than "not found" with 405, where a transient grid error
		// deserves 503 and a retry.
		if _, err := s.fs.stat(ctx, name); err != nil && !isNotExist(err) && !errors.Is(err, vdrive.ErrNotDir) {
			s.failErr(w, r, err)
			return
		}
	case "GET", "HEAD":
		// The look-up here is kept for x/net/webdav's own (OpenFile,
		// Stat) and the read's open: one walk of the path per request.
		ctx = withStatCache(ctx)
		in, err := s.fs.stat(ctx, name)
		if err == nil && in.IsDir() {
			s.serveIndex(w, r, name)
			return
		}
		// Set the type from the name so ServeContent does not read 512
		// bytes of the file to sniff it.
		w.Header().Set("Content-Type", contentType(name))
	case "PROPPATCH":
		if err := checkXMLBody(r); err != nil {
			s.fail(w, r, http.StatusBadRequest, err)
			return
		}
	case "OPTIONS":
		s.serveOptions(w, r, name)
		return
	}
	dh := &webdav.Handler{
		Prefix:     s.prefix,
		FileSystem: s.fs,
		LockSystem: s.ls,
		Logger: func(r *http.Request, err error) {
			if err != nil {
				s.h.log.Debug("request", "account", s.acct.Name, "method", r.Method, "path", r.URL.Path, "error", err)
			}
		},
	}
	dh.ServeHTTP(w, r.WithContext(ctx))
}

func (s *session) logf(r *http.Request, status int, err error) {
	lvl := hclog.Debug
	if status >= 500 {
		lvl = hclog.Warn
	}
	s.h.log.Log(lvl, "request failed", "account", s.acct.Name, "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
}

// fail answers status with a one-line message.
func (s *session) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	s.logf(r, status, err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	msg := webdav.StatusText(status)
	if status < 500 && err != nil {
		msg = err.Error()
	}
	http.Error(w, msg, status)
}

// failErr maps a vdrive error to its status.
func (s *session) failErr(w http.ResponseWriter, r *http.Request, err error) {
	s.fail(w, r, statusOf(err), err)
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// statusOf maps vdrive's sentinels to HTTP statuses.
func statusOf(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, vdrive.ErrBadName):
		return http.StatusBadRequest
	case errors.Is(err, fs.ErrNotExist):
		return http.StatusNotFound
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return http.StatusForbidden
	case errors.Is(err, vdrive.ErrIsDir):
		return http.StatusMethodNotAllowed
	case errors.Is(err, vdrive.ErrConflict):
		return http.StatusServiceUnavailable // changed concurrently: try again
	case errors.Is(err, vdrive.ErrNotDir), errors.Is(err, vdrive.ErrNotEmpty):
		return http.StatusConflict
	case errors.Is(err, fs.ErrExist):
		return http.StatusPreconditionFailed
	case errors.Is(err, fs.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	default:
		// None of vdrive's answers: the grid failed (too few servers
		// answered, a write given up, a link that dropped). That is
		// "try again", which 503 with Retry-After says; 500 told clients
		// the server was broken.
		return http.StatusServiceUnavailable
	}
}

// confirm checks the If header (or, without one, that nobody holds a lock
// on name) for a change of name.
func (s *session) confirm(r *http.Request, name string) (int, error) {
	hdr := r.Header.Get("If")
	now := time.Now()
	if hdr == "" {
		if s.ls.locked(now, name) {
			return webdav.StatusLocked, fmt.Errorf("%s is locked", name)
		}
		return 0, nil
	}
	lists, err := parseIf(hdr)
	if err != nil {
		return http.StatusBadRequest, err
	}
	for _, l := range lists {
		res, ok := s.ifResource(r, l, name)
		if !ok {
			continue
		}
		if _, err := s.ls.Confirm(now, res, "", l.conditions...); err == nil {
			if res != name && s.ls.locked(now, name) {
				if _, err := s.ls.Confirm(now, name, "", tokensOf(l.conditions)...); err != nil {
					continue
				}
			}
			return 0, nil
		}
	}
	// No list holds: 412 (RFC 4918 10.4.1), unless the resource is locked
	// and the header only offers lock tokens, none of them its locks:
	// then the lock is what stops the request, and 423 says so.
	if s.ls.locked(now, name) && onlyTokens(lists) && !s.ls.anyCovers(now, name, lists) {
		return webdav.StatusLocked, fmt.Errorf("%s is locked and the If header names none of its locks", name)
	}
	return http.StatusPreconditionFailed, fmt.Errorf("no list of the If header holds for %s", name)
}

// ifResource is the resource an If header list is about: its tagged
// resource, else untagged (the request's own). ok is false for a list
// about a name outside the drive, which holds for nothing here. As for
// Destination, a tag's scheme and host are not compared: neon (davfs2,
// cadaver) tags lists with the URL it was given, a proxy's behind one.
func (s *session) ifResource(r *http.Request, l ifList, untagged string) (string, bool) {
	if l.resource == "" {
		return untagged, true
	}
	u, err := url.Parse(l.resource)
	if err != nil {
		return "", false
	}
	res, _, err := s.name(u)
	return res, err == nil
}

// onlyTokens reports whether the lists hold no entity-tag condition.
func onlyTokens(lists []ifList) bool {
	for _, l := range lists {
		for _, c := range l.conditions {
			if c.ETag != "" {
				return false
			}
		}
	}
	return true
}

func tokensOf(cs []webdav.Condition) []webdav.Condition {
	var out []webdav.Condition
	for _, c := range cs {
		if c.Token != "" && !c.Not {
			out = append(out, c)
		}
	}
	return out
}

// destParent checks that the parent of a COPY or MOVE destination is a
// collection: 409 when it is not (or missing). The cached folder answers
// a hit; a miss is read again, so a parent made through another node a
// moment ago is found.
func (s *session) destParent(ctx context.Context, dst string) (int, error) {
	dir := path.Dir(dst)
	if in, err := s.fs.d.StatCached(ctx, dir); err == nil && in.IsDir() {
		return 0, nil
	}
	in, err := s.fs.d.Stat(ctx, dir)
	switch {
	case err == nil && in.IsDir():
		return 0, nil
	case err == nil, isNotExist(err), errors.Is(err, vdrive.ErrNotDir):
		return http.StatusConflict, errors.New("the destination's parent collection does not exist")
	default:
		return statusOf(err), err
	}
}

// putBuffer is the copy buffer of a PUT: larger than io.Copy's 32 KiB so
// the upload pipe moves fewer, bigger writes.
const putBuffer = 256 << 10

// servePut stores the body at name, streaming it to the grid; nothing is
// linked unless the whole body arrived and was stored.
func (s *session) servePut(w http.ResponseWriter, r *http.Request, name string) {
	ctx := r.Context()
	if name == "/" || strings.HasSuffix(r.URL.Path, "/") {
		s.fail(w, r, http.StatusMethodNotAllowed, fmt.Errorf("PUT onto a collection (%s)", name))
		return
	}
	if r.Header.Get("Content-Range") != "" {
		s.fail(w, r, http.StatusBadRequest, errors.New("partial PUT (Content-Range) is not supported"))
		return
	}
	mtime, setMtime, err := putMtime(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("PUT %s: %w", name, err))
		return
	}
	if status, err := s.confirm(r, name); err != nil {
		s.fail(w, r, status, err)
		return
	}
	// Without conditions, what is at name matters only to refuse a
	// collection and to answer 201 or 204, and the link that ends the PUT
	// reads the folder's current version and tells both: a miss in the
	// cached folder is taken as it is, so a new file costs no folder read.
	conditional := r.Header.Get("If-Match") != "" || r.Header.Get("If-None-Match") != ""
	stat := s.fs.d.StatCached
	if conditional {
		stat = s.fs.d.Stat
	}
	old, err := stat(ctx, name)
	exists := err == nil
	switch {
	case err != nil && !isNotExist(err):
		s.failErr(w, r, err)
		return
	case exists && old.IsDir():
		s.fail(w, r, http.StatusMethodNotAllowed, fmt.Errorf("PUT onto the collection %s", name))
		return
	}
	if im := r.Header.Get("If-Match"); im != "" && (!exists || !etagListMatch(im, etagOf(old))) {
		s.fail(w, r, http.StatusPreconditionFailed, errors.New("If-Match does not match"))
		return
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && exists && etagListMatch(inm, etagOf(old)) {
		s.fail(w, r, http.StatusPreconditionFailed, errors.New("If-None-Match matches"))
		return
	}
	if !exists {
		parent, err := s.fs.d.Stat(ctx, path.Dir(name))
		if err != nil && !isNotExist(err) && !errors.Is(err, vdrive.ErrNotDir) {
			s.failErr(w, r, fmt.Errorf("PUT %s: parent: %w", name, err))
			return
		}
		if err != nil || !parent.IsDir() {
			s.fail(w, r, http.StatusConflict, fmt.Errorf("PUT %s: the parent collection does not exist", name))
			return
		}
	}
	if err := s.fs.refuseApple(name); err != nil {
		s.failErr(w, r, err)
		return
	}
	var linked vdrive.Linked
	if r.ContentLength >= 0 && r.ContentLength <= smallPut {
		// A small body is read whole first (no more memory than the
		// copy buffer of a streamed one), then stored with its size
		// known, with no pipe or spooling goroutine in between.
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			s.fail(w, r, http.StatusBadRequest, fmt.Errorf("PUT %s: body: %w", name, err))
			return
		}
		if linked, err = s.fs.d.PutLinked(ctx, name, bytes.NewReader(buf), int64(len(buf)), nil); err != nil {
			s.failErr(w, r, fmt.Errorf("PUT %s: %w", name, err))
			return
		}
	} else if linked, err = s.putStream(w, r, name); err != nil {
		return
	}
	if setMtime {
		// With write-behind this goes into the file's journaled link:
		// no folder change of its own.
		if err := s.fs.d.SetMetadata(ctx, name, func(m *vdrive.Metadata) error {
			m.Mtime = mtime
			return nil
		}); err != nil {
			s.failErr(w, r, fmt.Errorf("PUT %s: stored, but setting its mtime failed: %w", name, err))
			return
		}
		w.Header().Set(ocMtimeHeader, "accepted")
	}
	w.Header().Set("ETag", etagOf(linked.Info))
	if linked.Replaced {
		w.WriteHeader(http.StatusNoContent)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
}

// smallPut is the largest PUT body held in memory whole (with a
// Content-Length); larger or unsized bodies stream to the grid.
const smallPut = putBuffer

// putStream stores a large or unsized body as it arrives; on failure it
// has answered the request.
func (s *session) putStream(w http.ResponseWriter, r *http.Request, name string) (vdrive.Linked, error) {
	ctx := r.Context()
	// Checked above: a new file (not OpenFile, which would look again).
	// The upload starts before the body is read, so a grid failure is
	// told apart from a body that broke off.
	nf := &file{fsys: s.fs, ctx: ctx, name: name, w: &writeState{}}
	vw, err := s.fs.d.Create(ctx, name)
	if err != nil {
		s.failErr(w, r, fmt.Errorf("PUT %s: %w", name, err))
		return vdrive.Linked{}, err
	}
	nf.w.vw = vw
	body := &bodyReader{r: r.Body}
	n, err := io.CopyBuffer(writerOnly{nf}, body, make([]byte, putBuffer))
	if want := expectedLength(r); err == nil && r.ContentLength < 0 && want >= 0 && n != want {
		// Finder's chunked PUT announced its size: a body that ends
		// elsewhere is not the file it meant to store.
		body.err = fmt.Errorf("body of %d bytes, X-Expected-Entity-Length said %d", n, want)
		err = body.err
	}
	if err != nil {
		nf.w.err = err
		nf.Close()
		status := statusOf(err)
		if body.err != nil {
			status = http.StatusBadRequest // the body broke off
		}
		s.fail(w, r, status, fmt.Errorf("PUT %s: %w", name, err))
		return vdrive.Linked{}, err
	}
	if err := nf.Close(); err != nil {
		s.failErr(w, r, fmt.Errorf("PUT %s: %w", name, err))
		return vdrive.Linked{}, err
	}
	return vw.Linked(), nil
}

// bodyReader remembers a request body's read error.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// etagListMatch reports whether an If-Match/If-None-Match value ("*" or
// a list of tags) matches etag.
func etagListMatch(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || etagEqual(t, etag) {
			return true
		}
	}
	return false
}

// maxXMLBody bounds a PROPFIND or PROPPATCH body.
const maxXMLBody = 1 << 20

// checkXMLBody reads a PROPFIND or PROPPATCH body (at most maxXMLBody)
// and refuses what x/net/webdav's parser lets through: a namespace prefix
// bound to the empty name (xmlns:p="", not allowed by XML Namespaces
// 1.0). The body is put back for the handler.
func checkXMLBody(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxXMLBody+1))
	if err != nil {
		return fmt.Errorf("read %s body: %w", r.Method, err)
	}
	if len(b) > maxXMLBody {
		return fmt.Errorf("%s body over %d bytes", r.Method, maxXMLBody)
	}
	r.Body = &xmlBody{Reader: bytes.NewReader(b), b: b}
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		t, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s body: %w", r.Method, err)
		}
		if se, ok := t.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if a.Name.Space == "xmlns" && a.Value == "" {
					return fmt.Errorf("%s body: namespace prefix %q bound to the empty name", r.Method, a.Name.Local)
				}
			}
		}
	}
}

// xmlBody is a PROPFIND or PROPPATCH body read whole (checkXMLBody).
type xmlBody struct {
	*bytes.Reader
	b []byte
}

func (*xmlBody) Close() error { return nil }

// serveIndex answers a GET of a collection with a plain HTML list of its
// entries, so a browser pointed at the URL shows the folder.
func (s *session) serveIndex(w http.ResponseWriter, r *http.Request, name string) {
	infos, err := s.fs.d.ReadDir(r.Context(), name)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	base := s.prefix + name
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	var b strings.Builder
	title := html.EscapeString(name)
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head><body>\n<h1>%s</h1>\n<ul>\n", title, title)
	if name != "/" {
		fmt.Fprintf(&b, "<li><a href=\"%s\">../</a></li>\n", html.EscapeString((&url.URL{Path: path.Dir(strings.TrimSuffix(base, "/")) + "/"}).EscapedPath()))
	}
	for _, in := range infos {
		if s.fs.apple == AppleHide && isAppleDouble(in.Name()) {
			continue
		}
		n := in.Name()
		if in.IsDir() {
			n += "/"
		}
		href := (&url.URL{Path: base + n}).EscapedPath()
		fmt.Fprintf(&b, "<li><a href=\"%s\">%s</a></li>\n", html.EscapeString(href), html.EscapeString(n))
	}
	b.WriteString("</ul>\n</body></html>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	if r.Method == "HEAD" {
		return
	}
	io.WriteString(w, b.String())
}
