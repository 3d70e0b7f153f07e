package webdav

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/net/webdav"

	"github.com/tarnfs/tarn/host/vdrive"
)

// A DELETE, a MOVE, or a COPY or MOVE that replaces a collection removes
// every member of the tree, locked ones too. RFC 4918 (sections 7.5 and
// 9.6.1) asks for each member's lock token: without it the request fails
// 423 with DAV:lock-token-submitted naming the locked members. And a
// resource that is deleted or moved away takes the locks rooted on it
// along (9.6, 7.6): a lock left behind at the old name made any new file
// there 423 for everyone but its holder until the lock timed out (Office
// deletes its "~$name" owner file with its token and makes it again at
// the next open).

// lockedBelow lists the roots of the live locks strictly below name whose
// tokens are not in tokens.
func (ls *lockSystem) lockedBelow(now time.Time, name string, tokens map[string]bool) []string {
	name = clean(name)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expireLocked(now)
	var out []string
	for t, l := range ls.locks {
		if isUnder(l.root, name) && !tokens[t] {
			out = append(out, l.root)
		}
	}
	sort.Strings(out)
	return out
}

// release destroys the locks rooted below name, and with self the ones
// rooted on name too: their resources are gone.
func (ls *lockSystem) release(name string, self bool) {
	name = clean(name)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for t, l := range ls.locks {
		if isUnder(l.root, name) || (self && l.root == name) {
			delete(ls.locks, t)
		}
	}
}

// submittedTokens is every lock token an If header offers (negated ones
// aside), in any list: a client submits a member's token in a list
// tagged with the member's URL.
func submittedTokens(r *http.Request) map[string]bool {
	out := map[string]bool{}
	lists, err := parseIf(r.Header.Get("If"))
	if err != nil {
		return out
	}
	for _, l := range lists {
		for _, c := range l.conditions {
			if c.Token != "" && !c.Not {
				out[c.Token] = true
			}
		}
	}
	return out
}

// refuseLockedBelow answers 423 with DAV:lock-token-submitted when a lock
// below one of names (each a collection the request removes whole) is
// not submitted in the If header. It reports whether it answered.
func (s *session) refuseLockedBelow(w http.ResponseWriter, r *http.Request, names ...string) bool {
	tokens := submittedTokens(r)
	now := time.Now()
	var roots []string
	for _, n := range names {
		roots = append(roots, s.ls.lockedBelow(now, n, tokens)...)
	}
	if len(roots) == 0 {
		return false
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n" + `<D:error xmlns:D="DAV:"><D:lock-token-submitted>`)
	for _, root := range roots {
		fmt.Fprintf(&b, "<D:href>%s</D:href>", xmlEscape((&url.URL{Path: path.Join("/", s.prefix, root)}).EscapedPath()))
	}
	b.WriteString(`</D:lock-token-submitted></D:error>`)
	s.logf(r, webdav.StatusLocked, fmt.Errorf("%s: locked members without their tokens: %s", r.Method, strings.Join(roots, ", ")))
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(webdav.StatusLocked)
	fmt.Fprint(w, b.String())
	return true
}

// serveDelete answers a DELETE: x/net/webdav's checked only the locks on
// the resource and its ancestors, answered 405 to a grid failure and left
// the resource's locks behind.
func (s *session) serveDelete(w http.ResponseWriter, r *http.Request, name string) {
	ctx := r.Context()
	if name == "/" {
		s.fail(w, r, http.StatusForbidden, fmt.Errorf("DELETE of the root collection"))
		return
	}
	if status, err := s.confirm(r, name); err != nil {
		s.fail(w, r, status, err)
		return
	}
	if _, err := s.fs.d.Stat(ctx, name); err != nil {
		status := statusOf(err)
		if errors.Is(err, vdrive.ErrNotDir) {
			status = http.StatusNotFound // a path through a file names nothing
		}
		s.fail(w, r, status, fmt.Errorf("DELETE %s: %w", name, err))
		return
	}
	if s.refuseLockedBelow(w, r, name) {
		return
	}
	if err := s.fs.RemoveAll(ctx, name); err != nil {
		s.failErr(w, r, fmt.Errorf("DELETE %s: %w", name, err))
		return
	}
	s.ls.release(name, true)
	w.WriteHeader(http.StatusNoContent)
}

// copyLockedBelow refuses a COPY that would replace the collection dst
// while a lock below it is not submitted. It reports whether it answered.
func (s *session) copyLockedBelow(w http.ResponseWriter, r *http.Request, dst string) bool {
	if r.Header.Get("Overwrite") == "F" {
		return false
	}
	in, err := s.fs.d.Stat(r.Context(), dst)
	if err != nil || !in.IsDir() {
		return false
	}
	return s.refuseLockedBelow(w, r, dst)
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
