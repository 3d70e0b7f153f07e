//go:build !tarn_nomemo

package grid

// memoEnabled: Modify may start from the slot memo (mutable_memo.go).
// Build with -tags tarn_nomemo to measure without it.
const memoEnabled = true
