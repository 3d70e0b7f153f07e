package sftp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// The largest file a client may make. Grid files are immutable and a
// handle's content is uploaded whole at its close, so a 1-byte WRITE at
// offset 1 TiB would make the close upload 1 TiB of zeros (and spool
// them sparsely until then). A WRITE, a truncate that extends (SETSTAT or
// FSETSTAT size) and a legacy scp file are refused when the file would
// grow past what the grid can store: the free space its storage servers
// announce (what statvfs reports) divided by the expansion N/K, or past
// the profile's sftp.max_file_size when that is smaller; and, whatever the
// limits, past maxSize, the most any file can hold here.

// ErrTooLarge: the file would be larger than the grid can store or than
// max_file_size allows (errors.Is; the error is a *TooLargeError).
var ErrTooLarge = errors.New("file too large")

// maxSize is the most bytes a file can hold: offsets and sizes are
// int64, so a WRITE ending past it, or a (uint64) SETSTAT size over it,
// would wrap negative.
const maxSize = math.MaxInt64

// TooLargeError says why a size is refused.
type TooLargeError struct {
	Size  uint64 // the size the file would have
	Limit int64  // the largest allowed
	// Operator: the limit is sftp.max_file_size, not the grid's room.
	Operator bool
	// Max: Size is past maxSize, the most any file can hold.
	Max bool
	// Space is the grid's space behind Limit (when not Operator).
	Space Space
}

func (e *TooLargeError) Error() string {
	if e.Max {
		return fmt.Sprintf("file too large: %s, more than a file can hold (%s)", humanSize(e.Size), humanSize(uint64(e.Limit)))
	}
	if e.Operator {
		return fmt.Sprintf("file too large: %s, more than this server's max_file_size %s", humanSize(e.Size), humanSize(uint64(e.Limit)))
	}
	sp := e.Space
	if sp.K > 0 && sp.N >= sp.K && sp.Raw > 0 {
		need := uint64(float64(e.Size) * float64(sp.N) / float64(sp.K))
		return fmt.Sprintf("file too large: %s needs %s of the grid's %s free (%d-of-%d shares)", humanSize(e.Size), humanSize(need), humanSize(sp.Raw), sp.K, sp.N)
	}
	return fmt.Sprintf("file too large: %s, the grid has room for %s", humanSize(e.Size), humanSize(uint64(e.Limit)))
}

func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// humanSize writes n bytes with one decimal in the largest binary unit
// it reaches: "1.0 TiB", "40.0 GiB", "512 B".
func humanSize(n uint64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return fmt.Sprintf("%.1f %s", v, units[u])
}

// spaceCacheFor is how long the grid's space is reused for the check:
// servers announce it every few minutes, and a check runs at most once
// per growing handle and second.
const spaceCacheFor = time.Second

// sizeLimit is the server's largest-file check, shared by its sessions.
type sizeLimit struct {
	max   int64 // sftp.max_file_size (0: none)
	space func(context.Context) (Space, error)

	mu  sync.Mutex
	at  time.Time
	sp  Space
	err error
}

// limit is the largest file allowed now, and the space it comes from.
// An unknown space (no Space func, an error, or no free space announced
// at all) sets no grid limit: the upload then fails at the close if the
// grid cannot store it, as before.
func (l *sizeLimit) limit(ctx context.Context) (int64, bool, Space) {
	lim, op := int64(-1), false
	if l.max > 0 {
		lim, op = l.max, true
	}
	if l.space == nil {
		return lim, op, Space{}
	}
	l.mu.Lock()
	if time.Since(l.at) > spaceCacheFor {
		l.sp, l.err = l.space(ctx)
		l.at = time.Now()
	}
	sp, err := l.sp, l.err
	l.mu.Unlock()
	if err == nil && sp.Free > 0 && sp.Free < 1<<62 && (lim < 0 || int64(sp.Free) < lim) {
		lim, op = int64(sp.Free), false
	}
	return lim, op, sp
}

// check refuses a file of size bytes over the limit; lim is the limit
// (-1: none).
func (l *sizeLimit) check(ctx context.Context, size int64) (int64, error) {
	lim, op, sp := l.limit(ctx)
	if lim < 0 || size <= lim {
		return lim, nil
	}
	return lim, &TooLargeError{Size: uint64(size), Limit: lim, Operator: op, Space: sp}
}

// grow checks that h may grow to end bytes (a WRITE's end, a truncate's
// size). Below the limit last seen nothing is asked; a refusal is
// logged once per handle. A negative end is a size past maxSize that
// wrapped (a uint64 size cast, a WRITE's offset+length): uint64(end) is
// the size asked for.
func (h *writeHandle) grow(end int64) error {
	if end < 0 {
		return h.refuseSize(&TooLargeError{Size: uint64(end), Limit: maxSize, Max: true})
	}
	h.mu.Lock()
	ok := end <= h.size || end <= h.allowed
	h.mu.Unlock()
	if ok || h.s.limit == nil {
		return nil
	}
	lim, err := h.s.limit.check(h.s.ctx, end)
	if err != nil {
		return h.refuseSize(err)
	}
	if lim < 0 {
		lim = maxSize
	}
	h.mu.Lock()
	h.allowed = max(h.allowed, lim)
	h.mu.Unlock()
	return nil
}

// refuseSize logs a size refusal, once per handle, and returns it.
func (h *writeHandle) refuseSize(err error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.tooLarge {
		h.tooLarge = true
		h.s.log.Warn("refused: file too large", "path", h.path, "account", h.s.account, "error", err)
	}
	return err
}
