package storageserver

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/storage"
)

// Corruption advice with a verify cap: the server checks the share itself
// and removes it only when it can prove the share is wrong. The proof must
// not be forgeable by a member who merely knows the storage index: the
// share's own extension block has to hash to the cap's UEB hash and carry
// the cap's K, N and size, which binds the cap to this share. Only then can
// a failed check (a block, a hash tree, a truncated share) mean the share is
// bad rather than the cap. A share whose extension block itself is damaged
// cannot be told from a forged cap: it is kept, and repair puts a good copy
// elsewhere (docs/repair.md).

// errUnproven: the share did not match the cap closely enough to judge.
var errUnproven = errors.New("the share's extension block does not match the cap; keeping it")

// localShare reads this server's own shares for chk.VerifyShare.
type localShare struct {
	b     storage.Backend
	index [storage.StorageIndexSize]byte
}

func (l localShare) ReadAt(ctx context.Context, sh int, p []byte, off int64) (int, error) {
	return l.b.ReadAt(ctx, storage.Ref{Index: l.index, Num: uint32(sh)}, p, off)
}

// checkAdvised verifies share ref against verifyCap and removes it when it
// is provably corrupt. One check runs at a time (a check reads the whole
// share); advice that arrives meanwhile waits its turn.
func (s *Server) checkAdvised(ctx context.Context, ref storage.Ref, verifyCap string) (bool, error) {
	c, err := cap.Parse(verifyCap)
	if err != nil {
		return false, fmt.Errorf("verify cap: %w", err)
	}
	var v cap.CHKVerify
	switch x := c.(type) {
	case cap.CHKVerify:
		v = x
	case cap.CHK:
		v = x.Verify()
	default:
		return false, fmt.Errorf("verify cap is a %s cap, want chk-verify", c.Kind())
	}
	if v.StorageIndex != ref.Index {
		return false, errors.New("verify cap is for another storage index")
	}
	select {
	case s.verifying <- struct{}{}:
		defer func() { <-s.verifying }()
	case <-ctx.Done():
		return false, ctx.Err()
	}
	src := localShare{b: s.cfg.Backend, index: ref.Index}
	head := make([]byte, chk.HeaderSize+chk.UEBSize)
	if n, err := src.ReadAt(ctx, int(ref.Num), head, 0); n != len(head) {
		if err == nil || err == io.EOF {
			return false, errUnproven // too short to hold an extension block
		}
		return false, err
	}
	raw := head[chk.HeaderSize:]
	u, err := chk.ParseUEB(raw)
	if tagged.Hash(tagged.ChkUEB, raw) != v.UEBHash || err != nil || u.K != v.K || u.N != v.N || u.Size != v.Size {
		return false, errUnproven
	}
	verr := chk.VerifyShare(ctx, v, src, int(ref.Num))
	if verr == nil || !errors.Is(verr, chk.ErrCorrupt) {
		return false, verr
	}
	if err := s.removeShare(ctx, ref); err != nil {
		return false, fmt.Errorf("remove corrupt share: %w", err)
	}
	s.removed.Add(1)
	s.log.Warn("removed a corrupt share after checking it", "share", ref.String(), "problem", verr.Error())
	return true, nil
}
