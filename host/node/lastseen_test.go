package node

import (
	"testing"
	"time"
)

// TestLastSeenBeforeWatch: a server whose announcement the watch has not
// taken in yet (its goroutine has not run since the list changed) is
// shown as seen at the read, not as never seen; a later read of the same
// announcement keeps that time, and a new one moves it.
func TestLastSeenBeforeWatch(t *testing.T) {
	l := newLastSeen()
	if at := l.get("a", 0); !at.IsZero() {
		t.Fatalf("no announcement: seen %v", at)
	}
	first := l.get("a", 7)
	if first.IsZero() {
		t.Fatal("announced server shown as never seen")
	}
	time.Sleep(2 * time.Millisecond)
	if again := l.get("a", 7); !again.Equal(first) {
		t.Fatalf("same announcement moved its time: %v, then %v", first, again)
	}
	if next := l.get("a", 8); !next.After(first) {
		t.Fatalf("a new announcement kept the old time %v (got %v)", first, next)
	}
}
