package webdav

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// expectedLength is the size a PUT announces: its Content-Length, or for
// a chunked body the X-Expected-Entity-Length macOS Finder sends with it
// (-1: not told; a value that does not parse is not taken).
func expectedLength(r *http.Request) int64 {
	if r.ContentLength >= 0 {
		return r.ContentLength
	}
	v := strings.TrimSpace(r.Header.Get("X-Expected-Entity-Length"))
	if v == "" {
		return -1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// tooLarge answers 507 Insufficient Storage to a PUT whose Content-Length
// (or Finder's X-Expected-Entity-Length) is more than the grid can store (the quota's Available: the free
// space its servers announce over N/K), before a byte of the body is
// read: a client that sent "Expect: 100-continue" then sends none. A
// quota that cannot be told (no Quota func, an error, nothing announced)
// refuses nothing; the upload then fails if the grid cannot store it.
// It reports whether it answered.
func (s *session) tooLarge(w http.ResponseWriter, r *http.Request, name string) bool {
	size := expectedLength(r)
	if s.fs.quota == nil || size <= 0 {
		return false
	}
	q, err := s.fs.quota(r.Context())
	if err != nil || q.Available <= 0 || size <= q.Available {
		return false
	}
	err = fmt.Errorf("PUT %s: file too large: %d bytes, the grid has room for %d", name, size, q.Available)
	s.logf(r, http.StatusInsufficientStorage, err)
	// Go's server closes the connection after this answer rather than
	// read an unread body of this size.
	http.Error(w, err.Error(), http.StatusInsufficientStorage)
	return true
}
