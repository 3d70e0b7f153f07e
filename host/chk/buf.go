package chk

// grow returns b resliced to n bytes, reallocating (to at least max(n, want)
// bytes) only when b is too small. It lives in a file that does not import
// package cap, whose name shadows the builtin cap.
func grow(b []byte, n, want int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]byte, n, max(n, want))
}
