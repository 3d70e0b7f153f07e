package accounts

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// ErrThrottled: too many logins are being slowed down at once; the attempt
// is refused without checking it.
var ErrThrottled = errors.New("too many failed logins; try again later")

// Throttle slows down logins after failures: per account and per remote
// address, an attempt waits Base·2^(n-1) (at most Max) after n recent
// failures, in the caller's goroutine and only as long as its context
// lives. Failures are forgotten after Forget without one. At most
// MaxWaiting callers wait at once; beyond that ErrThrottled is returned at
// once, so an attacker cannot pile up sleeping goroutines. The table of
// remote addresses is bounded by MaxEntries.
type Throttle struct {
	Base       time.Duration
	Max        time.Duration
	Forget     time.Duration
	MaxWaiting int
	MaxEntries int
	now        func() time.Time

	mu      sync.Mutex
	fails   map[string]*failures
	waiting int
}

type failures struct {
	n    int
	last time.Time
}

// Throttle defaults.
const (
	DefaultBase       = 100 * time.Millisecond
	DefaultMax        = 3 * time.Second
	DefaultForget     = 10 * time.Minute
	DefaultMaxWaiting = 64
	DefaultMaxEntries = 10000
)

// NewThrottle is a Throttle with the defaults.
func NewThrottle() *Throttle {
	return &Throttle{Base: DefaultBase, Max: DefaultMax, Forget: DefaultForget,
		MaxWaiting: DefaultMaxWaiting, MaxEntries: DefaultMaxEntries}
}

func (t *Throttle) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

// remoteKey is the table key of a remote address: the host without port,
// an IPv6 host as its /64 (one machine often owns the whole prefix).
func remoteKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.To4() == nil {
			ip = ip.Mask(net.CIDRMask(64, 128))
		}
		return "r:" + ip.String()
	}
	return "r:" + host
}

func accountKey(name string) string { return "a:" + name }

// Delay is how long an attempt for the account key and remote waits now.
func (t *Throttle) Delay(account, remote string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.delayLocked(account, remote, t.clock())
}

func (t *Throttle) delayLocked(account, remote string, now time.Time) time.Duration {
	n := max(t.countLocked(accountKey(account), now), t.countLocked(remoteKey(remote), now))
	if n == 0 {
		return 0
	}
	d := t.Base
	for i := 1; i < n && d < t.Max; i++ {
		d *= 2
	}
	return min(d, t.Max)
}

func (t *Throttle) countLocked(key string, now time.Time) int {
	f := t.fails[key]
	if f == nil {
		return 0
	}
	if now.Sub(f.last) > t.Forget {
		delete(t.fails, key)
		return 0
	}
	return f.n
}

// Wait sleeps the delay an attempt for account from remote owes, or
// returns ErrThrottled when MaxWaiting callers wait already, or ctx's
// error when it ends first.
func (t *Throttle) Wait(ctx context.Context, account, remote string) error {
	t.mu.Lock()
	d := t.delayLocked(account, remote, t.clock())
	if d == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.waiting >= t.MaxWaiting {
		t.mu.Unlock()
		return ErrThrottled
	}
	t.waiting++
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.waiting--
		t.mu.Unlock()
	}()
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Fail records a failed attempt for account from remote.
func (t *Throttle) Fail(account, remote string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock()
	if t.fails == nil {
		t.fails = map[string]*failures{}
	}
	for _, k := range []string{accountKey(account), remoteKey(remote)} {
		f := t.fails[k]
		if f == nil {
			if len(t.fails) >= t.MaxEntries {
				t.pruneLocked(now)
			}
			f = &failures{}
			t.fails[k] = f
		}
		if now.Sub(f.last) > t.Forget {
			f.n = 0
		}
		f.n++
		f.last = now
	}
}

// pruneLocked drops forgotten entries and, if the table is still full,
// arbitrary ones, so it never grows past MaxEntries.
func (t *Throttle) pruneLocked(now time.Time) {
	for k, f := range t.fails {
		if now.Sub(f.last) > t.Forget {
			delete(t.fails, k)
		}
	}
	for k := range t.fails {
		if len(t.fails) < t.MaxEntries {
			break
		}
		delete(t.fails, k)
	}
}

// Succeed forgets the failures of account and of remote.
func (t *Throttle) Succeed(account, remote string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fails, accountKey(account))
	delete(t.fails, remoteKey(remote))
}
