package grid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/placement"
	"github.com/tarnfs/tarn/host/storageclient"
	"github.com/tarnfs/tarn/host/tagged"
)

// smallUploadMax is the largest file that tries the one-call path: the
// file is encoded into memory first (about N/K times its size), then each
// server gets its shares in one PutShares call.
const smallUploadMax = 1 << 20

// noPutShares holds the node ids of servers that answered PutShares with
// UNIMPLEMENTED (they predate it): their uploads take the general path
// from then on, without asking again.
var noPutShares sync.Map

// memSink keeps each share's bytes in memory.
type memSink struct{ shares [][]byte }

func (m *memSink) WriteAt(_ context.Context, sh int, p []byte, off int64) error {
	if sh < 0 || sh >= len(m.shares) || off < 0 || off > int64(len(m.shares[sh]))-int64(len(p)) {
		return fmt.Errorf("share %d: %d bytes at %d pass the share size", sh, len(p), off)
	}
	copy(m.shares[sh][off:], p)
	return nil
}

// linkHealthy reports whether the client holds a connection to s whose
// last request did not fail. The one-call path writes only when every
// server has one: it plans without asking anyone, and a server it cannot
// count on could leave an upload unhappy after other servers sealed their
// shares. The general path (which surveys first) dials and re-dials.
func (c *Client) linkHealthy(s Server) bool {
	c.mu.Lock()
	cn := c.conns[s.NodeID]
	c.mu.Unlock()
	if cn == nil || !cn.mu.TryLock() { // none yet, or being dialed
		return false
	}
	defer cn.mu.Unlock()
	return cn.cl != nil && cn.addr == s.Addr && cn.refused == nil && (cn.failedAt.IsZero() || cn.okAt.After(cn.failedAt))
}

// putSmall uploads a small file with one round trip per server: when
// every known server has a healthy connection, it encodes the whole file
// into memory, plans the shares over them (in ring order, all taken as
// writable, none as holding shares already: no survey), and sends each server its shares in one PutShares
// call, which also answers for shares held already (a convergent file
// uploaded before). It reports false when anything is out of the ordinary
// (a server failed, refused, is full or old, a share is being written by
// another upload, a share found in place does not match): the caller then
// takes the general path, which finds whatever this one stored and deals
// with the rest as it always did. Servers that timed out or could not be
// reached are put in u.skip so that the general path does not wait on
// them again.
//
// A server that hangs is not waited for: servers the client remembers as
// hung are left out of the plan while the others can still be happy, and
// a PutShares that has not answered a grace after the round began, once
// the others are done (putRound), is given up: its server is remembered
// as hung and its shares placed on the next servers of the ring
// (placement.Fail), in another round, as the general path does with a
// server that fails. When the others alone cannot be happy, the late
// calls are waited for up to ServerTimeout, as before.
func (u *uploader) putSmall(plain []byte) (cap.CHK, bool) {
	c := u.c
	l := u.layout
	servers := ring(u.si[:], c.servers())
	// Servers announced too full for a share are left out like hung ones
	// (upload_room.go).
	if held := leaveOut(len(servers), c.place.H, c.hung().skip(servers, time.Now()), roomless(servers, l.ShareSize, c.place.H), nil); len(held) > 0 {
		rest := servers[:0:0]
		for i, s := range servers {
			if !held[i] {
				rest = append(rest, s)
			}
		}
		servers = rest
		c.log.Debug("upload skipped servers that hung lately or announced no room", "index", u.si.String(), "skipped", len(held), "path", "one call")
	}
	ringSrv := make([]placement.Server, 0, len(servers))
	for _, s := range servers {
		if _, old := noPutShares.Load(s.NodeID); old || !c.linkHealthy(s) {
			return cap.CHK{}, false
		}
		u.byID[s.NodeID] = s
		ringSrv = append(ringSrv, placement.Server{ID: s.NodeID, Writable: true})
	}
	pl, err := placement.Plan(c.place, ringSrv, nil)
	if err != nil || len(pl.Homeless) > 0 {
		return cap.CHK{}, false // the general path explains
	}
	slab := make([]byte, int64(l.N)*l.ShareSize)
	sink := &memSink{shares: make([][]byte, l.N)}
	for sh := range sink.shares {
		sink.shares[sh] = slab[int64(sh)*l.ShareSize : int64(sh+1)*l.ShareSize : int64(sh+1)*l.ShareSize]
	}
	// group gives each server of writes its shares, or nil when one
	// server would get more than a call carries.
	group := func(writes map[int]string) map[string]map[uint32][]byte {
		byServer := map[string]map[uint32][]byte{}
		for sh, id := range writes {
			if byServer[id] == nil {
				byServer[id] = map[uint32][]byte{}
			}
			byServer[id][uint32(sh)] = sink.shares[sh]
			if int64(len(byServer[id]))*l.ShareSize > storageclient.MaxPutBytes {
				return nil
			}
		}
		return byServer
	}
	byServer := group(pl.Writes)
	if byServer == nil {
		return cap.CHK{}, false
	}
	enc, err := chk.NewEncoder(u.ctx, c.params, u.key, l.Size, c.cfg.Codec, sink)
	if err != nil {
		return cap.CHK{}, false
	}
	var out cap.CHK
	if _, err = io.Copy(enc, bytes.NewReader(plain)); err == nil {
		out, err = enc.Close()
	} else {
		enc.Abort()
	}
	if err != nil {
		return cap.CHK{}, false
	}

	ok := true
	type held struct {
		sh int
		id string
	}
	var have []held
	var stored int64
	for round := 0; len(byServer) > 0 && ok; round++ {
		if round > len(servers) {
			ok = false
			break
		}
		begin := time.Now()
		results, late := u.putRound(byServer, pl)
		for _, r := range results {
			switch {
			case r.err != nil:
				ok = false
				if errors.Is(r.err, errors.ErrUnsupported) {
					noPutShares.Store(r.id, struct{}{})
				} else if k := errorKind(r.err); k == KindTimeout || k == KindUnreachable {
					u.skip[r.id] = true
					if k == KindTimeout && u.ctx.Err() == nil { // not the caller's deadline
						c.markHung([]string{r.id})
					}
				}
				c.log.Debug("one-call upload refused; taking the general path", "index", u.si.String(), "node", r.id, "error", r.err)
			case len(r.r.InProgress) > 0:
				ok = false
			default:
				c.hung().clear(r.id)
				stored += int64(len(r.r.Stored))
				for _, sh := range r.r.AlreadyHave {
					have = append(have, held{int(sh), r.id})
				}
			}
		}
		if len(late) == 0 {
			break
		}
		// Given up: their shares go to the next servers on the ring.
		c.gaveUp(late, time.Since(begin))
		c.log.Info("upload did not wait for servers that hang", "index", u.si.String(), "waiting", late, "path", "one call")
		moved := map[int]string{}
		for _, id := range late {
			m, err := pl.Fail(id)
			if err != nil {
				ok = false
			}
			for sh, to := range m {
				moved[sh] = to
			}
		}
		for sh, to := range moved {
			if pl.Failed(to) {
				delete(moved, sh) // moved on again by a later Fail
			}
		}
		if byServer = group(moved); byServer == nil {
			ok = false
		}
	}
	c.stats.sealed.Add(stored)
	c.stats.bytesUp.Add(stored * l.ShareSize)
	if !ok || u.ctx.Err() != nil {
		return cap.CHK{}, false
	}
	// Shares held already must be this file's: check their extension
	// block against the cap, as the general path does for shares its
	// survey finds (a mismatch is left to it, to report and replace).
	for _, h := range have {
		var head []byte
		err := c.do(u.ctx, u.byID[h.id], func(cl *storageclient.Client) error {
			rctx, cancel := c.reqCtx(u.ctx)
			defer cancel()
			var err error
			head, err = cl.Read(rctx, u.si, uint32(h.sh), 0, chk.HeaderSize+chk.UEBSize)
			return err
		})
		if err != nil || tagged.Hash(tagged.ChkUEB, head[chk.HeaderSize:]) != out.UEBHash {
			return cap.CHK{}, false
		}
	}
	c.stats.existing.Add(int64(len(have)))
	u.mu.Lock()
	u.pl = pl
	u.mu.Unlock()
	return out, true
}

// putResult is one server's answer to PutShares.
type putResult struct {
	id  string
	r   *storageclient.PutResult
	err error
}

// putRound sends each server its shares in one PutShares call and returns
// the answers. It does not wait for every call: once the others are done
// and the late ones have had mutableGrace since the round began, they are
// cancelled and returned as late, if the plan can still be happy without
// their servers (and the servers pl has failed); else they are waited for
// up to ServerTimeout. A call given up may still land: its shares are
// then extra copies, harmless.
func (u *uploader) putRound(byServer map[string]map[uint32][]byte, pl *placement.Placement) ([]putResult, []string) {
	c := u.c
	rctx, cancel := context.WithCancel(u.ctx)
	defer cancel()
	start := time.Now()
	results := make(chan putResult, len(byServer))
	for id, shares := range byServer {
		calls.Go(func() {
			var r *storageclient.PutResult
			var unsupported error
			err := c.do(rctx, u.byID[id], func(cl *storageclient.Client) error {
				rctx, cancel := c.reqCtx(rctx)
				defer cancel()
				var err error
				r, err = cl.PutSharesGrouped(rctx, u.si, u.layout.ShareSize, shares, c.leaseSecret(u.si[:], id))
				if errors.Is(err, errors.ErrUnsupported) {
					// An old server: an answer, not a fault of the link.
					unsupported, err = err, nil
				}
				return err
			})
			if unsupported != nil {
				err = unsupported
			}
			results <- putResult{id, r, err}
		})
	}
	var out []putResult
	grace := graceTimer{c: c, start: start}
	defer grace.stop()
	var timerC <-chan time.Time
	for pending := len(byServer); pending > 0; {
		select {
		case r := <-results:
			pending--
			out = append(out, r)
			if pending > 0 {
				timerC = grace.answered()
			}
			continue
		case <-timerC:
			timerC = nil
		}
		answered := map[string]bool{}
		for _, r := range out {
			answered[r.id] = true
		}
		var late []string
		var rest []placement.Server
		for _, s := range pl.Ring {
			if _, asked := byServer[s.ID]; asked && !answered[s.ID] {
				late = append(late, s.ID)
			} else if !pl.Failed(s.ID) {
				rest = append(rest, s)
			}
		}
		if _, err := placement.Plan(pl.Params, rest, nil); err != nil {
			continue // too few without them: wait up to the server timeout
		}
		return out, late
	}
	return out, nil
}
