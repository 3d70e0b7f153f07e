package grid

import "time"

// SetMemoTTL makes slot memos made from now on last d (MutableMemoTTL
// otherwise), for tests that must not depend on the machine's speed; it
// returns the function that restores the TTL.
func SetMemoTTL(d time.Duration) func() {
	old := memoTTL.Swap(int64(d))
	return func() { memoTTL.Store(old) }
}
