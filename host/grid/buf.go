package grid

import "sync"

// bufPool recycles block buffers between the encoder and the share
// writers (which copy what they are given).
var bufPool sync.Pool

// getBuf returns a buffer of n bytes. It lives in a file that does not
// import package cap, whose name shadows the builtin cap.
func getBuf(n int) *[]byte {
	if b, ok := bufPool.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n)
	return &b
}
