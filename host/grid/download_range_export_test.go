package grid

// RangeRetired counts the decoders f's range reads dropped after a
// cancelled decode (tests).
func RangeRetired(f *File) int {
	f.mu.Lock()
	rc := f.rc
	f.mu.Unlock()
	if rc == nil {
		return 0
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.retired
}

// RangePeak is the most decoded segments f kept at once (tests).
func RangePeak(f *File) int {
	f.mu.Lock()
	rc := f.rc
	f.mu.Unlock()
	if rc == nil {
		return 0
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.peak
}
