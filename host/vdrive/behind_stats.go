package vdrive

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tarnfs/tarn/host/cap"
)

// What an operator sees of the write-behind: Stats (GET /v1/status,
// `tarn status`, /metrics: docs/monitoring.md), and the log. A folder
// whose change of pending links fails is retried, backing off to 30 s,
// until a change of it succeeds; each failed attempt logs at DEBUG, and
// the folder logs at WARN when it starts failing and then at most once
// per BehindConfig.WarnEvery while it keeps failing (with its path, its
// links, how long it has failed and the last error), and at INFO when its
// links are made again.

// DefaultWarnEvery is how often a folder that keeps failing is logged at
// WARN.
const DefaultWarnEvery = time.Minute

// BehindStats is what a write-behind holds now, and counts since start.
type BehindStats struct {
	// Pending links are acknowledged and not yet made, in Folders
	// folders; Oldest is when the oldest of them was acknowledged (zero:
	// none).
	Pending int       `json:"pending"`
	Folders int       `json:"folders"`
	Oldest  time.Time `json:"oldest,omitzero"`
	// Failing folders' last change of pending links failed: they are
	// being retried. FailingLinks is their links; FailingSince when the
	// first of them started failing.
	Failing      int       `json:"failing_folders"`
	FailingLinks int       `json:"failing_links"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	// Failed is the lines in FailedLinksFile now (links the operator
	// must re-link, docs/operations.md); FailedTotal the links this run
	// put there.
	Failed      int   `json:"failed_links"`
	FailedTotal int64 `json:"failed_links_total"`
	// ChangeFailures counts failed changes of pending links since start;
	// Replayed is the links replayed from the journal at start.
	ChangeFailures int64 `json:"change_failures_total"`
	Replayed       int   `json:"replayed"`
	// FailedError is why Failed could not be counted ("" when it was),
	// or that links given up (counted in Failed) could not be kept in
	// FailedLinksFile.
	FailedError string `json:"failed_error,omitempty"`
}

// behindCounts are a Behind's counters.
type behindCounts struct {
	replayed       int // set once, at open
	failedTotal    atomic.Int64
	changeFailures atomic.Int64
	// unrecorded counts links given up that could not be kept in the
	// failed links (they stay in the journal until the next start);
	// unrecordedErr is the last reason.
	unrecorded    atomic.Int64
	unrecordedErr atomic.Value // string

	// lines caches the failed links' line count by the file's size and
	// time (the CLI rewrites it while the node runs).
	mu    sync.Mutex
	size  int64
	mtime time.Time
	lines int
}

// Stats is the write-behind's figures now.
func (b *Behind) Stats() BehindStats {
	st := BehindStats{Replayed: b.st.replayed, FailedTotal: b.st.failedTotal.Load(), ChangeFailures: b.st.changeFailures.Load()}
	b.mu.Lock()
	for _, bd := range b.dirs {
		n := len(bd.pending) + len(bd.inflight)
		if n == 0 {
			continue
		}
		st.Pending += n
		st.Folders++
		for _, m := range []map[string]*plink{bd.pending, bd.inflight} {
			for _, l := range m {
				if st.Oldest.IsZero() || l.at.Before(st.Oldest) {
					st.Oldest = l.at
				}
			}
		}
		if !bd.failingSince.IsZero() {
			st.Failing++
			st.FailingLinks += n
			if st.FailingSince.IsZero() || bd.failingSince.Before(st.FailingSince) {
				st.FailingSince = bd.failingSince
			}
		}
	}
	b.mu.Unlock()
	n, err := b.failedLines()
	st.Failed = n
	if err != nil {
		st.FailedError = err.Error()
	}
	// Links given up but not kept in the file are failed links too (the
	// operator's alert reads Failed): in the journal only, made or given
	// up again at the next start.
	if u := b.st.unrecorded.Load(); u > 0 {
		st.Failed += int(u)
		why, _ := b.st.unrecordedErr.Load().(string)
		msg := fmt.Sprintf("%d links given up could not be kept in %s (they stay in the journal until the next start): %s", u, FailedLinksFile, why)
		if st.FailedError != "" {
			msg = st.FailedError + "; " + msg
		}
		st.FailedError = msg
	}
	return st
}

// failedLines counts the lines of FailedLinksFile, read again only when
// its size or time changed.
func (b *Behind) failedLines() (int, error) {
	p := filepath.Join(b.cfg.Dir, FailedLinksFile)
	fi, err := os.Stat(p)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	c := &b.st
	c.mu.Lock()
	defer c.mu.Unlock()
	if fi.Size() == c.size && fi.ModTime().Equal(c.mtime) {
		return c.lines, nil
	}
	fs, err := ReadFailedLinks(b.cfg.Dir)
	if err != nil {
		return 0, err
	}
	c.size, c.mtime, c.lines = fi.Size(), fi.ModTime(), len(fs)
	return c.lines, nil
}

// failingLocked logs and counts a failed change of bd's links (again are
// pending again, retried in wait): WARN when the folder starts failing
// and then once per WarnEvery, DEBUG otherwise. b.mu is held.
func (b *Behind) failingLocked(bd *behindDir, again []*plink, cause error, wait time.Duration) {
	b.st.changeFailures.Add(1)
	now := time.Now()
	if bd.failingSince.IsZero() {
		bd.failingSince = now
	}
	n := len(bd.pending) + len(bd.inflight)
	oldest := now
	for _, l := range again {
		if l.at.Before(oldest) {
			oldest = l.at
		}
	}
	args := []any{"folder", bd.ref.r.String(), "path", again[0].rec.Path, "links", n, "attempt", bd.retries,
		"failing_for", now.Sub(bd.failingSince).Round(time.Second), "oldest_link_age", now.Sub(oldest).Round(time.Second),
		"retry_in", wait, "error", cause}
	every := b.cfg.WarnEvery
	if every <= 0 {
		every = DefaultWarnEvery
	}
	if bd.lastWarn.IsZero() || now.Sub(bd.lastWarn) >= every {
		bd.lastWarn = now
		b.log.Warn("a folder's write-behind links cannot be made; retried until the grid takes them (docs/operations.md)", args...)
		return
	}
	b.log.Debug("making write-behind links failed; trying again", args...)
}

// recoveredLocked notes a successful change of bd's links after failures.
func (b *Behind) recoveredLocked(bd *behindDir) {
	if bd.failingSince.IsZero() {
		return
	}
	b.log.Info("a folder's write-behind links are made again", "folder", bd.ref.r.String(),
		"failed_for", time.Since(bd.failingSince).Round(time.Second), "attempts", bd.retries)
	bd.failingSince, bd.lastWarn = time.Time{}, time.Time{}
}

// waitsRetry reports whether l is pending again in folder k after a
// change of k that did not make it (the folder backs off): linkNow
// then fails at once, rather than redoing the folder's change in a
// loop (hundreds of reads a second) until its deadline.
func (b *Behind) waitsRetry(k cap.MutableRead, l *plink) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	bd := b.dirs[k]
	return bd != nil && bd.retries > 0 && bd.pending[l.rec.Name] == l
}
