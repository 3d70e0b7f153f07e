package grid

// AheadCached reports the read-ahead windows f's share source holds and
// the free window buffers it keeps (tests).
func AheadCached(f *File) (wins, free int) {
	if f.src == nil {
		return 0, 0
	}
	return f.src.aheadCached()
}

// AheadSegs is the segments a read-ahead window holds (tests).
const AheadSegs = aheadSegs

// WaitRangeAhead waits for the read-ahead goroutines of f's range reads
// (tests), and returns the decoded segments f keeps.
func WaitRangeAhead(f *File) int {
	f.mu.Lock()
	rc := f.rc
	f.mu.Unlock()
	if rc == nil {
		return 0
	}
	rc.bg.Wait()
	return rc.cachedSegs()
}
