package sftp

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

// Hashing while the client writes. A convergent key needs the whole file
// before the first segment is encrypted, so a big upload is the transfer,
// then the key's pass over the file, then the encode. A file written from
// scratch (created or truncated at open) arrives mostly in order, so once
// its contiguous prefix passes streamMin an upload starts that reads the
// prefix, in order, from the spool as it grows: the grid hashes the key
// while the rest arrives. At the close the upload reads the rest and then
// encodes from the spool itself, in place (vdrive.WithSpool): the close is
// the encode alone, and no byte is copied into a spool of the grid's.
// Anything that changes bytes already read (a rewrite, a truncate) or too
// scattered a write pattern drops the stream, and the close uploads the
// spool as usual (hashing it then). Nothing is linked before the close
// either way.

const (
	// streamMin is the prefix that starts a stream (small files never
	// stream: they go to the grid in memory at the close).
	streamMin = 1 << 20
	// maxPending bounds the writes tracked beyond the contiguous prefix.
	maxPending = 4096
)

// errRewrite: bytes already streamed were changed; the spool is uploaded.
var errRewrite = errors.New("streamed bytes rewritten")

var _ io.Reader = (*stream)(nil)

// stream is an upload following a write handle's contiguous prefix.
// Its fields are guarded by the handle's mu.
type stream struct {
	h       *writeHandle
	fed     int64 // bytes the upload has read
	err     error // the stream is dropped (errRewrite or a failure)
	closing bool
	final   int64
	eof     bool // the upload has read to the end: its outcome is the close's
	wake    chan struct{}
	done    chan error // Put's result: nil once the file is stored and linked
}

// fail drops the stream (h.mu held).
func (st *stream) fail(err error) {
	if st.err == nil {
		st.err = err
	}
	st.poke()
}

func (st *stream) poke() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// track records a write of [off, end) (h.mu held) and reports whether a
// stream should start now.
func (h *writeHandle) track(off, end int64) bool {
	if !h.streamable || end <= off {
		return false
	}
	if off <= h.cont {
		h.cont = max(h.cont, end)
		for len(h.pending) > 0 {
			grew := false
			for o, e := range h.pending {
				if o <= h.cont {
					h.cont = max(h.cont, e)
					delete(h.pending, o)
					grew = true
				}
			}
			if !grew {
				break
			}
		}
	} else {
		if h.pending == nil {
			h.pending = map[int64]int64{}
		}
		h.pending[off] = max(h.pending[off], end)
		if len(h.pending) > maxPending {
			h.streamable = false
			h.pending = nil
			if h.st != nil {
				h.st.fail(fmt.Errorf("writes too scattered to stream"))
			}
			return false
		}
	}
	if h.st != nil {
		h.st.poke()
		return false
	}
	if h.cont >= streamMin && !h.closed && !h.maybeOld {
		h.st = &stream{h: h, wake: make(chan struct{}, 1), done: make(chan error, 1)}
		return true
	}
	return false
}

// startStream runs the upload: a vdrive Put of unknown size reading the
// stream, which stores the file and links it once the stream ends at the
// close. The spool file is the grid's to encode from (vdrive.WithSpool).
func (h *writeHandle) startStream() {
	h.mu.Lock()
	st := h.st
	h.mu.Unlock()
	ctx := vdrive.WithSpool(h.s.ctx, h.f)
	st.done <- h.s.d.Put(ctx, h.path, st, -1, nil)
}

// Read gives the upload the next bytes of the prefix, waiting for them,
// and the rest (holes read as zeros) once the handle closes.
func (st *stream) Read(p []byte) (int, error) {
	h := st.h
	for {
		h.mu.Lock()
		if st.err != nil {
			err := st.err
			h.mu.Unlock()
			return 0, err
		}
		end := h.cont
		if st.closing {
			end = st.final
		}
		if end <= st.fed {
			closing := st.closing
			st.eof = st.eof || closing
			h.mu.Unlock()
			if closing {
				return 0, io.EOF
			}
			<-st.wake
			continue
		}
		from := st.fed
		to := min(end, from+int64(len(p)))
		h.mu.Unlock()

		// No write is in the middle of changing the spool while it is
		// read; once fed moves, a write below it drops the stream.
		h.rw.Lock()
		n, err := h.f.ReadAt(p[:to-from], from)
		if err == io.EOF && int64(n) < to-from {
			clear(p[n : to-from]) // a hole at the end
			n, err = int(to-from), nil
		}
		h.mu.Lock()
		if err == nil {
			st.fed = to
		}
		h.mu.Unlock()
		h.rw.Unlock()
		if err != nil {
			return 0, fmt.Errorf("read spool: %w", err)
		}
		return n, nil
	}
}

// closeStream tells the stream the handle is closing (or, with failed,
// drops it) and returns it, nil when there is none.
func (h *writeHandle) closeStream(failed error) *stream {
	h.mu.Lock()
	st := h.st
	if st == nil {
		h.mu.Unlock()
		return nil
	}
	st.closing, st.final = true, h.size
	if failed != nil {
		st.fail(failed)
	}
	st.poke()
	h.mu.Unlock()
	if failed != nil {
		<-st.done // the upload is abandoned before the handle goes
		return nil
	}
	return st
}

// finishStream waits for the upload to read the rest, store and link the
// file, then sets the metadata asked for. linked false (with the reason)
// means the stream was dropped, or its upload failed before the close
// (its error is stale: the grid may be fine by now), so the spool must be
// uploaded instead. Otherwise err is the close's answer: an upload or link
// that failed after reading to the end failed at the close, as the spool's
// upload would have, and is not made again (that would double the time
// the close takes to fail).
func (h *writeHandle) finishStream(st *stream) (linked bool, why, err error) {
	done := h.s.busy()
	defer done()
	start := time.Now()
	if why := <-st.done; why != nil {
		h.mu.Lock()
		dropped, eof := st.err, st.eof
		h.mu.Unlock()
		if dropped != nil || !eof {
			return false, why, nil
		}
		h.s.log.Warn("upload failed", "path", h.path, "error", why)
		return true, nil, toStatus("close", h.path, why)
	}
	size, mode, mtime := h.stat()
	if err := h.setMeta(h.s.ctx, mode, mtime); err != nil {
		return true, nil, err
	}
	h.s.log.Debug("uploaded (streamed)", "path", h.path, "bytes", size, "close took", time.Since(start))
	return true, nil, nil
}
