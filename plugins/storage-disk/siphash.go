//go:build unix

package storagedisk

import "github.com/dchest/siphash"

// sipHash24 is SipHash-2-4 (Aumasson and Bernstein) of m under the
// 128-bit key (k0, k1): a keyed hash whose output nobody without the key
// can predict. A version 2 pack tags each record header with it under the
// pack's random key, so that a record forged inside a client's share
// bytes is never taken for a real one (docs/formats.md). SipHash rather
// than a keyed BLAKE3: a record header is 32 bytes and the scan after
// damage hashes one at every magic, where SipHash costs tens of
// nanoseconds. TestSipHash checks it against the paper's vectors.
func sipHash24(k0, k1 uint64, m []byte) uint64 {
	return siphash.Hash(k0, k1, m)
}
