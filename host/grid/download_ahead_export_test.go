package grid

// AheadCached reports the read-ahead windows f's share source holds and
// the free window buffers it keeps (tests).
func AheadCached(f *File) (wins, free int) {
	if f.src == nil {
		return 0, 0
	}
	return f.src.aheadCached()
}
