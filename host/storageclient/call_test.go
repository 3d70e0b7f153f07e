package storageclient

import (
	"context"
	"testing"
	"time"
)

// TestCallDeadline: a call is bounded by the sooner of the caller's
// deadline and CallTimeout; a caller's sooner deadline is used as it is
// (no context of its own), a later one or none gets CallTimeout.
func TestCallDeadline(t *testing.T) {
	c := New(nil, Options{CallTimeout: time.Minute})
	cases := []struct {
		name     string
		deadline time.Duration // 0: none
		own      bool          // the call makes a context of its own
	}{
		{"no deadline", 0, true},
		{"sooner deadline", time.Second, false},
		{"later deadline", time.Hour, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			cctx, cancel := c.call(ctx)
			defer cancel()
			d, ok := cctx.Deadline()
			if !ok {
				t.Fatal("call context has no deadline")
			}
			want := min(time.Minute, tc.deadline)
			if tc.deadline == 0 {
				want = time.Minute
			}
			if left := time.Until(d); left > want || left < want-5*time.Second {
				t.Fatalf("deadline in %v, want about %v", left, want)
			}
			if own := cctx != ctx; own != tc.own {
				t.Fatalf("own context %v, want %v", own, tc.own)
			}
		})
	}
}
