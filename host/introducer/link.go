package introducer

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/host/nodelink"
)

// LinkState is a node's link to one introducer, for its status: whether
// it is connected (a subscriber holds the introducer's snapshot, a
// publisher had its announcement taken), since when it is in that state,
// and the last error that ended or refused a session.
type LinkState struct {
	Connected bool
	Since     time.Time
	// LastError is why the last session ended or could not start (nil
	// while none failed since the last connection).
	LastError error
	// Refused: the introducer refused this node (not a member of its grid,
	// or another grid's name); retried every Backoff.Refused.
	Refused bool
}

// link keeps a LinkState.
type link struct {
	mu sync.Mutex
	st LinkState
}

func newLink(now time.Time) *link { return &link{st: LinkState{Since: now}} }

func (l *link) get() LinkState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

func (l *link) up(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.st.Connected {
		l.st = LinkState{Connected: true, Since: now}
	}
}

func (l *link) down(now time.Time, err error, refused bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st.Connected {
		l.st.Since = now
	}
	l.st.Connected, l.st.LastError, l.st.Refused = false, err, refused
}

// refusal returns, when err is the introducer refusing this node rather
// than a link fault, an error saying so in one line that names the cause:
// "introducer refused this node: not a member of this grid (grid secret
// differs)". It wraps nodelink.ErrNotMember for a membership refusal. It
// returns nil for any other error.
func refusal(err error) error {
	if err == nil {
		return nil
	}
	var gs interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &gs) {
		if errors.Is(err, nodelink.ErrNotMember) {
			return fmt.Errorf("introducer refused this node: %w", err)
		}
		return nil
	}
	st := gs.GRPCStatus()
	msg := st.Message()
	switch st.Code() {
	case codes.PermissionDenied:
		why := strings.TrimPrefix(msg, nodelink.ErrNotMember.Error()+": ")
		switch {
		case strings.Contains(why, "another grid secret"):
			why = "grid secret differs"
		case strings.Contains(why, "no grid membership proof"):
			why = "this node has no grid secret"
		}
		return fmt.Errorf("introducer refused this node: %w (%s)", nodelink.ErrNotMember, why)
	case codes.InvalidArgument:
		// The introducer serves another grid name (Subscribe), or drops
		// this node's announcement as another grid's (Publish).
		if strings.Contains(msg, "introducer serves grid") || strings.Contains(msg, ErrOtherGrid.Error()) {
			return fmt.Errorf("introducer refused this node: %s", msg)
		}
	}
	return nil
}
