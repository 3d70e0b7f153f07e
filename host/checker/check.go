package checker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/dirnode"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/vdrive"
)

// Check checks the file or directory cp names. Any cap will do, a verify
// cap included (a directory's chunks are only checked with a read or
// write cap: their caps are inside the encrypted directory). The error is
// for what stopped the check itself (no servers, a canceled context, a cap
// of an unknown kind); what the check found is in the Report.
func (c *Checker) Check(ctx context.Context, cp cap.Cap, opt Options) (*Report, error) {
	switch v := cp.(type) {
	case cap.Literal:
		return &Report{Kind: cap.KindLiteral, Outcome: Healthy, Verified: true}, nil
	case cap.CHK:
		return c.checkCHK(ctx, v.Verify(), opt)
	case cap.CHKVerify:
		return c.checkCHK(ctx, v, opt)
	case cap.MutableWrite, cap.MutableRead, cap.MutableVerify:
		return c.checkMutable(ctx, cp, cap.KindMutable, opt)
	case cap.DirWrite:
		rc := v.ReadCap().Slot
		return c.checkDir(ctx, v.Slot, &rc, opt)
	case cap.DirRead:
		return c.checkDir(ctx, v.Slot, &v.Slot, opt)
	case cap.DirVerify:
		return c.checkDir(ctx, v.Slot, nil, opt)
	case nil:
		return nil, fmt.Errorf("check: %w: no cap", ErrBadCap)
	}
	return nil, fmt.Errorf("check %s cap: %w", cp.Kind(), ErrBadCap)
}

// checkMutable checks a mutable file's slot shares through the grid
// client, which validates every share's signature and proof and rebuilds
// the current version from K shares.
func (c *Checker) checkMutable(ctx context.Context, cp cap.Cap, kind string, opt Options) (*Report, error) {
	if c.cfg.Grid == nil {
		return nil, fmt.Errorf("check %s cap: %w: this checker has no grid client for mutable files", cp.Kind(), ErrBadCap)
	}
	vc, err := cap.Diminish(cp)
	if err != nil {
		return nil, fmt.Errorf("check: %w: %w", ErrBadCap, err)
	}
	si := vc.(cap.MutableVerify).StorageIndex()
	r := &Report{Kind: kind, Cap: vc.String(), StorageIndex: si.String(), Verified: true}
	fill := func(mc *grid.MutableCheck) {
		r.Version, r.Needed, r.Total, r.Good, r.Found = mc.Seq, mc.K, mc.N, mc.Good, mc.Good
		r.Missing, r.Servers, r.Happiness = mc.Missing, mc.Servers, mc.Servers
		r.HappinessWanted = min(max(c.cfg.H, mc.K), mc.N)
		r.Problems = mc.Problems
		for seq, n := range mc.Others {
			r.Problems = append(r.Problems, fmt.Sprintf("%d share(s) of version %d besides the current one", n, seq))
		}
		switch {
		case mc.Seq == 0:
			r.Outcome = Unrecoverable
		case mc.Healthy:
			r.Outcome = Healthy
		default:
			r.Outcome = Unhealthy
		}
	}
	mc, err := c.cfg.Grid.VerifyMutable(ctx, cp)
	switch {
	case errors.Is(err, grid.ErrNoSlot):
		r.Outcome = Unrecoverable
		r.Problems = append(r.Problems, "no share found on any server")
		return r, nil
	case err != nil:
		return nil, fmt.Errorf("check %s: %w", si, err)
	}
	fill(mc)
	if opt.AddLease {
		if servers, err := c.servers(si); err == nil {
			r.LeasesRenewed = c.renew(ctx, si, servers, func(string) bool { return true })
		}
	}
	if !opt.Repair || r.Outcome != Unhealthy {
		return r, nil
	}
	rep := &RepairReport{}
	r.Repair = rep
	mr, err := c.cfg.Grid.RepairMutable(ctx, cp)
	if mr != nil {
		rep.Rebuilt, rep.Errors, rep.LeftOutFull = mr.Written, mr.Failed, mr.LeftOutFull
	}
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	after, err := c.cfg.Grid.VerifyMutable(ctx, cp)
	if err != nil {
		rep.Errors = append(rep.Errors, "check after repair: "+err.Error())
		return r, nil
	}
	rep.GoodAfter, rep.HappinessAfter = after.Good, after.Servers
	if after.Healthy {
		r.Outcome = Repaired
	}
	return r, nil
}

// checkDir checks a directory's slot and, with its read cap, the
// immutable chunks that hold its larger buckets.
func (c *Checker) checkDir(ctx context.Context, slot cap.Cap, read *cap.MutableRead, opt Options) (*Report, error) {
	r, err := c.checkMutable(ctx, slot, cap.KindDir, opt)
	if err != nil || read == nil || r.Outcome == Unrecoverable || c.cfg.Grid == nil {
		return r, err
	}
	b, _, err := c.cfg.Grid.ReadMutable(ctx, *read)
	if err != nil {
		r.Problems = append(r.Problems, "read directory: "+err.Error())
		return r, nil
	}
	root, err := dirnode.DecodeRoot(b)
	if err != nil {
		r.Problems = append(r.Problems, "decode directory: "+err.Error())
		r.Outcome = worst(r.Outcome, Unhealthy)
		return r, nil
	}
	for _, ref := range root.Chunks() {
		cp, err := cap.Parse(ref)
		if err != nil {
			r.Problems = append(r.Problems, "chunk reference: "+err.Error())
			r.Outcome = worst(r.Outcome, Unhealthy)
			continue
		}
		cr, err := c.Check(ctx, cp, opt)
		if err != nil {
			return nil, fmt.Errorf("check directory chunk: %w", err)
		}
		r.Children = append(r.Children, cr)
		r.Outcome = worst(r.Outcome, cr.Outcome)
	}
	return r, nil
}

// rank orders outcomes from best to worst.
var rank = map[Outcome]int{Healthy: 0, Repaired: 1, Unhealthy: 2, Unrecoverable: 3}

func worst(a, b Outcome) Outcome {
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// Resolve returns the cap of what path p names under root ("" or "/":
// root itself, which may then be any cap; otherwise root must be a
// directory read or write cap), reading directories along the path.
func (c *Checker) Resolve(ctx context.Context, root, p string) (cap.Cap, error) {
	cp, err := cap.Parse(root)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCap, err)
	}
	if strings.Trim(p, "/") == "" {
		return cp, nil
	}
	d, err := c.drive(cp)
	if err != nil {
		return nil, err
	}
	info, err := d.Stat(ctx, p)
	if err != nil {
		return nil, err
	}
	return cap.Parse(info.ReadCap())
}

// CheckPath checks what path p names under root (see Resolve).
func (c *Checker) CheckPath(ctx context.Context, root, p string, opt Options) (*Report, error) {
	cp, err := c.Resolve(ctx, root, p)
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", p, err)
	}
	r, err := c.Check(ctx, cp, opt)
	if r != nil && strings.Trim(p, "/") != "" {
		r.Path = p
	}
	return r, err
}

// drive opens the vdrive under a directory cap.
func (c *Checker) drive(cp cap.Cap) (*vdrive.Drive, error) {
	if c.cfg.Grid == nil {
		return nil, fmt.Errorf("%w: this checker has no grid client for directories", ErrBadCap)
	}
	switch cp.(type) {
	case cap.DirWrite, cap.DirRead:
	case cap.DirVerify:
		return nil, fmt.Errorf("%w: a directory verify cap cannot list the directory; give its read or write cap", ErrBadCap)
	default:
		return nil, fmt.Errorf("%w: a path needs a directory cap before it, not a %s cap", ErrBadCap, cp.Kind())
	}
	return vdrive.New(vdrive.GridStore(c.cfg.Grid), cp.String())
}
