package webdav

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/webdav"
	"golang.org/x/text/unicode/norm"

	"github.com/tarnfs/tarn/host/vdrive"
)

// AppleDouble modes: what happens to macOS "._*" and ".DS_Store" files.
const (
	AppleKeep   = "keep"   // like any other file
	AppleHide   = "hide"   // kept, but left out of listings
	AppleRefuse = "refuse" // creating one is refused (403)
)

// isAppleDouble reports whether name is a macOS metadata file.
func isAppleDouble(name string) bool {
	return strings.HasPrefix(name, "._") || name == ".DS_Store"
}

// fileSystem is a webdav.FileSystem over one account's vdrive.
type fileSystem struct {
	d      *drive
	apple  string
	quota  QuotaFunc
	ls     *lockSystem
	prefix string
}

var _ webdav.FileSystem = (*fileSystem)(nil)

// statCache holds the entries a directory listing read during one
// read-only request (PROPFIND), so the per-child Stat and OpenFile that
// x/net/webdav makes cost no grid round trip: a 10,000-entry listing reads
// the directory once.
type statCache struct {
	mu    sync.Mutex
	infos map[string]*vdrive.Info
	quota *Quota
	qerr  error
	qdone bool

	// listAll is set for a PROPFIND allprop or propname (see
	// supportedLockOnce); listed holds the names whose dead properties
	// were asked for once.
	listAll propfindKind
	listed  map[string]bool
}

type statCacheKey struct{}

func withStatCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, statCacheKey{}, &statCache{infos: map[string]*vdrive.Info{}})
}

func cacheOf(ctx context.Context) *statCache {
	c, _ := ctx.Value(statCacheKey{}).(*statCache)
	return c
}

// clean is the canonical form of a WebDAV name ("/" for the root).
// clean is the canonical form of a WebDAV name: "/"-rooted, cleaned, in
// Unicode NFC as vdrive keeps names, so a lock taken on a decomposed name
// (macOS sends NFD) covers the composed one.
func clean(name string) string {
	if name == "" {
		return "/"
	}
	return norm.NFC.String(path.Clean("/" + name))
}

func (fsys *fileSystem) stat(ctx context.Context, name string) (*vdrive.Info, error) {
	name = clean(name)
	c := cacheOf(ctx)
	if c != nil {
		c.mu.Lock()
		in, ok := c.infos[name]
		c.mu.Unlock()
		if ok {
			return in, nil
		}
	}
	in, err := fsys.d.Stat(ctx, name)
	if err == nil && c != nil {
		c.mu.Lock()
		c.infos[name] = in
		c.mu.Unlock()
	}
	return in, err
}

// osErr makes err one that os.IsNotExist, os.IsExist and
// os.IsPermission recognise, as x/net/webdav tests errors with them (they
// see only through one *fs.PathError, not through wrapping).
//
// A path through a file (vdrive.ErrNotDir) names nothing: not found, so
// x/net/webdav answers 404 to a look-up there (PROPPATCH said 405) and
// 409 to a MKCOL or COPY into it (405, read by rclone as "exists", and
// 403).
func osErr(op, name string, err error) error {
	if errors.Is(err, vdrive.ErrNotDir) {
		return &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	for _, target := range []error{fs.ErrNotExist, fs.ErrExist, fs.ErrPermission} {
		if err != nil && errors.Is(err, target) {
			return &fs.PathError{Op: op, Path: name, Err: target}
		}
	}
	return err
}

// Stat describes name.
func (fsys *fileSystem) Stat(ctx context.Context, name string) (os.FileInfo, error) {
	in, err := fsys.stat(ctx, name)
	if err != nil {
		return nil, osErr("stat", name, err)
	}
	return &fileInfo{Info: in, name: clean(name)}, nil
}

// Mkdir makes a directory. A folder the drive's folder cache (at most a
// second old) shows at name is answered "exists" from the cache: rclone
// sends a MKCOL of the folder before every file it uploads, and reading
// the folder's parent again for each cost ten storage calls per file.
// Anything else (a miss, a file) goes to vdrive's Mkdir, which checks the
// current version. A removal made through this node is in the cache at
// once; one made through another node is seen within the cache's ttl.
func (fsys *fileSystem) Mkdir(ctx context.Context, name string, _ os.FileMode) error {
	if err := fsys.refuseApple(name); err != nil {
		return err
	}
	name = clean(name)
	if name != "/" {
		if in, err := fsys.d.StatCached(ctx, name); err == nil && in.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrExist}
		}
	}
	return osErr("mkdir", name, fsys.d.Mkdir(ctx, name))
}

func (fsys *fileSystem) refuseApple(name string) error {
	if fsys.apple == AppleRefuse && isAppleDouble(path.Base(clean(name))) {
		return &fs.PathError{Op: "create", Path: name, Err: errAppleRefused}
	}
	return nil
}

var errAppleRefused = fmt.Errorf("macOS metadata files are refused by this server (apple_double = \"refuse\"): %w", fs.ErrPermission)

// RemoveAll unlinks name and, for a directory, everything under it, in
// one directory change (vdrive.RemoveAll: nothing is deleted from the
// grid, only no longer reachable from here).
func (fsys *fileSystem) RemoveAll(ctx context.Context, name string) error {
	name = clean(name)
	if name == "/" {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrPermission}
	}
	return osErr("remove", name, fsys.d.RemoveAll(ctx, name))
}

// Rename moves oldName to newName (x/net/webdav removes an existing
// target first when the client allows overwriting).
func (fsys *fileSystem) Rename(ctx context.Context, oldName, newName string) error {
	if err := fsys.refuseApple(newName); err != nil {
		return err
	}
	return osErr("rename", oldName, fsys.d.Rename(ctx, clean(oldName), clean(newName)))
}

// OpenFile opens name: for reading (content is fetched only when read),
// or, with O_CREATE or O_TRUNC, as a new file that streams to the grid
// and is linked when closed.
func (fsys *fileSystem) OpenFile(ctx context.Context, name string, flag int, _ os.FileMode) (webdav.File, error) {
	f, err := fsys.openFile(ctx, clean(name), flag)
	if err != nil {
		return nil, osErr("open", name, err)
	}
	return f, nil
}

func (fsys *fileSystem) openFile(ctx context.Context, name string, flag int) (*file, error) {
	if flag&(os.O_CREATE|os.O_TRUNC) != 0 {
		if err := fsys.refuseApple(name); err != nil {
			return nil, err
		}
		in, err := fsys.d.Stat(ctx, name)
		switch {
		case err == nil && in.IsDir():
			return nil, &fs.PathError{Op: "open", Path: name, Err: vdrive.ErrIsDir}
		case err == nil && flag&os.O_EXCL != 0:
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return nil, err
		case err != nil && flag&os.O_CREATE == 0:
			return nil, err
		}
		if err != nil {
			// The parent must exist: a missing one is 409 to the client.
			if _, perr := fsys.d.Stat(ctx, path.Dir(name)); perr != nil {
				return nil, perr
			}
		}
		return &file{fsys: fsys, ctx: ctx, name: name, w: &writeState{}}, nil
	}
	in, err := fsys.stat(ctx, name)
	if err != nil {
		return nil, err
	}
	return &file{fsys: fsys, ctx: ctx, name: name, info: in}, nil
}

// fileInfo is a vdrive entry as x/net/webdav sees it: with an ETag from
// its cap and a content type from its name.
type fileInfo struct {
	*vdrive.Info
	name string // full path
}

var (
	_ webdav.ETager       = (*fileInfo)(nil)
	_ webdav.ContentTyper = (*fileInfo)(nil)
)

// Name is the last element of the path ("/" for the root).
func (fi *fileInfo) Name() string {
	if fi.name == "/" {
		return "/"
	}
	return path.Base(fi.name)
}

// ModTime is the entry's mtime; entries without one (the root) show the
// Unix epoch rather than year 1, which some clients cannot parse.
func (fi *fileInfo) ModTime() time.Time {
	if t := fi.Info.ModTime(); !t.IsZero() {
		return t
	}
	return time.Unix(0, 0).UTC()
}

// ETag is derived from the entry's read cap: an immutable file's cap
// changes exactly when its content does. The cap itself is not shown, as
// it would hand read access to whoever sees the headers.
func (fi *fileInfo) ETag(context.Context) (string, error) {
	return etagOf(fi.Info), nil
}

func etagOf(in *vdrive.Info) string {
	h := sha256.Sum256([]byte("tarn webdav etag\x00" + in.ReadCap()))
	return `"` + hex.EncodeToString(h[:16]) + `"`
}

// ContentType is guessed from the name's extension only, so listing a
// directory never reads file content.
func (fi *fileInfo) ContentType(context.Context) (string, error) {
	return contentType(fi.name), nil
}

func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// file is an open WebDAV resource: a file or directory to read, or a new
// file being written.
type file struct {
	fsys *fileSystem
	ctx  context.Context
	name string
	info *vdrive.Info // nil for a new file until it is linked

	// reading
	rd  vdrive.File
	off int64
	// A read from the start streams the whole file through the grid's
	// read-ahead (io.WriterTo) into a pipe; other reads go through buf,
	// whole chunks at a time.
	stream    *io.PipeReader
	streamOff int64
	buf       []byte
	bufOff    int64

	// listing
	kids    []os.FileInfo
	listed  bool
	listPos int

	// writing
	w *writeState
}

// writeState is a new file's content on its way to the grid.
type writeState struct {
	vw       *vdrive.Writer
	n        int64
	linkCap  string // a copy from another file of the drive: link its cap
	linkSize int64
	props    []webdav.Proppatch // dead properties to set once linked
	closed   bool
	err      error
}

var (
	_ webdav.File            = (*file)(nil)
	_ webdav.DeadPropsHolder = (*file)(nil)
	_ io.ReaderFrom          = (*file)(nil)
)

func (f *file) Stat() (os.FileInfo, error) {
	if f.w != nil && f.info == nil {
		return &newFileInfo{name: f.name, size: f.w.n}, nil
	}
	return &fileInfo{Info: f.info, name: f.name}, nil
}

func (f *file) open() error {
	if f.rd != nil {
		return nil
	}
	if f.info == nil || f.info.IsDir() {
		return &fs.PathError{Op: "read", Path: f.name, Err: vdrive.ErrIsDir}
	}
	rd, err := f.fsys.d.OpenInfo(f.ctx, f.info)
	if err != nil {
		return err
	}
	f.rd = rd
	return nil
}

// readChunk is how much a random-access read fetches at once (a whole
// number of the default 1 MiB segments), so 32 KiB reads do not each
// fetch and decode a segment.
const readChunk = 1 << 20

// streamMin is the smallest file read through the streaming read-ahead.
const streamMin = 2 * readChunk

func (f *file) Read(p []byte) (int, error) {
	if f.w != nil {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	if err := f.open(); err != nil {
		return 0, err
	}
	size := f.rd.Size()
	if f.off >= size {
		return 0, io.EOF
	}
	if rem := size - f.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	if f.stream != nil && f.off != f.streamOff {
		f.stopStream()
	}
	if f.stream == nil && f.off == 0 && size >= streamMin {
		if wt, ok := f.rd.(io.WriterTo); ok {
			pr, pw := io.Pipe()
			go func() {
				_, err := wt.WriteTo(pw)
				pw.CloseWithError(err)
			}()
			f.stream, f.streamOff = pr, 0
		}
	}
	if f.stream != nil {
		n, err := f.stream.Read(p)
		f.off += int64(n)
		f.streamOff = f.off
		if err == io.EOF {
			if f.off < size {
				err = io.ErrUnexpectedEOF
			} else if n > 0 {
				err = nil
			}
		}
		return n, err
	}
	if f.off < f.bufOff || f.off >= f.bufOff+int64(len(f.buf)) {
		start := f.off - f.off%readChunk
		want := min(int64(readChunk), size-start)
		if cap(f.buf) < int(want) {
			f.buf = make([]byte, want)
		}
		f.buf = f.buf[:want]
		n, err := f.rd.ReadAt(f.buf, start)
		if n < len(f.buf) {
			f.buf = f.buf[:0]
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		f.bufOff = start
	}
	n := copy(p, f.buf[f.off-f.bufOff:])
	f.off += int64(n)
	return n, nil
}

// stopStream ends a streaming read (its goroutine's next write fails).
func (f *file) stopStream() {
	if f.stream != nil {
		f.stream.CloseWithError(errClosed)
		f.stream = nil
	}
}

var errClosed = errors.New("webdav: file closed")

func (f *file) Seek(offset int64, whence int) (int64, error) {
	if f.w != nil {
		// A new file is written front to back; only "where am I" works.
		if whence == io.SeekCurrent && offset == 0 || whence == io.SeekStart && offset == f.w.n {
			return f.w.n, nil
		}
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: errors.ErrUnsupported}
	}
	size := f.info.Size()
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = f.off + offset
	case io.SeekEnd:
		abs = size + offset
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	if abs < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	f.off = abs
	return abs, nil
}

// Readdir lists a directory (x/net/webdav asks for all entries at once).
// The entries go into the request's stat cache, if any.
func (f *file) Readdir(count int) ([]os.FileInfo, error) {
	if f.w != nil || f.info == nil || !f.info.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: vdrive.ErrNotDir}
	}
	if !f.listed {
		infos, err := f.fsys.d.ReadDir(f.ctx, f.name)
		if err != nil {
			return nil, err
		}
		c := cacheOf(f.ctx)
		if c != nil {
			c.mu.Lock()
		}
		for _, in := range infos {
			if f.fsys.apple == AppleHide && isAppleDouble(in.Name()) {
				continue
			}
			p := path.Join(f.name, in.Name())
			f.kids = append(f.kids, &fileInfo{Info: in, name: p})
			if c != nil {
				c.infos[p] = in
			}
		}
		if c != nil {
			c.mu.Unlock()
		}
		f.listed = true
	}
	rest := f.kids[f.listPos:]
	if count <= 0 {
		f.listPos = len(f.kids)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n := min(count, len(rest))
	f.listPos += n
	return rest[:n], nil
}

// Write streams p to the grid.
func (f *file) Write(p []byte) (int, error) {
	if f.w == nil {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrPermission}
	}
	w := f.w
	if w.err != nil {
		return 0, w.err
	}
	if w.linkCap != "" {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrInvalid}
	}
	if w.vw == nil {
		vw, err := f.fsys.d.Create(f.ctx, f.name)
		if err != nil {
			w.err = err
			return 0, err
		}
		w.vw = vw
	}
	n, err := w.vw.Write(p)
	w.n += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// ReadFrom copies from r; when r is a file of the same drive (a WebDAV
// COPY), the new file links the source's immutable cap instead of
// downloading and uploading its bytes.
func (f *file) ReadFrom(r io.Reader) (int64, error) {
	if src, ok := r.(*file); ok && f.w != nil && f.w.vw == nil && f.w.n == 0 &&
		src.fsys.d == f.fsys.d && src.w == nil && src.info != nil && !src.info.IsDir() && src.info.ReadCap() != "" {
		f.w.linkCap = src.info.ReadCap()
		f.w.linkSize = src.info.Size()
		return src.info.Size(), nil
	}
	return io.Copy(writerOnly{f}, r)
}

type writerOnly struct{ io.Writer }

// Close of a new file finishes its upload and links it at its name (an
// empty file when nothing was written), then sets any dead properties.
func (f *file) Close() error {
	if f.w == nil {
		f.stopStream()
		return nil
	}
	w := f.w
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		if w.vw != nil {
			w.vw.Abort()
		}
		return w.err
	}
	switch {
	case w.linkCap != "":
		if err := f.fsys.d.Link(f.ctx, f.name, w.linkCap); err != nil {
			w.err = err
			return err
		}
	default:
		if w.vw == nil {
			vw, err := f.fsys.d.Create(f.ctx, f.name)
			if err != nil {
				w.err = err
				return err
			}
			w.vw = vw
		}
		if err := w.vw.Close(); err != nil {
			w.err = err
			return err
		}
	}
	if len(w.props) > 0 {
		if _, err := f.applyPatch(w.props); err != nil {
			w.err = err
			return err
		}
	}
	// A new file's entry is what its link made, unless a copy linked it
	// or dead properties changed it since.
	if w.vw != nil && len(w.props) == 0 {
		if l := w.vw.Linked(); l.Info != nil {
			f.info = l.Info
			return nil
		}
	}
	in, err := f.fsys.d.Stat(f.ctx, f.name)
	if err != nil {
		w.err = err
		return err
	}
	f.info = in
	return nil
}

// newFileInfo describes a file still being written.
type newFileInfo struct {
	name string
	size int64
}

func (i *newFileInfo) Name() string       { return path.Base(i.name) }
func (i *newFileInfo) Size() int64        { return i.size }
func (i *newFileInfo) Mode() fs.FileMode  { return 0o644 }
func (i *newFileInfo) ModTime() time.Time { return time.Time{} }
func (i *newFileInfo) IsDir() bool        { return false }
func (i *newFileInfo) Sys() any           { return nil }
