package vdrive

import (
	"sync"

	"github.com/tarnfs/tarn/host/cap"
)

// writingDirs counts, per directory, the files being written into it (a
// Writer open, a Put uploading) by this node's drives. Such a directory is
// not empty: a file open for creation is an entry, as on a local disk, so
// removing the directory fails with ErrNotEmpty instead of succeeding and
// leaving the file to be linked, at its close, into a directory no path
// reaches any more (its close would answer success for a file no one can
// find). Drives opened over one Behind share one count.
type writingDirs struct {
	mu sync.Mutex
	m  map[cap.MutableRead]int
}

// start counts a file being written into the directory k until done is
// called (once).
func (w *writingDirs) start(k cap.MutableRead) (done func()) {
	w.mu.Lock()
	if w.m == nil {
		w.m = map[cap.MutableRead]int{}
	}
	w.m[k]++
	w.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			if w.m[k]--; w.m[k] <= 0 {
				delete(w.m, k)
			}
			w.mu.Unlock()
		})
	}
}

// has reports whether a file is being written into the directory k.
func (w *writingDirs) has(k cap.MutableRead) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.m[k] > 0
}
