package webdav

import (
	"fmt"
	"net/http"
)

// tooLarge answers 507 Insufficient Storage to a PUT whose Content-Length
// is more than the grid can store (the quota's Available: the free
// space its servers announce over N/K), before a byte of the body is
// read: a client that sent "Expect: 100-continue" then sends none. A
// quota that cannot be told (no Quota func, an error, nothing announced)
// refuses nothing; the upload then fails if the grid cannot store it.
// It reports whether it answered.
func (s *session) tooLarge(w http.ResponseWriter, r *http.Request, name string) bool {
	if s.fs.quota == nil || r.ContentLength <= 0 {
		return false
	}
	q, err := s.fs.quota(r.Context())
	if err != nil || q.Available <= 0 || r.ContentLength <= q.Available {
		return false
	}
	err = fmt.Errorf("PUT %s: file too large: %d bytes, the grid has room for %d", name, r.ContentLength, q.Available)
	s.logf(r, http.StatusInsufficientStorage, err)
	// Go's server closes the connection after this answer rather than
	// read an unread body of this size.
	http.Error(w, err.Error(), http.StatusInsufficientStorage)
	return true
}
