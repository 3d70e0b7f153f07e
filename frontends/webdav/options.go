package webdav

import (
	"net/http"
	"strings"
)

// Windows' WebDAV client (DavClnt, then the Mini-Redirector) sends an
// OPTIONS of the server's root before it maps any URL, without
// credentials and whatever the prefix: an answer without a DAV header (a
// 401, or a 404 outside the prefix) fails the mapping with 0x80070043
// "The network name cannot be found" (Nextcloud and ownCloud redirect it,
// nginx setups rewrite it). Here such an OPTIONS, and one outside the
// prefix, is answered as the server's: DAV classes and every method,
// without looking anything up, so it tells nothing about the tree.

// allMethods is what this server answers, all resources together.
const allMethods = "OPTIONS, LOCK, GET, HEAD, POST, DELETE, PROPPATCH, COPY, MOVE, UNLOCK, PROPFIND, PUT, MKCOL"

// serveServerOptions answers OPTIONS for the server as a whole.
func serveServerOptions(w http.ResponseWriter) {
	w.Header().Set("Allow", allMethods)
	w.Header().Set("DAV", "1, 2")
	w.Header().Set("MS-Author-Via", "DAV")
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// serveOptions answers a logged-in OPTIONS of name with the methods that
// can work on it for this account: x/net/webdav left GET and HEAD out
// for collections (which answer a listing) and offered every change to
// a read-only account.
func (s *session) serveOptions(w http.ResponseWriter, r *http.Request, name string) {
	in, err := s.fs.stat(r.Context(), name)
	var methods []string
	switch {
	case err == nil && in.IsDir():
		methods = []string{"OPTIONS", "LOCK", "GET", "HEAD", "DELETE", "PROPPATCH", "COPY", "MOVE", "UNLOCK", "PROPFIND"}
	case err == nil:
		methods = []string{"OPTIONS", "LOCK", "GET", "HEAD", "POST", "DELETE", "PROPPATCH", "COPY", "MOVE", "UNLOCK", "PROPFIND", "PUT"}
	case isNotExist(err):
		methods = []string{"OPTIONS", "LOCK", "PUT", "MKCOL"}
	default:
		s.failErr(w, r, err)
		return
	}
	allow := methods[:0:0]
	for _, m := range methods {
		if !s.acct.ReadOnly || !writeMethods[m] {
			allow = append(allow, m)
		}
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	w.Header().Set("DAV", "1, 2")
	w.Header().Set("MS-Author-Via", "DAV")
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}
