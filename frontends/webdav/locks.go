package webdav

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/webdav"
)

// lockSystem holds the WebDAV locks of one root: exclusive and shared
// write locks of depth 0 or infinity, each with a timeout no longer than
// the profile's lock_timeout. It is a webdav.LockSystem for the methods
// x/net/webdav serves; LOCK itself is served here (x/net/webdav answers
// shared locks with 501). Locks live in memory: a restart drops them, as
// clients expect of a lock timeout anyway.
type lockSystem struct {
	maxTimeout time.Duration
	// etag is the ETag of a resource ("", false when it does not exist),
	// for the entity-tag conditions of If headers.
	etag func(ctx context.Context, name string) (string, bool)

	mu    sync.Mutex
	locks map[string]*lock // by token
}

type lock struct {
	token     string
	root      string
	zeroDepth bool
	shared    bool
	owner     string // self-contained XML
	timeout   time.Duration
	expiry    time.Time
}

// maxLocks bounds the locks one root holds.
const maxLocks = 10000

var _ webdav.LockSystem = (*lockSystem)(nil)

func newLockSystem(maxTimeout time.Duration, etag func(context.Context, string) (string, bool)) *lockSystem {
	if maxTimeout <= 0 {
		maxTimeout = 10 * time.Minute
	}
	return &lockSystem{maxTimeout: maxTimeout, etag: etag, locks: map[string]*lock{}}
}

// covers reports whether l locks name.
func (l *lock) covers(name string) bool {
	if name == l.root {
		return true
	}
	return !l.zeroDepth && isUnder(name, l.root)
}

// isUnder reports whether name is strictly below dir.
func isUnder(name, dir string) bool {
	if dir == "/" {
		return name != "/"
	}
	return strings.HasPrefix(name, dir+"/")
}

func (ls *lockSystem) expireLocked(now time.Time) {
	for t, l := range ls.locks {
		if !now.Before(l.expiry) {
			delete(ls.locks, t)
		}
	}
}

// covering lists the live locks on name.
func (ls *lockSystem) coveringLocked(name string) []*lock {
	var out []*lock
	for _, l := range ls.locks {
		if l.covers(name) {
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].token < out[j].token })
	return out
}

// Confirm checks one list of an If header against name0 (the resource
// its conditions are about) and name1: every condition must hold (a lock
// token naming a lock on the resource, an entity tag equal to the
// resource's, either negated by Not), and each named resource that is
// locked must be covered by a token of the list.
func (ls *lockSystem) Confirm(now time.Time, name0, name1 string, conditions ...webdav.Condition) (func(), error) {
	res := name0
	if res == "" {
		res = name1
	}
	res = clean(res)
	var etag string
	var exists, etagDone bool
	for _, c := range conditions {
		var ok bool
		if c.Token != "" {
			ls.mu.Lock()
			ls.expireLocked(now)
			l := ls.locks[c.Token]
			ok = l != nil && l.covers(res)
			ls.mu.Unlock()
		} else {
			if !etagDone {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				etag, exists = ls.etag(ctx, res)
				cancel()
				etagDone = true
			}
			ok = exists && etagEqual(etag, c.ETag)
		}
		if c.Not {
			ok = !ok
		}
		if !ok {
			return nil, webdav.ErrConfirmationFailed
		}
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expireLocked(now)
	for _, name := range []string{name0, name1} {
		if name == "" {
			continue
		}
		held := ls.coveringLocked(clean(name))
		if len(held) == 0 {
			continue
		}
		found := false
		for _, l := range held {
			for _, c := range conditions {
				if !c.Not && c.Token == l.token {
					found = true
				}
			}
		}
		if !found {
			return nil, webdav.ErrConfirmationFailed
		}
	}
	return func() {}, nil
}

// Create is what x/net/webdav calls for a request without an If header:
// the resource must not be locked by anyone. Nothing is recorded (the
// request holds no lock), so two such requests never block each other.
func (ls *lockSystem) Create(now time.Time, d webdav.LockDetails) (string, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expireLocked(now)
	if len(ls.coveringLocked(clean(d.Root))) > 0 {
		return "", webdav.ErrLocked
	}
	return tempToken, nil
}

const tempToken = "tarn:no-lock"

// locked reports whether name is locked (a request without an If header
// may not change it).
func (ls *lockSystem) locked(now time.Time, name string) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expireLocked(now)
	return len(ls.coveringLocked(clean(name))) > 0
}

// anyCovers reports whether a token of the lists names a live lock on
// name.
func (ls *lockSystem) anyCovers(now time.Time, name string, lists []ifList) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expireLocked(now)
	for _, l := range lists {
		for _, c := range l.conditions {
			if lk := ls.locks[c.Token]; c.Token != "" && lk != nil && lk.covers(clean(name)) {
				return true
			}
		}
	}
	return false
}

// create makes a lock, refusing one that overlaps an exclusive lock, or an
// exclusive one that overlaps any lock.
func (ls *lockSystem) create(now time.Time, root string, zeroDepth, shared bool, owner string, timeout time.Duration) (*lock, error) {
	root = clean(root)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expireLocked(now)
	for _, l := range ls.locks {
		overlap := l.covers(root) || (!zeroDepth && (l.root == root || isUnder(l.root, root)))
		if overlap && (!l.shared || !shared) {
			return nil, webdav.ErrLocked
		}
	}
	if len(ls.locks) >= maxLocks {
		return nil, fmt.Errorf("%d locks held already", maxLocks)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	h := hex.EncodeToString(b[:])
	l := &lock{token: "opaquelocktoken:" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:],
		root: root, zeroDepth: zeroDepth, shared: shared, owner: owner}
	ls.setTimeout(l, now, timeout)
	ls.locks[l.token] = l
	return l, nil
}

func (ls *lockSystem) setTimeout(l *lock, now time.Time, d time.Duration) {
	if d <= 0 || d > ls.maxTimeout {
		d = ls.maxTimeout
	}
	l.timeout = d
	l.expiry = now.Add(d)
}

// Refresh extends a lock.
func (ls *lockSystem) Refresh(now time.Time, token string, d time.Duration) (webdav.LockDetails, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expireLocked(now)
	l := ls.locks[token]
	if l == nil {
		return webdav.LockDetails{}, webdav.ErrNoSuchLock
	}
	ls.setTimeout(l, now, d)
	return webdav.LockDetails{Root: l.root, Duration: l.timeout, OwnerXML: l.owner, ZeroDepth: l.zeroDepth}, nil
}

// Unlock removes a lock.
func (ls *lockSystem) Unlock(now time.Time, token string) error {
	if token == tempToken {
		return nil
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expireLocked(now)
	if ls.locks[token] == nil {
		return webdav.ErrNoSuchLock
	}
	delete(ls.locks, token)
	return nil
}

// refresh extends the lock named by token if it covers name.
func (ls *lockSystem) refresh(now time.Time, name, token string, d time.Duration) (*lock, bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expireLocked(now)
	l := ls.locks[token]
	if l == nil || !l.covers(clean(name)) {
		return nil, false
	}
	ls.setTimeout(l, now, d)
	c := *l
	return &c, true
}

// discovery is the DAV:lockdiscovery value of name: its active locks.
func (ls *lockSystem) discovery(name string, now time.Time, prefix string) string {
	ls.mu.Lock()
	ls.expireLocked(now)
	held := ls.coveringLocked(clean(name))
	var b strings.Builder
	for _, l := range held {
		c := *l
		writeActiveLock(&b, &c, now, prefix)
	}
	ls.mu.Unlock()
	return b.String()
}

func writeActiveLock(b *strings.Builder, l *lock, now time.Time, prefix string) {
	scope, depth := "exclusive", "infinity"
	if l.shared {
		scope = "shared"
	}
	if l.zeroDepth {
		depth = "0"
	}
	left := int64(l.expiry.Sub(now).Seconds() + 0.5)
	if left < 0 {
		left = 0
	}
	fmt.Fprintf(b, `<D:activelock xmlns:D="DAV:"><D:locktype><D:write/></D:locktype><D:lockscope><D:%s/></D:lockscope><D:depth>%s</D:depth>`, scope, depth)
	if l.owner != "" {
		fmt.Fprintf(b, `<D:owner>%s</D:owner>`, l.owner)
	}
	root := (&url.URL{Path: path.Join("/", prefix, l.root)}).EscapedPath()
	fmt.Fprintf(b, `<D:timeout>Second-%d</D:timeout><D:locktoken><D:href>%s</D:href></D:locktoken><D:lockroot><D:href>%s</D:href></D:lockroot></D:activelock>`,
		left, xmlEscape(l.token), xmlEscape(root))
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// parseTimeout reads a Timeout header ("Second-600, Infinite"): the first
// value understood; 0 means the longest allowed.
func parseTimeout(s string) time.Duration {
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if strings.EqualFold(v, "Infinite") {
			return 0
		}
		if n, ok := strings.CutPrefix(v, "Second-"); ok {
			if secs, err := strconv.ParseUint(n, 10, 32); err == nil && secs > 0 {
				return time.Duration(secs) * time.Second
			}
		}
	}
	return 0
}

// lockInfo is a LOCK request body.
type lockInfo struct {
	shared, exclusive, write bool
	owner                    string
}

// maxLockBody bounds a LOCK request body.
const maxLockBody = 64 << 10

// readLockInfo parses a DAV:lockinfo body; an empty body (a refresh)
// gives ok false.
func readLockInfo(r io.Reader) (li lockInfo, ok bool, err error) {
	body, err := io.ReadAll(io.LimitReader(r, maxLockBody+1))
	if err != nil {
		return li, false, fmt.Errorf("read lock body: %w", err)
	}
	if len(body) > maxLockBody {
		return li, false, fmt.Errorf("lock body over %d bytes", maxLockBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return li, false, nil
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	var stack []xml.Name
	var owner *bytes.Buffer
	var oenc *xml.Encoder
	ownerDepth := 0
	for {
		t, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return li, false, fmt.Errorf("lock body: %w", err)
		}
		if owner != nil {
			switch t := t.(type) {
			case xml.EndElement:
				if len(stack) == ownerDepth {
					oenc.Flush()
					li.owner = owner.String()
					owner = nil
					stack = stack[:len(stack)-1]
					continue
				}
				stack = stack[:len(stack)-1]
			case xml.StartElement:
				stack = append(stack, t.Name)
				// Re-encode with namespaces declared on each element, so the
				// owner XML stands on its own in any response.
				var attrs []xml.Attr
				for _, a := range t.Attr {
					if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
						continue
					}
					attrs = append(attrs, a)
				}
				t.Attr = attrs
				if err := oenc.EncodeToken(t); err != nil {
					return li, false, fmt.Errorf("lock owner: %w", err)
				}
				continue
			}
			if err := oenc.EncodeToken(xml.CopyToken(t)); err != nil {
				return li, false, fmt.Errorf("lock owner: %w", err)
			}
			continue
		}
		switch t := t.(type) {
		case xml.StartElement:
			stack = append(stack, t.Name)
			if t.Name.Space != "DAV:" {
				continue
			}
			switch {
			case len(stack) == 1 && t.Name.Local != "lockinfo":
				return li, false, errors.New("lock body is not a DAV:lockinfo")
			case len(stack) == 3 && stack[1].Local == "lockscope" && t.Name.Local == "exclusive":
				li.exclusive = true
			case len(stack) == 3 && stack[1].Local == "lockscope" && t.Name.Local == "shared":
				li.shared = true
			case len(stack) == 3 && stack[1].Local == "locktype" && t.Name.Local == "write":
				li.write = true
			case len(stack) == 2 && t.Name.Local == "owner":
				owner = &bytes.Buffer{}
				oenc = xml.NewEncoder(owner)
				ownerDepth = len(stack)
			}
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
	}
	if li.shared == li.exclusive || !li.write {
		return li, false, errors.New("lock body needs one lockscope (exclusive or shared) and locktype write")
	}
	return li, true, nil
}

// serveLock answers LOCK: a new lock (creating an empty file where
// nothing is), or a refresh when the body is empty.
func (s *session) serveLock(w http.ResponseWriter, r *http.Request, name string) {
	now := time.Now()
	timeout := s.h.lockTimeout(parseTimeout(r.Header.Get("Timeout")))
	li, isNew, err := readLockInfo(r.Body)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	var l *lock
	status := http.StatusOK
	if !isNew {
		if r.Header.Get("If") == "" {
			s.fail(w, r, http.StatusBadRequest, errors.New("a LOCK without a body refreshes a lock: send its token in an If header, or a lockinfo body for a new lock"))
			return
		}
		lists, err := parseIf(r.Header.Get("If"))
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, err)
			return
		}
		for _, list := range lists {
			for _, c := range list.conditions {
				if c.Token != "" && !c.Not && l == nil {
					l, _ = s.ls.refresh(now, name, c.Token, timeout)
				}
			}
		}
		if l == nil {
			s.fail(w, r, http.StatusPreconditionFailed, errors.New("refresh: no lock of the If header's tokens covers this resource"))
			return
		}
	} else {
		zero := false
		switch r.Header.Get("Depth") {
		case "", "infinity":
		case "0":
			zero = true
		default:
			s.fail(w, r, http.StatusBadRequest, errors.New("LOCK Depth must be 0 or infinity"))
			return
		}
		if _, err := s.fs.d.Stat(r.Context(), name); err != nil {
			if !isNotExist(err) {
				s.failErr(w, r, err)
				return
			}
			if err := s.fs.refuseApple(name); err != nil {
				s.failErr(w, r, err)
				return
			}
			if _, err := s.fs.d.Stat(r.Context(), path.Dir(name)); err != nil {
				s.fail(w, r, http.StatusConflict, fmt.Errorf("lock %s: parent: %w", name, err))
				return
			}
		}
		l, err = s.ls.create(now, name, zero, li.shared, li.owner, timeout)
		if errors.Is(err, webdav.ErrLocked) {
			s.fail(w, r, webdav.StatusLocked, fmt.Errorf("lock %s: locked already", name))
			return
		}
		if err != nil {
			s.fail(w, r, http.StatusServiceUnavailable, fmt.Errorf("lock %s: %w", name, err))
			return
		}
		// An unmapped URL gets an empty file (RFC 4918 section 7.3).
		if _, err := s.fs.d.Stat(r.Context(), name); isNotExist(err) {
			f, err := s.fs.OpenFile(r.Context(), name, os.O_CREATE|os.O_TRUNC, 0)
			if err == nil {
				err = f.Close()
			}
			if err != nil {
				s.ls.Unlock(now, l.token)
				s.failErr(w, r, err)
				return
			}
			status = http.StatusCreated
		}
		w.Header().Set("Lock-Token", "<"+l.token+">")
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n" + `<D:prop xmlns:D="DAV:"><D:lockdiscovery>`)
	writeActiveLock(&b, l, now, s.prefix)
	b.WriteString(`</D:lockdiscovery></D:prop>`)
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, b.String())
}
