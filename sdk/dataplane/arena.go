// Package dataplane moves bulk bytes between the tarn host and its plugins
// without copying them through the plugin's gRPC socket.
//
// Two mechanisms live here:
//
//   - Arena: a memfd that host and plugin both map. The host allocates a
//     region, fills it (or asks the plugin to fill it), and the gRPC call
//     carries only offsets and lengths.
//   - FdConn: one end of a unix socketpair over which a plugin hands the host
//     open file descriptors (SCM_RIGHTS): a connected socket from a transport
//     plugin, an open file from a storage plugin.
//
// Both are offered by the host at start as extra files of the plugin's
// command (see sdk/pluginkit); a plugin that cannot use them reports so and
// the host falls back to streaming gRPC.
package dataplane

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"unsafe"
)

// pageSize is the allocation granularity of an Arena. Regions are rounded up
// to it so that small allocations cannot fragment the arena into slivers.
const pageSize = 4096

// ErrArenaFull is returned by Alloc when no free region is large enough.
// Callers fall back to the streaming gRPC path; it is not a failure.
var ErrArenaFull = errors.New("dataplane: arena full")

// Arena is a shared-memory region backed by a memfd on Linux and by an
// unlinked temporary file on the other Unixes (see arena_tempfile.go). On
// Windows there is none: NewArena and OpenArena fail with an error wrapping
// errors.ErrUnsupported, and hosts start plugins without a data plane.
type Arena struct {
	file *os.File
	mem  []byte

	mu      sync.Mutex
	free    []extent // sorted by off, coalesced
	live    int      // regions handed out and not yet freed
	closing bool     // Close was called; unmap when live reaches 0
}

type extent struct{ off, n int }

// Region is an allocated part of an Arena. Bytes aliases the shared memory.
type Region struct {
	Off   int
	Bytes []byte
	n     int // rounded length actually reserved
}

// NewArena creates a memfd (elsewhere: an unlinked temporary file) of size
// bytes, rounded up to a page, and maps it.
func NewArena(name string, size int) (*Arena, error) {
	if size <= 0 {
		return nil, fmt.Errorf("dataplane: arena size %d must be positive", size)
	}
	size = roundUp(size)
	f, err := newArenaFile(name, size)
	if err != nil {
		return nil, err
	}
	return mapArena(f, size)
}

// OpenArena maps an arena whose memfd was inherited from the host.
func OpenArena(f *os.File) (*Arena, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("dataplane: stat arena fd: %w", err)
	}
	size := int(st.Size())
	if size <= 0 || size%pageSize != 0 {
		return nil, fmt.Errorf("dataplane: arena fd has unusable size %d", size)
	}
	return mapArena(f, size)
}

// File is the memfd, to be handed to a plugin process as an extra file.
func (a *Arena) File() *os.File { return a.file }

// Size is the arena's length in bytes.
func (a *Arena) Size() int { return len(a.mem) }

// Alloc reserves n bytes. It returns ErrArenaFull when no free extent fits.
func (a *Arena) Alloc(n int) (Region, error) {
	if n <= 0 {
		return Region{}, fmt.Errorf("dataplane: alloc of %d bytes", n)
	}
	r := roundUp(n)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return Region{}, ErrClosed
	}
	for i, e := range a.free {
		if e.n < r {
			continue
		}
		off := e.off
		if e.n == r {
			a.free = append(a.free[:i], a.free[i+1:]...)
		} else {
			a.free[i] = extent{e.off + r, e.n - r}
		}
		a.live++
		return Region{Off: off, Bytes: a.mem[off : off+n : off+n], n: r}, nil
	}
	return Region{}, ErrArenaFull
}

// Free returns a region to the arena. Freeing the zero Region is a no-op.
func (a *Arena) Free(rg Region) {
	if rg.n == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	i := sort.Search(len(a.free), func(i int) bool { return a.free[i].off > rg.Off })
	a.free = append(a.free, extent{})
	copy(a.free[i+1:], a.free[i:])
	a.free[i] = extent{rg.Off, rg.n}
	// Coalesce with the next and the previous extent.
	if i+1 < len(a.free) && a.free[i].off+a.free[i].n == a.free[i+1].off {
		a.free[i].n += a.free[i+1].n
		a.free = append(a.free[:i+1], a.free[i+2:]...)
	}
	if i > 0 && a.free[i-1].off+a.free[i-1].n == a.free[i].off {
		a.free[i-1].n += a.free[i].n
		a.free = append(a.free[:i], a.free[i+1:]...)
	}
	a.live--
	if a.closing && a.live == 0 {
		a.release()
	}
}

// Slice returns the arena bytes [off, off+n), checking bounds, so that a
// plugin can never be made to touch memory outside the mapping.
func (a *Arena) Slice(off, n int) ([]byte, error) {
	if off < 0 || n < 0 || off > len(a.mem) || n > len(a.mem)-off {
		return nil, fmt.Errorf("dataplane: region [%d,+%d) outside arena of %d bytes", off, n, len(a.mem))
	}
	return a.mem[off : off+n : off+n], nil
}

// Offset reports whether b lies wholly inside the arena and, if so, where.
// Callers use it to send an offset instead of the bytes when a buffer
// already lives in shared memory (zero copy).
func (a *Arena) Offset(b []byte) (int, bool) {
	if len(b) == 0 || len(a.mem) == 0 {
		return 0, false
	}
	base := uintptr(unsafe.Pointer(&a.mem[0]))
	p := uintptr(unsafe.Pointer(&b[0]))
	if p < base || p+uintptr(len(b)) > base+uintptr(len(a.mem)) {
		return 0, false
	}
	return int(p - base), true
}

// Close closes the memfd and unmaps the arena once every region handed out
// has been freed, so that a buffer still in use (say, by a call that was in
// flight when its plugin died) never points at unmapped memory.
func (a *Arena) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return nil
	}
	a.closing = true
	err := a.file.Close()
	if a.live == 0 {
		a.release()
	}
	return err
}

func (a *Arena) release() {
	if a.mem != nil {
		unmap(a.mem)
		a.mem = nil
	}
}

func roundUp(n int) int { return (n + pageSize - 1) &^ (pageSize - 1) }
