//go:build tarn_nomemo

package grid

// memoEnabled is off in this build (-tags tarn_nomemo): every Modify reads
// the slot, as before the slot memo; for before/after measurements.
const memoEnabled = false
