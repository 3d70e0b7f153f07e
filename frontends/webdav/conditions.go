package webdav

import (
	"errors"
	"fmt"
	"net/http"
)

// preconditions checks If-Match and If-None-Match (RFC 9110 13.1) for a
// method that changes the request's resource other than PUT (which
// checks its own): x/net/webdav looked at them for no method, so a
// DELETE or MOVE guarded by the ETag a client last saw went ahead over
// a file someone had changed since. It answers 412 when one fails and
// reports whether it answered.
func (s *session) preconditions(w http.ResponseWriter, r *http.Request, name string) bool {
	im, inm := r.Header.Get("If-Match"), r.Header.Get("If-None-Match")
	if im == "" && inm == "" {
		return false
	}
	// The current version, not the folder cache's: the point is to
	// catch a change made a moment ago.
	in, err := s.fs.d.Stat(r.Context(), name)
	exists := err == nil
	if err != nil && !isNotExist(err) {
		s.failErr(w, r, fmt.Errorf("%s %s: %w", r.Method, name, err))
		return true
	}
	var etag string
	if exists {
		etag = etagOf(in)
	}
	switch {
	case im != "" && (!exists || !etagListMatch(im, etag)):
		err = errors.New("If-Match does not match")
	case inm != "" && exists && etagListMatch(inm, etag):
		err = errors.New("If-None-Match matches")
	default:
		return false
	}
	s.fail(w, r, http.StatusPreconditionFailed, fmt.Errorf("%s %s: %w", r.Method, name, err))
	return true
}
