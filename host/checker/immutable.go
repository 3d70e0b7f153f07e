package checker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/placement"
	"github.com/tarnfs/tarn/host/storageclient"
	"github.com/tarnfs/tarn/sdk/storage"
)

// copyChunk is the size of the reads that copy a good share to another
// server.
const copyChunk = 1 << 20

// listing is what one server answered to List.
type listing struct {
	s      server
	shares []storageclient.ShareInfo
	err    error
}

// chkState is what a CHK check knows while it runs.
type chkState struct {
	v        cap.CHKVerify
	servers  []server
	byID     map[string]server
	answered []server               // servers that answered List, ring order
	good     map[int][]string       // share -> servers with a good copy
	held     map[int]map[string]int // share -> server -> size, any state
	size     int64                  // size of a good share
	want     int                    // happiness wanted
}

// checkCHK checks (and verifies, repairs, renews) an immutable file.
func (c *Checker) checkCHK(ctx context.Context, v cap.CHKVerify, opt Options) (*Report, error) {
	if opt.Repair {
		opt.Verify = true
	}
	si := v.StorageIndex
	r := &Report{Kind: cap.KindCHK, Cap: v.String(), StorageIndex: si.String(), Needed: v.K, Total: v.N}
	servers, err := c.servers(si)
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", si, err)
	}
	st := &chkState{v: v, servers: servers, byID: map[string]server{}, good: map[int][]string{},
		held: map[int]map[string]int{}, want: min(max(c.cfg.H, v.K), v.N)}
	r.HappinessWanted = st.want
	for _, s := range servers {
		st.byID[s.ID] = s
	}

	// 1. Who holds what.
	lists := make([]listing, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		lists[i].s = s
		if c.hungNow(s.ID) {
			// It hung lately (in this check or the grid client's work):
			// not waited for again; a probe sees when it is back.
			lists[i].err = errHung
			c.probe(s)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			begin := time.Now()
			lists[i].err = c.do(ctx, s, func(ctx context.Context, cl *storageclient.Client) error {
				var err error
				lists[i].shares, err = cl.List(ctx, si)
				return err
			})
			if ctx.Err() == nil {
				c.noteAnswer(s.ID, begin, lists[i].err)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("check %s: %w", si, err)
	}
	type pair struct {
		sh int
		s  server
	}
	var pairs []pair
	for _, l := range lists {
		if l.err != nil {
			r.Unreachable = append(r.Unreachable, l.s.ID)
			c.log.Debug("server did not list shares", "server", l.s.ID, "index", si, "error", l.err)
			continue
		}
		st.answered = append(st.answered, l.s)
		for _, sh := range l.shares {
			if int(sh.Num) >= v.N {
				r.Problems = append(r.Problems, fmt.Sprintf("server %s holds share %d, beyond N=%d", l.s.ID, sh.Num, v.N))
				continue
			}
			if st.held[int(sh.Num)] == nil {
				st.held[int(sh.Num)] = map[string]int{}
			}
			st.held[int(sh.Num)][l.s.ID] = int(sh.Size)
			pairs = append(pairs, pair{int(sh.Num), l.s})
		}
	}
	r.Found = len(st.held)

	// 2. Verify each copy of each share (or trust the listing).
	states := make([]ShareReport, len(pairs))
	sem := make(chan struct{}, c.cfg.Parallel)
	for i, p := range pairs {
		states[i] = ShareReport{Share: p.sh, Server: p.s.ID, State: ShareGood}
		if !opt.Verify {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := chk.VerifyShare(ctx, v, serverSource{c: c, s: p.s, si: si}, p.sh)
			switch {
			case err == nil:
			case errors.Is(err, chk.ErrCorrupt):
				states[i].State, states[i].Problem = ShareCorrupt, err.Error()
				states[i].Removed = c.advise(ctx, p.s, v, p.sh, err.Error())
			default:
				states[i].State, states[i].Problem = ShareUnreadable, err.Error()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("check %s: %w", si, err)
	}
	r.Verified = opt.Verify
	for _, s := range states {
		r.Shares = append(r.Shares, s)
		if s.State != ShareGood {
			r.Corrupt = append(r.Corrupt, s)
			if s.Removed {
				delete(st.held[s.Share], s.Server) // the server may take a good copy now
			}
			continue
		}
		st.good[s.Share] = append(st.good[s.Share], s.Server)
		if st.size == 0 {
			st.size = int64(st.held[s.Share][s.Server])
		}
	}
	st.summarize(r)
	r.sortShares()

	// 3. Leases.
	if opt.AddLease {
		r.LeasesRenewed = c.renew(ctx, si, st.answered, func(id string) bool {
			for _, m := range st.held {
				if _, ok := m[id]; ok {
					return true
				}
			}
			return false
		})
	}

	// 4. The verdict, and a repair when asked and possible.
	switch {
	case r.Good < v.K:
		r.Outcome = Unrecoverable
	case r.Good == v.N && r.Happiness >= st.want:
		// Corrupt copies left beside good ones are reported, not fatal.
		r.Outcome = Healthy
	default:
		r.Outcome = Unhealthy
	}
	if opt.Repair && r.Outcome == Unhealthy {
		r.Repair = c.repairCHK(ctx, st)
		if r.Repair.GoodAfter == v.N && r.Repair.HappinessAfter >= st.want {
			r.Outcome = Repaired
		}
	}
	return r, nil
}

// summarize fills the counts of r from the good shares.
func (st *chkState) summarize(r *Report) {
	r.Good = len(st.good)
	r.Missing = nil
	for sh := 0; sh < st.v.N; sh++ {
		if len(st.good[sh]) == 0 {
			r.Missing = append(r.Missing, sh)
		}
	}
	srv := map[string]bool{}
	for _, ids := range st.good {
		for _, id := range ids {
			srv[id] = true
		}
	}
	r.Servers = len(srv)
	r.Happiness = placement.Happiness(st.good)
}

// advise tells a server one of its shares is corrupt, with the verify cap
// so the server can check and remove it; it reports whether the server
// removed it.
func (c *Checker) advise(ctx context.Context, s server, v cap.CHKVerify, sh int, reason string) bool {
	var removed bool
	err := c.do(ctx, s, func(ctx context.Context, cl *storageclient.Client) error {
		var err error
		removed, err = cl.AdviseCorruptionCap(ctx, storage.Ref{Index: v.StorageIndex, Num: uint32(sh)}, v.String(), reason)
		return err
	})
	if err != nil {
		c.log.Warn("could not report a corrupt share", "server", s.ID, "share", sh, "index", v.StorageIndex, "error", err)
	}
	return removed
}

// renew renews this client's lease on si at every server in servers that
// holds (wants says) something of it, and returns how many succeeded.
func (c *Checker) renew(ctx context.Context, si cap.StorageIndex, servers []server, wants func(id string) bool) int {
	var n int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range servers {
		if !wants(s.ID) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.do(ctx, s, func(ctx context.Context, cl *storageclient.Client) error {
				_, err := cl.RenewLease(ctx, si, LeaseSecret(c.cfg.LeaseSecret, si, s.ID))
				return err
			})
			if err != nil {
				if !errors.Is(err, storage.ErrNotFound) {
					c.log.Warn("renew lease", "server", s.ID, "index", si, "error", err)
				}
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return n
}

// repairCHK places the shares a plan says are missing: rebuilt from K good
// shares when no good copy exists, copied otherwise.
func (c *Checker) repairCHK(ctx context.Context, st *chkState) *RepairReport {
	v, si := st.v, st.v.StorageIndex
	rep := &RepairReport{}
	fail := func(format string, args ...any) { rep.Errors = append(rep.Errors, fmt.Sprintf(format, args...)) }
	defer func() {
		rep.GoodAfter = len(st.good)
		rep.HappinessAfter = placement.Happiness(st.good)
	}()

	// Which answering servers can take a share of this size. Those
	// announced too full for one are not asked and take no share while
	// the others number st.want, as an upload leaves them out (the same
	// rule: placement.Roomless); they still count for the shares they
	// hold. When the plan cannot reach st.want without them, they are
	// asked too: an announcement may be stale, their answer is the truth.
	ring := make([]placement.Server, len(st.answered))
	rooms := make([]placement.Room, len(st.answered))
	for i, s := range st.answered {
		ring[i].ID = s.ID
		rooms[i] = s.room
	}
	full := placement.Roomless(rooms, st.size, st.want)
	ask := func(which func(i int) bool) {
		var wg sync.WaitGroup
		for i, s := range st.answered {
			if !which(i) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.do(ctx, s, func(ctx context.Context, cl *storageclient.Client) error {
					ver, err := cl.Version(ctx)
					ring[i].Writable = err == nil && ver.Available >= st.size && (ver.MaxShareSize == 0 || ver.MaxShareSize >= st.size)
					return err
				})
			}()
		}
		wg.Wait()
	}
	ask(func(i int) bool { return !full[i] })
	pl, err := placement.Plan(placement.Params{K: v.K, H: st.want, N: v.N}, ring, st.good)
	if err != nil && len(full) > 0 {
		ask(func(i int) bool { return full[i] })
		full = nil
		pl, err = placement.Plan(placement.Params{K: v.K, H: st.want, N: v.N}, ring, st.good)
	}
	for i := range full {
		rep.LeftOutFull = append(rep.LeftOutFull, st.answered[i].ID)
	}
	slices.Sort(rep.LeftOutFull)
	if err != nil && st.want > v.K {
		// Do what can be done: at least every share somewhere.
		fail("%v", err)
		pl, err = placement.Plan(placement.Params{K: v.K, H: v.K, N: v.N}, ring, st.good)
	}
	if err != nil {
		fail("no placement: %v", err)
		return rep
	}
	writes := st.avoidHeld(pl, ring, fail)
	if len(writes) == 0 {
		return rep
	}

	// Allocate on each target server.
	byServer := map[string][]uint32{}
	for sh, id := range writes {
		byServer[id] = append(byServer[id], uint32(sh))
	}
	writers := map[int]*storageclient.ShareWriter{}
	target := map[int]string{}
	for id, nums := range byServer {
		slices.Sort(nums)
		s := st.byID[id]
		var a *storageclient.Allocation
		err := c.do(ctx, s, func(ctx context.Context, cl *storageclient.Client) error {
			var err error
			a, err = cl.Allocate(ctx, si, nums, st.size, LeaseSecret(c.cfg.LeaseSecret, si, id))
			return err
		})
		if err != nil {
			fail("server %s: %v", id, err)
			continue
		}
		for _, n := range a.AlreadyHave {
			fail("server %s already holds share %d (a copy that failed verification stays until its server drops it)", id, n)
		}
		for _, n := range a.InProgress {
			fail("server %s is receiving share %d from another upload", id, n)
		}
		for n, w := range a.Writers {
			writers[int(n)] = w
			target[int(n)] = id
		}
	}
	abortAll := func() {
		for _, w := range writers {
			w.Abort(context.WithoutCancel(ctx))
		}
	}

	var rebuild, copies []int
	for sh := range writers {
		if len(st.good[sh]) == 0 {
			rebuild = append(rebuild, sh)
		} else {
			copies = append(copies, sh)
		}
	}
	sort.Ints(rebuild)
	sort.Ints(copies)
	failed := map[int]error{}
	src := goodSource{c: c, st: st}
	if len(rebuild) > 0 {
		rp, err := chk.NewRepairer(ctx, v, c.cfg.Codec, src, rebuild, nil)
		if err == nil && rp.ShareSize() != st.size {
			err = fmt.Errorf("rebuilt shares would be %d bytes, the good ones are %d", rp.ShareSize(), st.size)
		}
		if err == nil {
			err = rp.Run(ctx, &repairSink{ctx: ctx, writers: writers, failed: failed})
		}
		if err != nil {
			fail("rebuild shares %v: %v", rebuild, err)
			for _, sh := range rebuild {
				failed[sh] = err
			}
		}
	}
	for _, sh := range copies {
		if err := c.copyShare(ctx, st, sh, writers[sh]); err != nil {
			failed[sh] = err
			fail("copy share %d: %v", sh, err)
		}
	}
	if ctx.Err() != nil {
		abortAll()
		return rep
	}
	for _, sh := range slices.Sorted(maps.Keys(writers)) {
		w := writers[sh]
		if err := failed[sh]; err != nil {
			w.Abort(context.WithoutCancel(ctx))
			if _, said := err.(writeError); said {
				fail("write share %d to server %s: %v", sh, target[sh], err)
			}
			continue
		}
		if err := w.Seal(ctx); err != nil {
			fail("seal share %d on server %s: %v", sh, target[sh], err)
			continue
		}
		if slices.Contains(rebuild, sh) {
			rep.Rebuilt = append(rep.Rebuilt, sh)
		} else {
			rep.Copied = append(rep.Copied, sh)
		}
		rep.Placed = append(rep.Placed, ShareReport{Share: sh, Server: target[sh], State: ShareGood})
		st.good[sh] = append(st.good[sh], target[sh])
	}
	return rep
}

// avoidHeld turns a plan's writes into share -> server, moving a write
// away from a server that already holds that share number (a copy that
// failed verification: the server would refuse it) to the least loaded
// writable server that does not.
func (st *chkState) avoidHeld(pl *placement.Placement, ring []placement.Server, fail func(string, ...any)) map[int]string {
	load := map[string]int{}
	for _, ids := range st.good {
		for _, id := range ids {
			load[id]++
		}
	}
	for _, id := range pl.Writes {
		load[id]++
	}
	out := map[int]string{}
	for _, sh := range slices.Sorted(maps.Keys(pl.Writes)) {
		id := pl.Writes[sh]
		if _, held := st.held[sh][id]; !held {
			out[sh] = id
			continue
		}
		best, bestN := "", -1
		for _, s := range ring {
			if _, held := st.held[sh][s.ID]; held || !s.Writable {
				continue
			}
			if bestN < 0 || load[s.ID] < bestN {
				best, bestN = s.ID, load[s.ID]
			}
		}
		if best == "" {
			fail("share %d: every writable server holds a bad copy of it already", sh)
			continue
		}
		load[id]--
		load[best]++
		out[sh] = best
	}
	return out
}

// copyShare copies a good share to its new server, chunk by chunk.
func (c *Checker) copyShare(ctx context.Context, st *chkState, sh int, w *storageclient.ShareWriter) error {
	src := goodSource{c: c, st: st}
	buf := make([]byte, copyChunk)
	for off := int64(0); off < st.size; {
		n := min(int64(len(buf)), st.size-off)
		got, err := src.ReadAt(ctx, sh, buf[:n], off)
		if int64(got) != n {
			if err == nil || err == io.EOF {
				err = fmt.Errorf("short read at %d", off)
			}
			return err
		}
		if err := w.WriteAt(ctx, buf[:n], off); err != nil {
			return writeError{err}
		}
		off += n
	}
	return nil
}

// writeError marks a failure of the destination, not of the source.
type writeError struct{ error }

func (e writeError) Unwrap() error { return e.error }

// repairSink hands the repairer's writes to the share writers; a share
// whose server fails is dropped without stopping the others.
type repairSink struct {
	ctx     context.Context
	writers map[int]*storageclient.ShareWriter
	failed  map[int]error
}

func (s *repairSink) WriteAt(ctx context.Context, sh int, p []byte, off int64) error {
	w := s.writers[sh]
	if w == nil || s.failed[sh] != nil {
		return nil
	}
	if err := w.WriteAt(ctx, p, off); err != nil {
		s.failed[sh] = writeError{err}
	}
	return ctx.Err()
}

// serverSource reads the shares of one file from one server.
type serverSource struct {
	c  *Checker
	s  server
	si cap.StorageIndex
}

func (src serverSource) ReadAt(ctx context.Context, sh int, p []byte, off int64) (int, error) {
	var data []byte
	err := src.c.do(ctx, src.s, func(ctx context.Context, cl *storageclient.Client) error {
		var err error
		data, err = cl.Read(ctx, src.si, uint32(sh), off, int64(len(p)))
		return err
	})
	n := copy(p, data)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), err == nil && n < len(p):
		return n, io.EOF
	case err != nil:
		return n, err
	}
	return n, nil
}

// goodSource reads each share from the servers known to hold a good copy
// of it, trying the next one when a read fails.
type goodSource struct {
	c  *Checker
	st *chkState
}

func (g goodSource) ReadAt(ctx context.Context, sh int, p []byte, off int64) (int, error) {
	ids := g.st.good[sh]
	if len(ids) == 0 {
		return 0, fmt.Errorf("share %d: no good copy: %w", sh, storage.ErrNotFound)
	}
	var last error
	for _, id := range ids {
		n, err := serverSource{c: g.c, s: g.st.byID[id], si: g.st.v.StorageIndex}.ReadAt(ctx, sh, p, off)
		if n == len(p) || err == io.EOF {
			return n, err
		}
		last = err
	}
	return 0, last
}

var _ chk.ShareSource = serverSource{}
var _ chk.ShareSource = goodSource{}
var _ chk.ShareSink = (*repairSink)(nil)
