package api

import (
	"errors"
	"net/url"
)

// Uploads of a local file by descriptor ("fd put"). `tarn put FILE` used
// to send FILE as an HTTP body, which the node copied into a spool file
// (a convergent key needs the whole file before the first segment is
// encrypted) and read back to encode: the CLI read every byte, both
// processes copied it through a socket, and the node wrote it to the
// page cache and read it again. Instead the CLI hands the node the open
// file itself, over a Unix socket (SCM_RIGHTS), and the node reads it in
// place twice, once for the key and once to encode (grid.UploadAt's
// path): no body, no spool.
//
// The socket is an abstract Unix socket (Linux) named after the API's
// TCP address (FdSocketName), so a CLI that finds the API's URL in
// node.json finds it too; it is SOCK_SEQPACKET, one message per request
// and per answer. Both ends check who the other is with SO_PEERCRED: the
// node serves only processes of its own user (uid), and the CLI sends
// its file and the token only to a process of its own user. Any user
// could have bound the name first; the check makes that a refusal (the
// CLI then sends the file as a body, as before), never a leak. The
// request carries the API token as well, as every file route needs.
//
// The node accepts only a regular file opened for reading. It must not
// change while it is read: the node compares the file's size, mtime and
// ctime (nanoseconds, from fstat) before and after the upload and fails
// with ErrChanged when any moved, rather than return a cap whose key
// was hashed over other bytes than the shares hold.

// ErrChanged: a file uploaded by descriptor changed while the node read
// it (409). Its shares may be on the grid, but no cap is returned.
var ErrChanged = errors.New("file changed while it was uploaded")

// fdMagic starts every fd-put request: the protocol and its version.
const fdMagic = "tarn-fd-put 1\n"

// fdAnswer is one message from the node: progress (Read: bytes of the
// file read so far, over both passes) until the last one, which has Cap
// or Error.
type fdAnswer struct {
	Read   int64  `json:"read,omitempty"`
	Cap    string `json:"cap,omitempty"`
	Size   int64  `json:"size,omitempty"`
	Error  string `json:"error,omitempty"`
	Status int    `json:"status,omitempty"`
	Kind   string `json:"kind,omitempty"` // kindChanged for ErrChanged
	Done   bool   `json:"done,omitempty"`
}

const kindChanged = "changed"

// FdSocketName is the name of the abstract Unix socket (without the
// leading @) where the API at baseURL ("http://127.0.0.1:PORT") takes
// uploads by file descriptor; "" for a URL without a host.
func FdSocketName(baseURL string) string {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return ""
	}
	return "tarn-api-fd/" + u.Host
}

// errNoFdPath: the fd path cannot be used (no socket, another user's,
// not Linux); the caller sends the file as a body instead.
var errNoFdPath = errors.New("no fd upload path")
