package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tarnfs/tarn/host/grid"
)

// fdServer takes uploads by descriptor on the API's abstract socket.
type fdServer struct {
	s      *Server
	ln     *net.UnixListener
	ctx    context.Context // cancelled at Close: uploads in flight end
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// fdProgressEvery is how often the node tells the CLI how far it read.
const fdProgressEvery = 250 * time.Millisecond

// startFd listens for uploads by descriptor; without the socket (the
// name is taken, say) the API works as before, bodies only.
func (s *Server) startFd() {
	name := FdSocketName(s.URL())
	if name == "" {
		return
	}
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: "@" + name, Net: "unixpacket"})
	if err != nil {
		s.log.Warn("uploads by file descriptor are off: listen on the abstract socket", "name", "@"+name, "error", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fdServer{s: s, ln: ln, ctx: ctx, cancel: cancel}
	s.fd = f
	f.wg.Add(1)
	go f.accept()
}

// fdCloseWait bounds how long close waits for uploads in flight once
// they are cancelled.
const fdCloseWait = 5 * time.Second

func (f *fdServer) close() {
	f.ln.Close()
	f.cancel()
	// An upload blocked in a read of the sender's file (a hung NFS or
	// FUSE mount) cannot be cancelled: it must not keep the node from
	// stopping. It is left to end when its read does.
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(fdCloseWait):
		f.s.log.Warn("stopping with uploads by descriptor still blocked in a read of their file; left behind", "waited", fdCloseWait)
	}
}

// Backoff of the accept loop after an error (as net/http's Serve).
const (
	fdAcceptBackoffMin = 5 * time.Millisecond
	fdAcceptBackoffMax = time.Second
)

func (f *fdServer) accept() {
	defer f.wg.Done()
	var backoff time.Duration
	for {
		conn, err := f.ln.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of descriptors (EMFILE, ENFILE) or memory: the
			// connection stays queued. Ending here would leave the name
			// bound with nobody answering: every later `tarn put`
			// would send its file and wait forever. Try again.
			backoff = min(max(2*backoff, fdAcceptBackoffMin), fdAcceptBackoffMax)
			f.s.log.Error("fd upload socket: accept failed; retrying", "error", err, "retry_in", backoff.String())
			select {
			case <-time.After(backoff):
			case <-f.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer conn.Close()
			f.serve(conn)
		}()
	}
}

// peerUID is the effective uid of the process at the other end of conn
// (SO_PEERCRED: its credentials when it connected or listened).
func peerUID(conn *net.UnixConn) (uint32, int32, error) {
	sc, err := conn.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := sc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if cerr != nil {
		return 0, 0, cerr
	}
	return cred.Uid, cred.Pid, nil
}

// answer sends one message to the CLI.
func answer(conn *net.UnixConn, a fdAnswer) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Write(b)
	return err
}

// serve handles one upload by descriptor: check the peer, take the
// request and its file, upload, answer.
func (f *fdServer) serve(conn *net.UnixConn) {
	s := f.s
	start := time.Now()
	op := Operation{Time: start.UTC(), Op: "upload"}
	var read atomic.Int64
	finish := func(a fdAnswer) {
		a.Done = true
		defer answer(conn, a) // after the books: the CLI may look at them next
		d := time.Since(start)
		op.Status, op.Error, op.Seconds, op.Duration = a.Status, oneLine(a.Error), d.Seconds(), d.Round(time.Millisecond).String()
		if a.Error == "" {
			op.Status = http.StatusCreated
		}
		s.recent.add(op)
		if m := s.cfg.Metrics; m != nil {
			m.APIRequests.WithLabelValues("upload_fd", fmt.Sprint(op.Status)).Inc()
		}
	}
	refuse := func(code int, msg string, args ...any) {
		s.failures.Add(1)
		logFailure(s.log, code, "upload by descriptor", append([]any{"status", code, "error", msg}, args...)...)
		finish(fdAnswer{Error: msg, Status: code})
	}
	uid, pid, err := peerUID(conn)
	if err != nil {
		refuse(http.StatusForbidden, fmt.Sprintf("upload by descriptor: read the peer's credentials: %v", err))
		return
	}
	if int(uid) != os.Geteuid() {
		// The file routes serve this node's user only (the token file is
		// theirs); another user's process sends bodies over TCP.
		refuse(http.StatusForbidden, fmt.Sprintf("upload by descriptor: process %d runs as uid %d, the node as uid %d", pid, uid, os.Geteuid()))
		return
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	oob := make([]byte, syscall.CmsgSpace(4*4)) // room to see (and close) extra descriptors
	n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		refuse(http.StatusBadRequest, fmt.Sprintf("upload by descriptor: read the request: %v", err))
		return
	}
	files, ferr := parseRights(oob[:oobn])
	defer func() {
		for _, fl := range files {
			fl.Close()
		}
	}()
	switch {
	case ferr != nil:
		refuse(http.StatusBadRequest, fmt.Sprintf("upload by descriptor: %v", ferr))
		return
	case flags&(syscall.MSG_CTRUNC|syscall.MSG_TRUNC) != 0:
		refuse(http.StatusBadRequest, "upload by descriptor: request too long")
		return
	}
	tok, ok := bytes.CutPrefix(buf[:n], []byte(fdMagic))
	if !ok {
		refuse(http.StatusBadRequest, "upload by descriptor: not a tarn fd-put request (or another version)")
		return
	}
	tok = bytes.TrimSuffix(tok, []byte("\n"))
	if subtle.ConstantTimeCompare(tok, []byte(s.cfg.Token)) != 1 {
		refuse(http.StatusUnauthorized, "missing or wrong API token (see the node's api.token file)", "pid", pid)
		return
	}
	if len(files) != 1 {
		refuse(http.StatusBadRequest, fmt.Sprintf("upload by descriptor: %d descriptors sent, want 1", len(files)))
		return
	}
	file := files[0]
	st0, err := statRegular(file)
	if err != nil {
		refuse(http.StatusBadRequest, "upload by descriptor: "+err.Error())
		return
	}
	conn.SetReadDeadline(time.Time{})

	// The CLI closing its end (killed, Ctrl-C) ends the upload.
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	go func() {
		var one [64]byte
		conn.Read(one[:])
		cancel()
	}()
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		t := time.NewTicker(fdProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				answer(conn, fdAnswer{Read: read.Load()})
			}
		}
	}()
	src := io.NewSectionReader(&countingReaderAt{r: file, n: &read}, 0, math.MaxInt64)
	// The user's file: other processes may write it while it is read
	// twice (the fstat comparison below misses writes through a shared
	// mapping), so the encode pass checks the key's bytes again.
	c, err := s.cfg.Files.Upload(grid.WithSourceCheck(ctx), src, st0.Size)
	close(stop)
	<-ticked
	// A file that changed while it was read gets ErrChanged, also when
	// the change made the upload fail otherwise (fewer or more bytes).
	if st1, serr := statRegular(file); serr != nil && err == nil {
		err = fmt.Errorf("upload: %w", serr)
	} else if serr == nil && !sameFile(st0, st1) && !errors.Is(err, grid.ErrChanged) {
		why := ""
		if err != nil {
			why = ": " + err.Error()
		}
		err = fmt.Errorf("upload: %w (size %d → %d, mtime %s → %s), no cap given%s", ErrChanged,
			st0.Size, st1.Size, statTime(st0.Mtim), statTime(st1.Mtim), why)
	}
	size := st0.Size
	if m := s.cfg.Metrics; m != nil {
		m.UploadDuration.WithLabelValues(result(err)).Observe(time.Since(start).Seconds())
	}
	op.Target, op.Bytes = shortCap(c), size
	if err != nil {
		code := StatusCode(err)
		// grid.ErrChanged: the encode read other bytes than the key's
		// pass, a change fstat did not show (a write through a shared
		// mapping moves no mtime); the grid checks the bytes themselves.
		changed := errors.Is(err, ErrChanged) || errors.Is(err, grid.ErrChanged)
		if changed {
			code = http.StatusConflict
		}
		s.failures.Add(1)
		logFailure(s.log, code, "upload by descriptor", "status", code, "error", err)
		a := fdAnswer{Error: err.Error(), Status: code}
		if changed {
			a.Kind = kindChanged
		}
		finish(a)
		return
	}
	s.bytesIn.Add(size)
	if m := s.cfg.Metrics; m != nil {
		m.APIBytes.WithLabelValues("in").Add(float64(size))
	}
	s.uploads.Add(1)
	s.log.Info("uploaded", "size", size, "cap", shortCap(c), "by", "descriptor")
	finish(fdAnswer{Cap: c, Size: size, Read: read.Load()})
}

// parseRights returns the descriptors in a message's control data.
func parseRights(oob []byte) ([]*os.File, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control data: %w", err)
	}
	var out []*os.File
	for _, m := range msgs {
		if m.Header.Level != syscall.SOL_SOCKET || m.Header.Type != syscall.SCM_RIGHTS {
			continue
		}
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return out, fmt.Errorf("control data: %w", err)
		}
		for _, fd := range fds {
			// Blocking reads, never the netpoller: a file the sender's Go
			// runtime opened on a pollable file system (FUSE) comes
			// O_NONBLOCK, and os.NewFile would register it with epoll;
			// epoll_ctl asks the FUSE server (FUSE_POLL) outside a system
			// call the scheduler knows of, so a hung FUSE server held a
			// thread and its P, and the next garbage collection's
			// stop-the-world waited on it forever: the whole node froze.
			// A blocking pread of a hung file holds one thread, no more.
			unix.SetNonblock(fd, false)
			out = append(out, os.NewFile(uintptr(fd), "upload"))
		}
	}
	return out, nil
}

// statRegular stats an uploaded descriptor: it must be a regular file
// open for reading.
func statRegular(f *os.File) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat the file: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("not a regular file (mode %#o): send it as a body", st.Mode&unix.S_IFMT)
	}
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return nil, fmt.Errorf("read the file's flags: %w", err)
	}
	if fl&unix.O_ACCMODE == unix.O_WRONLY {
		return nil, errors.New("the file is open for writing only")
	}
	if fl&unix.O_PATH != 0 {
		// fstat works on an O_PATH descriptor, pread does not (EBADF):
		// refuse it here with a clear answer. (The node never reopens a
		// descriptor by /proc/self/fd, so O_PATH grants it nothing.)
		return nil, errors.New("the file is open with O_PATH, not for reading")
	}
	return &st, nil
}

// sameFile: the file's content cannot have changed between two stats
// (a write moves mtime and ctime; touching mtime back moves ctime).
func sameFile(a, b *unix.Stat_t) bool {
	return a.Dev == b.Dev && a.Ino == b.Ino && a.Size == b.Size && a.Mtim == b.Mtim && a.Ctim == b.Ctim
}

func statTime(t unix.Timespec) string {
	return time.Unix(t.Sec, t.Nsec).UTC().Format(time.RFC3339Nano)
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n *atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// putFd uploads f through the node's fd socket. It returns errNoFdPath
// (wrapped) when that path cannot be used and nothing was sent.
func (c *Client) putFd(ctx context.Context, f *os.File, progress func(int64)) (string, error) {
	name := FdSocketName(c.BaseURL)
	if name == "" {
		return "", errNoFdPath
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", "@"+name)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errNoFdPath, err)
	}
	conn := nc.(*net.UnixConn)
	defer conn.Close()
	uid, pid, err := peerUID(conn)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errNoFdPath, err)
	}
	if int(uid) != os.Geteuid() {
		// Not the node (another user bound the name): send it nothing.
		return "", fmt.Errorf("%w: @%s is process %d of uid %d", errNoFdPath, name, pid, uid)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	msg := []byte(fdMagic + c.Token + "\n")
	if _, _, err := conn.WriteMsgUnix(msg, syscall.UnixRights(int(f.Fd())), nil); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: send the file: %v", errNoFdPath, err)
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", fmt.Errorf("reach the node's API at %s (by descriptor): %w", c.BaseURL, err)
		}
		var a fdAnswer
		if err := json.Unmarshal(buf[:n], &a); err != nil {
			return "", fmt.Errorf("read upload answer: %w", err)
		}
		if progress != nil && a.Read > 0 {
			progress(a.Read)
		}
		if !a.Done {
			continue
		}
		if a.Error != "" {
			return "", &Error{Status: a.Status, Msg: a.Error, changed: a.Kind == kindChanged}
		}
		if a.Cap == "" {
			return "", errors.New("read upload answer: no cap in it")
		}
		return a.Cap, nil
	}
}
