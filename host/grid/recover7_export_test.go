package grid

import (
	"testing"
	"time"
)

// SetRetryAfter sets the back-off of servers (and shares) whose reads
// failed, for Files opened from now on until the test ends (tests).
func SetRetryAfter(t testing.TB, d time.Duration) {
	old := testRetryAfter.Swap(int64(d))
	t.Cleanup(func() { testRetryAfter.Store(old) })
}
