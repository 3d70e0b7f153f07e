package webdav

import "net/http"

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
