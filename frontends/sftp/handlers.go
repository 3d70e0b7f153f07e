package sftp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	xsftp "github.com/pkg/sftp"

	"github.com/tarnfs/tarn/host/vdrive"
)

// Space is what statvfs reports: the grid's total and free bytes as this
// account may use them.
type Space struct {
	Total, Free uint64
	// Raw is the servers' free bytes summed (Free is Raw*K/N), and K, N
	// the grid's encoding; 0 when unknown. They only word the refusal of
	// a file too large (sizelimit.go).
	Raw  uint64
	K, N int
}

// DefaultSpace is reported by statvfs when the node cannot tell the
// grid's space (no SpaceFunc): 1 TiB, all free.
var DefaultSpace = Space{Total: 1 << 40, Free: 1 << 40}

// umask is applied to the modes clients ask for at create and mkdir, as
// sftp-server's usual umask (022) does.
const umask = 0o022

// Default modes of vdrive entries without a stored mode.
const (
	defaultFileMode = 0o644
	defaultDirMode  = 0o755
)

// fsys is one SFTP session's view of an account's drive: the handlers of
// pkg/sftp's request server.
type fsys struct {
	d       *vdrive.Drive
	ro      bool
	account string
	ctx     context.Context // the connection's: uploads run under it
	spool   string          // folder for spool files
	space   func(context.Context) (Space, error)
	limit   *sizeLimit // the largest file allowed (sizelimit.go)
	log     hclog.Logger
	busy    func() func() // marks a long operation (an upload) for the idle timer
	uid     uint32
	gid     uint32
	// reads ends with the session (the client's end of input): reads of
	// open files and read-only requests run under it (sessionReads).
	reads context.Context

	mu      sync.Mutex
	writing map[string][]*writeHandle // open write handles by path
}

var (
	_ xsftp.FileReader           = (*fsys)(nil)
	_ xsftp.OpenFileWriter       = (*fsys)(nil)
	_ xsftp.PosixRenameFileCmder = (*fsys)(nil)
	_ xsftp.StatVFSFileCmder     = (*fsys)(nil)
	_ xsftp.LstatFileLister      = (*fsys)(nil)
	_ xsftp.RealPathFileLister   = (*fsys)(nil)
	_ xsftp.ReadlinkFileLister   = (*fsys)(nil)
	_ xsftp.NameLookupFileLister = (*fsys)(nil)
)

func (s *fsys) handlers() xsftp.Handlers {
	return xsftp.Handlers{FileGet: s, FilePut: s, FileCmd: s, FileList: s}
}

// writable refuses writes of a read-only account or drive.
func (s *fsys) writable(op, p string) error {
	if s.ro {
		return toStatus(op, p, ErrReadOnlyAccount)
	}
	return nil
}

// ---- reading ----------------------------------------------------------

// Fileread opens a file for reading. The handle reads the grid file as it
// was at open; a directory is refused here (sftp-server opens it and fails
// the first read; both answer "failure").
// The file's reads (its stream, and reads from the grid) run under a
// context of the handle's that also ends with the session
// (sessionReads): a client that goes leaves no read waiting on a hung
// grid.
func (s *fsys) Fileread(r *xsftp.Request) (io.ReaderAt, error) {
	ctx, cancel := context.WithCancel(s.sessionReads())
	f, err := s.d.Open(ctx, r.Filepath)
	if err != nil {
		cancel()
		return nil, toStatus("open", r.Filepath, err)
	}
	h := newReadHandle(ctx, f, r.Filepath)
	h.release = cancel
	return h, nil
}

// sessionReads is the context of the session's reads: it ends when the
// client goes (the channel's end of input), before pkg/sftp has closed
// the handles, so that nothing it waits for hangs on the grid.
func (s *fsys) sessionReads() context.Context {
	switch {
	case s.reads != nil:
		return s.reads
	case s.ctx != nil:
		return s.ctx
	}
	return context.Background()
}

// readCtx is the context of a request that only reads (stat, opendir,
// readlink, statvfs): pkg/sftp's, ended also with the session's reads.
// Changes (rename, remove, setstat) keep pkg/sftp's alone: a client
// that leaves does not cut one short.
func (s *fsys) readCtx(r *xsftp.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.sessionReads(), cancel)
	return ctx, func() { stop(); cancel() }
}

// Read-ahead: clients ask for 32 KiB pieces, many at once and out of
// order, which the grid file's single decoder would serve by decoding the
// same segments again and again. A handle read from offset 0 streams the
// file instead (grid.File.WriteTo decodes several segments in parallel)
// into blocks the pieces are copied from, staying at most readWindow
// blocks ahead of the reader; other reads go to the file directly.
//
// A client with many large reads in flight (OpenSSH's sftp: 64 of 255
// KiB, ~16 MiB) asks well past readWindow blocks ahead of the stream: a
// read up to readReach blocks ahead of it waits for the stream (its
// asking lets the stream run on) rather than read the grid, which the
// stream would then read again. Only reads further away go to the grid.
// A published block stays until the reader has asked for a block more
// than readWindow past it and taken all its bytes, or for one more than
// readReach past it, so a handle holds at most readReach+readWindow+1
// blocks (a reader in order: ~2 readWindow, as before readReach).
const (
	readBlock  = 1 << 20
	readWindow = 4
	readReach  = 24
)

// readHandle reads an open grid file; errors name the path.
type readHandle struct {
	f    vdrive.File
	path string
	size int64
	// ctx governs the handle's reads from the grid (when f takes one):
	// Close cancels it, so a read a queue runs for a departed client
	// does not hold up the handle's close until the grid answers.
	// release, when set, ends the context f was opened with (its
	// stream's): Close calls it too.
	ctx     context.Context
	cancel  context.CancelFunc
	release context.CancelFunc

	mu        sync.Mutex
	cond      *sync.Cond
	started   bool
	streaming bool             // the stream runs and publishes blocks
	next      int64            // the block the stream publishes next
	blocks    map[int64][]byte // published blocks still near the reader
	taken     map[int64]int    // bytes of a published block the reader has taken
	maxWant   int64            // the highest block asked for
	stopped   bool
	free      [][]byte // blocks the reader has left behind, for the stream to reuse
}

var errStopped = errors.New("read handle closed")

func newReadHandle(ctx context.Context, f vdrive.File, p string) *readHandle {
	h := &readHandle{f: f, path: p, size: f.Size(), blocks: map[int64][]byte{}, taken: map[int64]int{}}
	h.ctx, h.cancel = context.WithCancel(ctx)
	h.cond = sync.NewCond(&h.mu)
	return h
}

// ctxReaderAt is a grid file whose reads take their own context
// (grid.File).
type ctxReaderAt interface {
	ReadAtContext(ctx context.Context, p []byte, off int64) (int, error)
}

// readGrid reads from the grid file, under the handle's context when the
// file takes one.
func (h *readHandle) readGrid(p []byte, off int64) (int, error) {
	if f, ok := h.f.(ctxReaderAt); ok {
		return f.ReadAtContext(h.ctx, p, off)
	}
	return h.f.ReadAt(p, off)
}

func (h *readHandle) ReadAt(p []byte, off int64) (int, error) {
	if off >= h.size {
		return 0, io.EOF
	}
	if off < 0 {
		return 0, toStatus("read", h.path, vdrive.ErrInvalid)
	}
	if rest := h.size - off; int64(len(p)) > rest {
		p = p[:rest]
	}
	h.maybeStream(off)
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		m, ok := h.fromBlock(p[n:], pos)
		if !ok {
			if h.isStopped() {
				// Closed (a CLOSE, or the session's end) while this read
				// waited off the read loop: no grid read for it now.
				return n, toStatus("read", h.path, errStopped)
			}
			m, err := h.readGrid(p[n:], pos)
			n += m
			if err != nil && !errors.Is(err, io.EOF) {
				if h.isStopped() {
					err = errStopped // cancelled by the close
				}
				return n, toStatus("read", h.path, err)
			}
			break
		}
		n += m
	}
	if off+int64(n) >= h.size {
		return n, io.EOF
	}
	return n, nil
}

// maybeStream starts the stream at the first read from offset 0 of a file
// of more than one block.
func (h *readHandle) maybeStream(off int64) {
	wt, ok := h.f.(io.WriterTo)
	if !ok || off != 0 || h.size <= readBlock {
		return
	}
	h.mu.Lock()
	if h.started {
		h.mu.Unlock()
		return
	}
	h.started, h.streaming = true, true
	h.mu.Unlock()
	go func() {
		bw := &blockWriter{h: h, buf: h.newBlock()}
		_, err := wt.WriteTo(bw)
		if err == nil {
			err = bw.flush()
		}
		h.mu.Lock()
		h.streaming = false
		h.cond.Broadcast()
		h.mu.Unlock()
	}()
}

// readState says where a read's bytes are, for the read loop (readNow).
type readState int

const (
	readReady  readState = iota // copied: answer now
	readStream                  // the stream is fetching them: wait off the loop
	readGrid                    // only a read from the grid has them (pkg/sftp's path)
)

// readNow hands use the bytes of a read of n bytes at off that are
// already fetched, never waiting: with the stream's published blocks
// holding the whole range (cut at the end of the file), use gets them as
// one or two pieces of those blocks, valid only during the call (made
// under the handle's lock: blocks the reader has passed are reused), and
// readNow returns readReady and use's error; past the end use gets none.
// readStream: the stream will publish what is missing (the first read
// from 0, which starts the stream, or a block in its window); readGrid:
// only a read from the grid has it. The read-loop's counterpart of
// ReadAt, which waits for the stream or reads from the grid.
func (h *readHandle) readNow(off int64, n int, use func(a, b []byte) error) (readState, error) {
	if off >= h.size {
		return readReady, use(nil, nil)
	}
	if off < 0 {
		return readGrid, nil
	}
	n = int(min(int64(n), h.size-off))
	h.maybeStream(off)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.started || h.stopped {
		return readGrid, nil
	}
	var parts [2][]byte
	for i, got := 0, 0; got < n; i++ {
		pos := off + int64(got)
		idx := pos / readBlock
		h.want(idx)
		b, ok := h.blocks[idx]
		if !ok || pos-idx*readBlock >= int64(len(b)) {
			if h.streaming && idx >= h.next && idx <= h.next+readReach {
				return readStream, nil
			}
			return readGrid, nil
		}
		if i == len(parts) {
			return readGrid, nil // not with n < readBlock
		}
		piece := b[pos-idx*readBlock:]
		parts[i] = piece[:min(len(piece), n-got)]
		got += len(parts[i])
	}
	err := use(parts[0], parts[1])
	for i, pos := 0, off; i < len(parts) && len(parts[i]) > 0; i++ {
		h.took(pos/readBlock, len(parts[i]))
		pos += int64(len(parts[i]))
	}
	return readReady, err
}

// took records that the reader took n bytes of block idx (mu held).
func (h *readHandle) took(idx int64, n int) {
	if _, ok := h.blocks[idx]; ok {
		h.taken[idx] += n
		h.trim(idx)
	}
}

// trim drops block k (mu held, kept for reuse) when the reader has asked
// for a block more than readReach past it, or more than readWindow past
// it and has taken all its bytes (a block just read stays a while for
// reads again).
func (h *readHandle) trim(k int64) {
	if k < h.maxWant-readReach || k < h.maxWant-readWindow && h.taken[k] >= len(h.blocks[k]) {
		h.drop(k)
	}
}

// drop forgets block idx (mu held), keeping it for reuse.
func (h *readHandle) drop(idx int64) {
	b := h.blocks[idx]
	delete(h.blocks, idx)
	delete(h.taken, idx)
	if len(h.free) < 2 && cap(b) == readBlock {
		h.free = append(h.free, b[:0])
	}
}

// want records that the reader asked for block idx (mu held): the stream
// may run readWindow blocks past it, and blocks behind it are trimmed.
// A block more than readReach past the running stream is read from the
// grid and does not move the stream: a player reading a file's header,
// then its index at the end, would otherwise have the stream fetch (and
// hold) every block up to the index.
func (h *readHandle) want(idx int64) {
	if idx <= h.maxWant || h.streaming && idx > h.next+readReach {
		return
	}
	h.maxWant = idx
	h.cond.Broadcast()
	for k := range h.blocks {
		h.trim(k)
	}
}

// fromBlock copies into p what the stream's block holds from pos on,
// waiting for the block when the stream is about to publish it; false
// when the stream does not have it. The copy is made under the lock:
// blocks the reader has moved past are reused for later ones.
func (h *readHandle) fromBlock(p []byte, pos int64) (int, bool) {
	idx := pos / readBlock
	h.mu.Lock()
	defer h.mu.Unlock()
	h.want(idx)
	for h.streaming && !h.stopped && idx >= h.next && idx <= h.next+readReach {
		h.cond.Wait()
	}
	b, ok := h.blocks[idx]
	if !ok || pos-idx*readBlock >= int64(len(b)) {
		return 0, false
	}
	n := copy(p, b[pos-idx*readBlock:])
	h.took(idx, n)
	return n, true
}

func (h *readHandle) isStopped() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped
}

// newBlock is an empty block for the stream, a reused one when there is.
func (h *readHandle) newBlock() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if k := len(h.free); k > 0 {
		b := h.free[k-1]
		h.free = h.free[:k-1]
		return b
	}
	return make([]byte, 0, readBlock)
}

// publish adds the stream's next block, waiting while it is too far ahead
// of the reader.
func (h *readHandle) publish(b []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for !h.stopped && h.next > h.maxWant+readWindow {
		h.cond.Wait()
	}
	if h.stopped {
		return errStopped
	}
	if h.next < h.maxWant-readReach {
		// No reader can still want it (trim would drop it at once).
		if len(h.free) < 2 && cap(b) == readBlock {
			h.free = append(h.free, b[:0])
		}
		h.next++
		h.cond.Broadcast()
		return nil
	}
	h.blocks[h.next] = b
	h.next++
	h.cond.Broadcast()
	return nil
}

// Close ends the stream and cancels the handle's reads from the grid.
func (h *readHandle) Close() error {
	h.cancel()
	if h.release != nil {
		h.release()
	}
	h.mu.Lock()
	h.stopped = true
	h.blocks = map[int64][]byte{}
	h.taken = map[int64]int{}
	h.free = nil
	h.cond.Broadcast()
	h.mu.Unlock()
	return nil
}

// blockWriter cuts the stream into blocks.
type blockWriter struct {
	h   *readHandle
	buf []byte
}

func (w *blockWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := min(len(p)-n, readBlock-len(w.buf))
		w.buf = append(w.buf, p[n:n+k]...)
		n += k
		if len(w.buf) == readBlock {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (w *blockWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	b := w.buf
	w.buf = w.h.newBlock()
	return w.h.publish(b)
}

// ---- writing ----------------------------------------------------------

// Filewrite opens a file for writing (no reads through the handle).
func (s *fsys) Filewrite(r *xsftp.Request) (io.WriterAt, error) {
	return s.openWrite(r)
}

// OpenFile opens a file for reading and writing.
func (s *fsys) OpenFile(r *xsftp.Request) (xsftp.WriterAtReaderAt, error) {
	return s.openWrite(r)
}

// openWrite checks the open as open(2) would, then spools: the new
// content is built in a temporary file (clients write out of order and
// leave holes) and uploaded when the handle closes. An open without TRUNC
// of an existing file copies its content in first (append, resume,
// rewrite in place).
func (s *fsys) openWrite(r *xsftp.Request) (*writeHandle, error) {
	p, fl := r.Filepath, r.Pflags()
	if err := s.writable("open", p); err != nil {
		return nil, err
	}
	// Reads only until the handle exists: a client that leaves ends them.
	ctx, done := s.readCtx(r)
	defer done()
	// A name the drive would refuse to link (a new one over 255 bytes) is
	// refused at the open, before the client sends the bytes, not at the
	// close; an existing file's (an older version's) is written in place.
	if err := s.d.CheckWritePath(ctx, p); err != nil {
		return nil, toStatus("open", p, err)
	}
	if prev := s.openWriter(p); prev != nil {
		return s.openAfter(p, fl, prev)
	}
	stat := s.d.Stat
	maybeOld := false
	if fl.Creat && !fl.Trunc && !fl.Excl {
		// What OpenSSH's scp opens with (it truncates by fsetstat after
		// the writes). A cached miss is taken as it is here too, but the
		// handle may hide an existing file's content: it finds out
		// (settleOld) before anything could show that content, so that
		// the usual open, writes covering the file, truncate and close
		// read no directory.
		stat, maybeOld = s.d.StatCached, true
	}
	if fl.Creat && fl.Trunc && !fl.Excl {
		// What sftp put, scp and rclone open with. A miss in the drive's
		// cached directory (a new file, the usual case) is taken as it is,
		// saving a directory read per new file: whatever is at p when the
		// close links the upload is replaced, and a truncating open
		// copies nothing in, so a file made meanwhile by another client
		// changes nothing here but the shown mode. Without TRUNC a stale
		// miss would start an existing file's rewrite from nothing, and
		// EXCL must see the current version: those read it.
		stat = s.d.StatCached
	}
	info, err := stat(ctx, p)
	exists := err == nil
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, toStatus("open", p, err)
	case exists && info.IsDir():
		return nil, toStatus("open", p, vdrive.ErrIsDir)
	case exists && fl.Creat && fl.Excl:
		return nil, toStatus("open", p, fs.ErrExist)
	case !exists && !fl.Creat:
		return nil, toStatus("open", p, fs.ErrNotExist)
	case !exists && path.Dir(p) != "/":
		// The parent must be a directory that exists, as for open(2).
		// The root always is one, and is not asked: a Stat of the root
		// makes its pending write-behind links first (its size is its
		// entry count), a directory change per file put in the root.
		if pi, err := s.d.Stat(ctx, path.Dir(p)); err != nil {
			return nil, toStatus("open", p, err)
		} else if !pi.IsDir() {
			return nil, toStatus("open", p, vdrive.ErrNotDir)
		}
	}
	f, err := os.CreateTemp(s.spool, "sftp-*.spool")
	if err != nil {
		return nil, toStatus("open", p, fmt.Errorf("spool file: %w", err))
	}
	os.Remove(f.Name()) // unlinked: gone with the handle, even on a crash
	h := newWriteHandle(s, p, f, !exists)
	h.streamable = !exists || fl.Trunc
	h.maybeOld = maybeOld && !exists
	// A truncating open of an existing file empties it even if nothing is
	// written (sftp put of an empty file, `: > f` through sshfs).
	h.dirty = exists && fl.Trunc
	if exists && !fl.Trunc {
		if err := h.fill(ctx); err != nil {
			f.Close()
			return nil, toStatus("open", p, err)
		}
		if fl.Append {
			h.appendAt = h.size
		}
	}
	if !exists {
		if perm, ok := openPerm(r.Attrs); ok {
			m := perm &^ umask
			if m != defaultFileMode {
				h.mode, h.openMode = &m, true
			}
		}
	}
	s.track(h)
	return h, nil
}

// track adds h to the session's open write handles.
func (s *fsys) track(h *writeHandle) {
	s.mu.Lock()
	if s.writing == nil {
		s.writing = make(map[string][]*writeHandle)
	}
	s.writing[h.path] = append(s.writing[h.path], h)
	s.mu.Unlock()
}

// openAfter opens p for writing while this session still has it open for
// writing (prev): the file is what prev holds so far, not what the drive
// has. sshfs answers a close(2) at once and sends the SFTP close later, so
// an append right after a write may open the file before the close that
// makes it has been handled. The new handle starts from prev's spool, and
// its close waits for prev's close when that has begun, so the later
// content is linked last.
func (s *fsys) openAfter(p string, fl xsftp.FileOpenFlags, prev *writeHandle) (*writeHandle, error) {
	if fl.Creat && fl.Excl {
		return nil, toStatus("open", p, fs.ErrExist)
	}
	if err := prev.settleOld(); err != nil {
		return nil, toStatus("open", p, err)
	}
	f, err := os.CreateTemp(s.spool, "sftp-*.spool")
	if err != nil {
		return nil, toStatus("open", p, fmt.Errorf("spool file: %w", err))
	}
	os.Remove(f.Name())
	h := newWriteHandle(s, p, f, prev.create)
	h.prev = prev
	h.dirty = fl.Trunc
	if !fl.Trunc {
		size, _, _ := prev.stat()
		n, err := io.Copy(f, io.NewSectionReader(prev, 0, size))
		if err != nil {
			f.Close()
			return nil, toStatus("open", p, fmt.Errorf("copy the content being written: %w", err))
		}
		h.size, h.dirty = n, true
		if fl.Append {
			h.appendAt = n
		}
	}
	s.track(h)
	return h, nil
}

// openPerm reads the permissions of an open request's attributes. pkg/sftp
// hands the handler the attributes without their flags word, so only the
// one unambiguous case is read: four bytes are the permissions alone
// (what OpenSSH's sftp and scp send).
func openPerm(attrs []byte) (fs.FileMode, bool) {
	if len(attrs) != 4 {
		return 0, false
	}
	return fs.FileMode(binary.BigEndian.Uint32(attrs)) & fs.ModePerm, true
}

// writeHandle is a file open for writing: its content so far in an
// unlinked spool file.
type writeHandle struct {
	s      *fsys
	path   string
	f      *os.File
	create bool // the file did not exist at open

	// prev is the session's handle writing the same path when this one
	// was opened (openAfter); done is closed when this one's Close ends.
	prev *writeHandle
	done chan struct{}

	mu    sync.Mutex
	size  int64
	mode  *fs.FileMode
	mtime *time.Time
	dirty bool // written to or truncated since open
	// maybeOld: opened WRITE|CREAT without TRUNC on a miss in the cached
	// directory, so a file may be there after all (settleOld); openMode:
	// mode was asked for by that open, which open(2) ignores for an
	// existing file.
	maybeOld bool
	openMode bool
	// appendAt is the size at an open with APPEND of an existing file;
	// appendShift: how far the handle's writes move when its first
	// write came below it (appendOffset); appendSeen: decided.
	appendAt    int64
	appendShift int64
	appendSeen  bool
	failed      error // a transfer error: the client is gone, nothing is linked
	// lost: writes that failed (a full spool), by offset, with the
	// length and error; a later write of the same range that succeeds
	// (pkg/sftp's run of a write the fast path failed, a client's retry)
	// takes its entry out. A close with any left links nothing.
	lost map[int64]lostWrite
	// allowed: the handle may grow to this size without asking the
	// size limit again; tooLarge: a refusal was logged (sizelimit.go).
	allowed  int64
	tooLarge bool
	closed   bool
	closeEr  error

	// Streaming (see stream.go): the contiguous prefix written so far,
	// writes beyond it, and the upload that follows the prefix.
	rw         sync.RWMutex // writes share it; the stream's spool reads take it alone
	streamable bool
	cont       int64
	pending    map[int64]int64
	st         *stream
}

func newWriteHandle(s *fsys, p string, f *os.File, create bool) *writeHandle {
	return &writeHandle{s: s, path: p, f: f, create: create, done: make(chan struct{})}
}

var (
	_ xsftp.WriterAtReaderAt = (*writeHandle)(nil)
	_ xsftp.TransferError    = (*writeHandle)(nil)
	_ io.Closer              = (*writeHandle)(nil)
)

// settleOld finds out, for a handle opened WRITE|CREAT without TRUNC on a
// miss in the cached directory (maybeOld), whether the file exists on the
// directory's current version, before anything shows what the handle
// holds or leaves bytes the client did not write: a write past the
// written prefix, a read, a stat, a truncate beyond the prefix, another
// open of the path, the close. If it does, its content from the end of
// the prefix on goes into the spool (the prefix is the client's), and the
// handle continues as an open of an existing file. Writes wait meanwhile.
func (h *writeHandle) settleOld() error {
	h.mu.Lock()
	maybe := h.maybeOld
	h.mu.Unlock()
	if !maybe {
		return nil
	}
	h.rw.Lock()
	defer h.rw.Unlock()
	h.mu.Lock()
	if !h.maybeOld {
		h.mu.Unlock()
		return nil
	}
	h.mu.Unlock()
	ctx := h.s.ctx
	info, err := h.s.d.Stat(ctx, h.path)
	if errors.Is(err, fs.ErrNotExist) {
		h.mu.Lock()
		h.maybeOld = false // a new file after all
		h.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	if info.IsDir() {
		return vdrive.ErrIsDir
	}
	f, err := h.s.d.OpenInfo(ctx, info)
	if err != nil {
		return err
	}
	h.mu.Lock()
	from := h.cont
	h.mu.Unlock()
	if n := f.Size() - from; n > 0 {
		if _, err := io.Copy(io.NewOffsetWriter(h.f, from), io.NewSectionReader(f, from, n)); err != nil {
			return fmt.Errorf("read the current content: %w", err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.maybeOld, h.create, h.streamable = false, false, false
	h.pending = nil
	if f.Size() > h.size {
		h.size = f.Size()
	}
	if h.openMode {
		h.mode, h.openMode = nil, false
	}
	return nil
}

// fill copies the file's current content into the spool.
func (h *writeHandle) fill(ctx context.Context) error {
	f, err := h.s.d.Open(ctx, h.path)
	if err != nil {
		return err
	}
	var n int64
	if wt, ok := f.(io.WriterTo); ok {
		n, err = wt.WriteTo(h.f)
	} else {
		n, err = io.Copy(h.f, io.NewSectionReader(f, 0, f.Size()))
	}
	if err != nil {
		return fmt.Errorf("read the current content: %w", err)
	}
	h.size = n
	return nil
}

// refuseWrite fails a write of n bytes at off that was not spooled:
// the close will fail unless the range is written again.
func (h *writeHandle) refuseWrite(off int64, n int, err error) (int, error) {
	h.mu.Lock()
	if h.lost == nil {
		h.lost = map[int64]lostWrite{}
	}
	h.lost[off] = lostWrite{n, err}
	h.mu.Unlock()
	return 0, toStatus("write", h.path, err)
}

func (h *writeHandle) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, toStatus("write", h.path, vdrive.ErrInvalid)
	}
	off = h.appendOffset(off)
	if len(p) > 0 {
		// Past maxSize (off > maxSize-len(p)) the end wraps negative,
		// which grow refuses as too large.
		if err := h.grow(off + int64(len(p))); err != nil {
			return h.refuseWrite(off, len(p), err)
		}
	}
	h.mu.Lock()
	hole := h.maybeOld && off > h.cont
	h.mu.Unlock()
	if hole {
		// What the client leaves between the written prefix and this
		// write is an existing file's content, if there is one.
		if err := h.settleOld(); err != nil {
			return h.refuseWrite(off, len(p), err)
		}
	}
	h.rw.RLock()
	defer h.rw.RUnlock()
	h.mu.Lock()
	if h.closed {
		// pkg/sftp may run a write sent after the close while the close
		// uploads: it must not change bytes already hashed for the key.
		h.mu.Unlock()
		return 0, toStatus("write", h.path, fs.ErrClosed)
	}
	if h.st != nil && off < h.st.fed {
		h.st.fail(errRewrite) // bytes already sent to the grid change
	}
	h.mu.Unlock()
	n, err := h.f.WriteAt(p, off)
	start := false
	if n > 0 {
		// An empty write past the end does not grow a file (os.File's
		// WriteAt writes nothing), so it must not grow the size either.
		h.mu.Lock()
		if end := off + int64(n); end > h.size {
			h.size = end
		}
		h.dirty = true
		start = h.track(off, off+int64(n))
		h.mu.Unlock()
	}
	if start {
		go h.startStream()
	}
	h.mu.Lock()
	if err != nil {
		if h.lost == nil {
			h.lost = map[int64]lostWrite{}
		}
		h.lost[off] = lostWrite{len(p), err}
	} else if l, ok := h.lost[off]; ok && len(p) >= l.n {
		delete(h.lost, off)
	}
	h.mu.Unlock()
	if err != nil {
		return n, toStatus("write", h.path, fmt.Errorf("spool: %w", err))
	}
	return n, nil
}

// appendOffset is where a write at off lands. SFTP's APPEND makes every
// write land at the end of the file (sftp-server opens with O_APPEND).
// Clients that resume (OpenSSH's reput and put -a, sshfs, lftp) send
// the real offsets, at or past the size at open, and land there, in
// whatever order pkg/sftp's workers run them; a client that counts
// from 0 (Go's pkg/sftp with os.O_APPEND) wrote over the file's start.
// So when a handle's first write comes below the size at open, all its
// writes move by the difference (the read loop runs a handle's writes in
// the order they come, so the first one run is the first one sent).
func (h *writeHandle) appendOffset(off int64) int64 {
	if h.appendAt == 0 {
		return off
	}
	h.mu.Lock()
	if !h.appendSeen {
		// The first write is where the client thinks the end is: 0
		// for a client that counts from 0, an older size for sshfs
		// whose cached size is stale (another client appended since):
		// both land at the end, as with sftp-server. Counting from
		// appendAt put sshfs's append that far past the end, after a
		// run of zeros.
		h.appendSeen = true
		if off < h.appendAt {
			h.appendShift = h.appendAt - off
		}
	}
	shift := h.appendShift
	h.mu.Unlock()
	if shift > 0 && off <= maxSize-shift {
		return off + shift
	}
	return off
}

// lostWrite is a write that failed: its length and error.
type lostWrite struct {
	n   int
	err error
}

// mayWaitOnGrid: an access may first read the existing file's content
// from the grid (settleOld).
func (h *writeHandle) mayWaitOnGrid(int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.maybeOld
}

func (h *writeHandle) ReadAt(p []byte, off int64) (int, error) {
	if err := h.settleOld(); err != nil {
		return 0, toStatus("read", h.path, err)
	}
	h.mu.Lock()
	size := h.size
	h.mu.Unlock()
	if off >= size {
		return 0, io.EOF
	}
	if rest := size - off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := h.f.ReadAt(p, off)
	if err == io.EOF && off+int64(n) < size {
		// A hole at the end (a truncate that grew the file): zeros.
		clear(p[n:])
		n, err = len(p), nil
	}
	if err == nil && off+int64(n) >= size {
		err = io.EOF
	}
	return n, err
}

// truncate sets the spooled file's size.
func (h *writeHandle) truncate(size int64) error {
	if err := h.grow(size); err != nil {
		return err
	}
	h.mu.Lock()
	if h.maybeOld && size <= h.cont {
		// Every byte left was written by the client: what was there
		// before no longer shows (OpenSSH's scp ends every file so).
		h.maybeOld = false
	}
	old := h.maybeOld
	h.mu.Unlock()
	if old {
		if err := h.settleOld(); err != nil {
			return err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.st != nil {
		h.st.fail(errRewrite)
	}
	h.streamable = false
	if err := h.f.Truncate(size); err != nil {
		return err
	}
	h.size = size
	h.dirty = true
	for off := range h.lost {
		if off >= size {
			delete(h.lost, off) // cut away: the file no longer lacks it
		}
	}
	return nil
}

func (h *writeHandle) stat() (int64, *fs.FileMode, *time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.size, h.mode, h.mtime
}

// TransferError is called by pkg/sftp when the session ends with the
// handle open: the client is gone, so nothing is linked.
func (h *writeHandle) TransferError(err error) {
	h.mu.Lock()
	h.failed = err
	h.mu.Unlock()
}

// Close uploads the spooled content and links it at the path, then sets
// the mode and times asked for while it was open. The client's close is
// answered only after that: an error here reaches the client, never a
// success for data that is not on the grid.
func (h *writeHandle) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return h.closeEr
	}
	h.closed = true
	failed := h.failed
	h.mu.Unlock()
	// Writes already under way finish before the upload reads the spool;
	// later ones are refused (WriteAt).
	h.rw.Lock()
	h.rw.Unlock() //nolint:staticcheck // an empty critical section: a barrier
	defer close(h.done)
	defer h.s.forget(h)
	defer h.f.Close()
	if prev := h.prev; prev != nil {
		prev.mu.Lock()
		closing := prev.closed
		prev.mu.Unlock()
		if closing {
			select {
			case <-prev.done:
			case <-h.s.ctx.Done():
			}
		}
	}
	// The spool lacks bytes the client sent when a write failed and was
	// not written again: linking it would replace the file with a cut or
	// holed copy.
	lost := false
	if failed == nil {
		h.mu.Lock()
		for off, l := range h.lost {
			failed, lost = fmt.Errorf("the write of %d bytes at %d failed: %w", l.n, off, l.err), true
			break
		}
		h.mu.Unlock()
	}
	st := h.closeStream(failed)
	if failed == nil {
		if err := h.settleOld(); err != nil {
			h.closeEr = toStatus("close", h.path, err)
			return h.closeEr
		}
	}
	if failed != nil && lost {
		h.s.log.Warn("upload abandoned: a write failed", "path", h.path, "reason", failed)
		h.closeEr = toStatus("close", h.path, failed)
		return h.closeEr
	}
	if failed != nil {
		h.s.log.Info("upload abandoned: the client left before closing", "path", h.path, "reason", failed)
		h.closeEr = toStatus("close", h.path, fmt.Errorf("transfer ended: %w", failed))
		return h.closeEr
	}
	if st != nil {
		linked, why, err := h.finishStream(st)
		if linked {
			h.closeEr = err
			return err
		}
		h.s.log.Debug("not streamed; uploading from the spool", "path", h.path, "reason", why)
	}
	h.closeEr = h.upload()
	return h.closeEr
}

func (h *writeHandle) upload() error {
	done := h.s.busy()
	defer done()
	size, mode, mtime := h.stat()
	ctx := h.s.ctx
	h.mu.Lock()
	unchanged := !h.create && !h.dirty
	h.mu.Unlock()
	if unchanged {
		// Opened for writing (sshfs opens read-write to read) but not
		// changed: the file on the grid is already what the client has.
		return h.setMeta(ctx, mode, mtime)
	}
	start := time.Now()
	// The spool goes to the grid as it is, with its size: a small file
	// goes in one call per server, a big one is read in place (hashed
	// for its convergent key, then encoded: host/grid's Upload of an
	// io.ReaderAt), never copied into a spool of the grid's own. Nothing
	// is linked unless the whole upload succeeds.
	if err := h.s.d.Put(ctx, h.path, io.NewSectionReader(h.f, 0, size), size, nil); err != nil {
		h.s.log.Warn("upload failed", "path", h.path, "error", err)
		return toStatus("close", h.path, err)
	}
	if err := h.setMeta(ctx, mode, mtime); err != nil {
		return err
	}
	h.s.log.Debug("uploaded", "path", h.path, "bytes", size, "took", time.Since(start))
	return nil
}

// setMeta stores the mode and mtime asked for while the file was open.
func (h *writeHandle) setMeta(ctx context.Context, mode *fs.FileMode, mtime *time.Time) error {
	if mode == nil && mtime == nil {
		return nil
	}
	err := h.s.d.SetMetadata(ctx, h.path, func(m *vdrive.Metadata) error {
		applyMeta(m, mode, mtime)
		return nil
	})
	return toStatus("close", h.path, err)
}

// forget drops h from the open handles.
func (s *fsys) forget(h *writeHandle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hs := s.writing[h.path]
	for i, x := range hs {
		if x == h {
			hs = append(hs[:i], hs[i+1:]...)
			break
		}
	}
	if len(hs) == 0 {
		delete(s.writing, h.path)
	} else {
		s.writing[h.path] = hs
	}
}

// openWriter is the newest handle writing p, or nil.
func (s *fsys) openWriter(p string) *writeHandle {
	s.mu.Lock()
	defer s.mu.Unlock()
	hs := s.writing[p]
	if len(hs) == 0 {
		return nil
	}
	return hs[len(hs)-1]
}

// abortAll ends the open write handles of a session that is closing.
func (s *fsys) abortAll(err error) {
	s.mu.Lock()
	var hs []*writeHandle
	for _, l := range s.writing {
		hs = append(hs, l...)
	}
	s.mu.Unlock()
	for _, h := range hs {
		h.TransferError(err)
	}
}

func applyMeta(m *vdrive.Metadata, mode *fs.FileMode, mtime *time.Time) {
	if mode != nil {
		if m.Extra == nil {
			m.Extra = map[string]string{}
		}
		m.Extra[vdrive.ModeKey] = fmt.Sprintf("%04o", uint32(*mode&fs.ModePerm))
	}
	if mtime != nil {
		m.Mtime = mtime.UTC()
	}
}

// ---- commands ---------------------------------------------------------

// Filecmd carries out setstat, rename, rmdir, mkdir, remove; links are
// refused.
func (s *fsys) Filecmd(r *xsftp.Request) error {
	ctx, p := r.Context(), r.Filepath
	switch r.Method {
	case "Setstat":
		return s.setstat(ctx, r)
	case "Rename":
		if err := s.writable("rename", p); err != nil {
			return err
		}
		// SFTP v3 rename never replaces (sftp-server links the new name
		// first); posix-rename does.
		if _, err := s.d.Stat(ctx, r.Target); err == nil {
			if _, err := s.d.Stat(ctx, p); err != nil {
				return toStatus("rename", p, err)
			}
			return toStatus("rename", r.Target, fs.ErrExist)
		}
		return toStatus("rename", p, s.d.Rename(ctx, p, r.Target))
	case "Rmdir":
		if err := s.writable("rmdir", p); err != nil {
			return err
		}
		if p == "/" {
			return toStatus("rmdir", p, errors.New("the root cannot be removed"))
		}
		info, err := s.d.Stat(ctx, p)
		if err != nil {
			return toStatus("rmdir", p, err)
		}
		if !info.IsDir() {
			return toStatus("rmdir", p, vdrive.ErrNotDir)
		}
		return toStatus("rmdir", p, s.d.Remove(ctx, p))
	case "Mkdir":
		if err := s.writable("mkdir", p); err != nil {
			return err
		}
		if p == "/" {
			return toStatus("mkdir", p, fs.ErrExist)
		}
		if err := s.d.Mkdir(ctx, p); err != nil {
			return toStatus("mkdir", p, err)
		}
		if r.AttrFlags().Permissions {
			m := fs.FileMode(r.Attributes().Mode) & fs.ModePerm &^ umask
			if m != defaultDirMode {
				return toStatus("mkdir", p, s.d.SetMetadata(ctx, p, func(md *vdrive.Metadata) error {
					applyMeta(md, &m, nil)
					return nil
				}))
			}
		}
		return nil
	case "Remove":
		if err := s.writable("remove", p); err != nil {
			return err
		}
		info, err := s.d.Stat(ctx, p)
		if err != nil {
			return toStatus("remove", p, err)
		}
		if info.IsDir() {
			return toStatus("remove", p, vdrive.ErrIsDir)
		}
		return toStatus("remove", p, s.d.Remove(ctx, p))
	case "Symlink":
		// Filepath is the link's target, Target the new link's path.
		if err := s.writable("symlink", r.Target); err != nil {
			return err
		}
		return unsupported("symlink", r.Target, "the drive has no symbolic links")
	case "Link":
		if err := s.writable("link", r.Target); err != nil {
			return err
		}
		return unsupported("link", r.Target, "the drive has no hard links (copy the file instead)")
	}
	return unsupported(r.Method, p, "unknown request")
}

// PosixRename is rename(2): it replaces a file, or an empty directory.
func (s *fsys) PosixRename(r *xsftp.Request) error {
	if err := s.writable("rename", r.Filepath); err != nil {
		return err
	}
	return toStatus("rename", r.Filepath, s.d.Rename(r.Context(), r.Filepath, r.Target))
}

// setstat keeps the mode and mtime in the entry's metadata, truncates or
// extends to a size, and accepts and ignores owner and atime (nothing to
// keep them in). On a file this session has open for writing, it changes
// the spooled file and what its close will link.
func (s *fsys) setstat(ctx context.Context, r *xsftp.Request) error {
	p := r.Filepath
	if err := s.writable("setstat", p); err != nil {
		return err
	}
	fl := r.AttrFlags()
	a := r.Attributes()
	var mode *fs.FileMode
	var mtime *time.Time
	if fl.Permissions {
		m := fs.FileMode(a.Mode) & fs.ModePerm
		mode = &m
	}
	if fl.Acmodtime {
		t := time.Unix(int64(a.Mtime), 0)
		mtime = &t
	}
	s.log.Debug("setstat", "path", p, "size", fl.Size, "mode", fl.Permissions, "times", fl.Acmodtime, "owner", fl.UidGid)
	if h := s.openWriter(p); h != nil {
		if fl.Size {
			if err := h.truncate(int64(a.Size)); err != nil {
				return toStatus("setstat", p, err)
			}
		}
		h.mu.Lock()
		if mode != nil {
			h.mode = mode
		}
		if mtime != nil {
			h.mtime = mtime
		}
		h.mu.Unlock()
		return nil
	}
	info, err := s.d.Stat(ctx, p)
	if err != nil {
		return toStatus("setstat", p, err)
	}
	if p == "/" {
		// The root has no entry to keep a mode or time in.
		return nil
	}
	if fl.Size && info.IsDir() {
		return toStatus("setstat", p, vdrive.ErrIsDir)
	}
	if fl.Size && int64(a.Size) != info.Size() {
		if err := s.resize(ctx, p, int64(a.Size), info); err != nil {
			return toStatus("setstat", p, err)
		}
	}
	if mode == nil && mtime == nil {
		return nil
	}
	return toStatus("setstat", p, s.d.SetMetadata(ctx, p, func(m *vdrive.Metadata) error {
		applyMeta(m, mode, mtime)
		return nil
	}))
}

// resize truncates or extends a closed file: its content, cut or padded
// with zeros, is uploaded again (grid files are immutable). The mode and
// mtime it had are kept unless the same setstat changes them.
func (s *fsys) resize(ctx context.Context, p string, size int64, info *vdrive.Info) error {
	f, err := os.CreateTemp(s.spool, "sftp-*.spool")
	if err != nil {
		return fmt.Errorf("spool file: %w", err)
	}
	os.Remove(f.Name())
	h := newWriteHandle(s, p, f, false)
	defer f.Close()
	if size > info.Size() || size < 0 {
		// (A negative size is a uint64 past maxSize: grow refuses it.)
		if err := h.grow(size); err != nil {
			return err // before reading the file from the grid
		}
	}
	if size > 0 {
		if err := h.fill(ctx); err != nil {
			return err
		}
	}
	if err := h.truncate(size); err != nil {
		return err
	}
	m := info.Mode().Perm()
	if _, ok := info.Metadata().Extra[vdrive.ModeKey]; ok {
		h.mode = &m
	}
	return h.upload()
}

// StatVFS answers statvfs@openssh.com (what `df` shows) from the grid's
// space.
func (s *fsys) StatVFS(r *xsftp.Request) (*xsftp.StatVFS, error) {
	ctx, done := s.readCtx(r)
	defer done()
	if _, err := s.d.Stat(ctx, r.Filepath); err != nil {
		return nil, toStatus("statvfs", r.Filepath, err)
	}
	sp := DefaultSpace
	if s.space != nil {
		got, err := s.space(ctx)
		if err != nil {
			return nil, toStatus("statvfs", r.Filepath, err)
		}
		sp = got
	}
	const bsize = 4096
	st := &xsftp.StatVFS{
		Bsize: bsize, Frsize: bsize,
		Blocks: sp.Total / bsize, Bfree: sp.Free / bsize, Bavail: sp.Free / bsize,
		Files: 1 << 32, Ffree: 1 << 32, Favail: 1 << 32,
		Namemax: 255,
	}
	if s.ro {
		st.Flag |= 1 // ST_RDONLY
	}
	return st, nil
}

// ---- listing ----------------------------------------------------------

// Filelist answers opendir (List) and stat (Stat).
func (s *fsys) Filelist(r *xsftp.Request) (xsftp.ListerAt, error) {
	ctx, done := s.readCtx(r)
	defer done()
	p := r.Filepath
	switch r.Method {
	case "List":
		self, err := s.d.Stat(ctx, p)
		if err != nil {
			return nil, toStatus("opendir", p, err)
		}
		if !self.IsDir() {
			return nil, toStatus("opendir", p, vdrive.ErrNotDir)
		}
		infos, err := s.d.ReadDir(ctx, p)
		if err != nil {
			return nil, toStatus("opendir", p, err)
		}
		parent := self
		if p != "/" {
			if parent, err = s.d.Stat(ctx, path.Dir(p)); err != nil {
				return nil, toStatus("opendir", p, err)
			}
		}
		list := make(lister, 0, len(infos)+2)
		list = append(list, s.fileInfo(".", self), s.fileInfo("..", parent))
		for _, in := range infos {
			list = append(list, s.fileInfo(in.Name(), in))
		}
		return list, nil
	case "Stat", "Lstat":
		fi, err := s.stat(ctx, p)
		if err != nil {
			return nil, err
		}
		return lister{fi}, nil
	}
	return nil, unsupported(r.Method, p, "unknown request")
}

// Lstat is Stat: the drive has no symbolic links.
func (s *fsys) Lstat(r *xsftp.Request) (xsftp.ListerAt, error) { return s.Filelist(r) }

// stat describes p; a file this session is writing shows its spooled size
// and pending mode and mtime, as a local file being written would.
func (s *fsys) stat(ctx context.Context, p string) (os.FileInfo, error) {
	if h := s.openWriter(p); h != nil {
		if err := h.settleOld(); err != nil {
			return nil, toStatus("stat", p, err)
		}
		size, mode, mtime := h.stat()
		fi := &fileInfo{name: path.Base(p), size: size, mode: defaultFileMode, mtime: time.Now(), uid: s.uid, gid: s.gid}
		if info, err := s.d.Stat(ctx, p); err == nil && !h.create {
			fi.mode, fi.mtime = info.Mode(), info.ModTime()
		}
		if mode != nil {
			fi.mode = *mode
		}
		if mtime != nil {
			fi.mtime = *mtime
		}
		return fi, nil
	}
	info, err := s.d.Stat(ctx, p)
	if err != nil {
		return nil, toStatus("stat", p, err)
	}
	return s.fileInfo(path.Base(p), info), nil
}

// RealPath makes p absolute and clean under the root; ".." never leaves
// the root.
func (s *fsys) RealPath(p string) (string, error) {
	return cleanPath(p), nil
}

// Readlink fails as readlink(2) does on what is not a link.
func (s *fsys) Readlink(p string) (string, error) {
	if _, err := s.d.Stat(s.sessionReads(), p); err != nil {
		return "", toStatus("readlink", p, err)
	}
	return "", toStatus("readlink", p, fmt.Errorf("not a symbolic link: %w", syscall.EINVAL))
}

// LookupUserName names every owner after the account (all of an
// account's files are its own).
func (s *fsys) LookupUserName(string) string { return s.account }

// LookupGroupName is LookupUserName for groups.
func (s *fsys) LookupGroupName(string) string { return s.account }

func cleanPath(p string) string {
	c := path.Clean("/" + p)
	return c
}

func (s *fsys) fileInfo(name string, in *vdrive.Info) *fileInfo {
	mt := in.ModTime()
	if mt.IsZero() {
		mt = in.Metadata().Ctime
	}
	if mt.IsZero() {
		mt = time.Unix(0, 0)
	}
	return &fileInfo{name: name, size: in.Size(), mode: in.Mode(), mtime: mt, uid: s.uid, gid: s.gid}
}

// fileInfo is an entry as SFTP attributes carry it.
type fileInfo struct {
	name     string
	size     int64
	mode     fs.FileMode
	mtime    time.Time
	uid, gid uint32
}

var _ xsftp.FileInfoUidGid = (*fileInfo)(nil)

func (f *fileInfo) Name() string       { return f.name }
func (f *fileInfo) Size() int64        { return f.size }
func (f *fileInfo) Mode() fs.FileMode  { return f.mode }
func (f *fileInfo) ModTime() time.Time { return f.mtime }
func (f *fileInfo) IsDir() bool        { return f.mode.IsDir() }
func (f *fileInfo) Sys() any           { return nil }
func (f *fileInfo) Uid() uint32        { return f.uid }
func (f *fileInfo) Gid() uint32        { return f.gid }

// lister pages a listing out to readdir in pkg/sftp's chunks.
type lister []os.FileInfo

func (l lister) ListAt(buf []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(buf, l[off:])
	if off+int64(n) >= int64(len(l)) {
		return n, io.EOF
	}
	return n, nil
}
