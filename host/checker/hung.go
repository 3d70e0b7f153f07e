package checker

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/tarnfs/tarn/host/storageclient"
)

// Servers that hang. A storage server that hangs (a stopped process, a
// black-holed path: the connection stays open, nothing answers) would
// cost every file of a deep check one ServerTimeout. Once a server has
// not answered a list within ServerTimeout, the checker remembers it as
// hung for one ServerTimeout, and so it does a server the grid client
// remembers as hung (grid.Client.Hung: a directory read or an upload
// stopped waiting for it). Checks made meanwhile do not ask it: their
// reports list it in Unreachable, as a server that did not answer. A
// probe (GetVersion), at most one at a time per server, keeps asking it
// in the background: when it answers the server is asked again (for a
// server timeout even while the grid client still remembers it), and
// while it hangs the memory is renewed, so a check of a big tree waits
// for a hung server about once in all, not once per file.

// errHung is the listing error of a server not asked because it hangs.
var errHung = errors.New("not asked: did not answer within the server timeout lately (hung)")

// hungNow reports whether server id is remembered as hung now.
func (c *Checker) hungNow(id string) bool {
	gridHung := c.cfg.Grid != nil && c.cfg.Grid.Hung(id)
	now := time.Now()
	c.hmu.Lock()
	defer c.hmu.Unlock()
	if c.probing[id] {
		return true // its probe has not answered yet
	}
	if t, ok := c.hung[id]; ok {
		if !now.After(t) {
			return true
		}
		delete(c.hung, id)
	}
	if !gridHung {
		return false
	}
	// The grid client remembers it for a server timeout from when it
	// hung; a probe that answered since (one is sent only once the grid's
	// memory was seen) shows it back: it is asked again.
	t, ok := c.thawed[id]
	return !ok || now.Sub(t) >= c.cfg.ServerTimeout
}

// noteAnswer records how a request to id begun at begin went: an answer
// clears the memory, a failure that took the server timeout (or timed
// out) marks the server hung.
func (c *Checker) noteAnswer(id string, begin time.Time, err error) {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	switch {
	case err == nil || clearAnswer(err):
		delete(c.hung, id)
	case timedOut(err) || time.Since(begin) >= c.cfg.ServerTimeout:
		c.hung[id] = time.Now().Add(c.cfg.ServerTimeout)
		delete(c.thawed, id)
	}
}

// timedOut reports whether err is a deadline that passed.
func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err)
}

// probe asks a hung server for its version in the background, unless a
// probe is out to it already.
func (c *Checker) probe(s server) {
	c.hmu.Lock()
	if c.probing[s.ID] || c.bgDone {
		c.hmu.Unlock()
		return
	}
	c.probing[s.ID] = true
	c.bg.Add(1)
	c.hmu.Unlock()
	go func() {
		defer c.bg.Done()
		begin := time.Now()
		err := c.do(c.bgCtx, s, func(ctx context.Context, cl *storageclient.Client) error {
			_, err := cl.Version(ctx)
			return err
		})
		if c.bgCtx.Err() == nil {
			c.noteAnswer(s.ID, begin, err)
		}
		c.hmu.Lock()
		delete(c.probing, s.ID)
		if err == nil {
			c.thawed[s.ID] = time.Now()
		}
		c.hmu.Unlock()
		if err == nil {
			c.log.Info("server that hung answers again", "server", s.ID)
		}
	}()
}
