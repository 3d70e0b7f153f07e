package vdrive

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/dirnode"
)

// A link written behind is made only into the folder it was acknowledged
// in, and only while that folder is still where the user put it: at its
// path (linkRecord.Path) under the root of the drive that acknowledged it
// (linkRecord.Root). Before a change makes a folder's pending links, each
// link's path is walked from its root (pathCheck); a link whose folder is
// no longer there (another node removed it, moved it, or put another
// folder or a file at its path) is not made but kept in the failed links
// with ErrFolderGone. Before, such a link was made in the removed folder,
// where no path reaches it: an acknowledged file lost to its users' view.
//
// The walk trusts a folder of the path read or written within
// PathCacheTTL (1 s, the frontends' folder cache) and reads the others;
// a walk that finds the folder gone is done again on fresh reads before
// its verdict counts. So a removal by another node is seen at the latest
// one cache period after it, as every other operation of a frontend
// sees it, and a change costs no extra read while its path was read or
// written in the last second (rclone and cp -r into one folder: a fresh
// walk per change tripled the folder reads per file). A removal racing
// the link within that period is a race either way: made a moment
// later, the link would have been made before the removal and gone with
// the folder.
//
// Not re-made at the path: a folder there now is another one (another
// user's choice), and a file of the same name in it would be silently
// replaced; re-creating a removed folder would undo another user's
// removal. The operator re-links it where it belongs (tarn links).
//
// This node's own moves and removals of a folder make the pending links
// below it first (flushUnder, from Rename and RemoveAll), as they were
// acknowledged before: they move (or go) with their folder. A link
// acknowledged while such a move is under way carries where the move
// takes its folder (linkRecord.Moved), so that a replay after a crash
// follows the move as the node's memory of its moves did.

// ErrFolderGone: a link's folder is no longer at the path it was written
// to (removed, moved or replaced by another node); the link is kept in
// the failed links.
var ErrFolderGone = errors.New("folder no longer at its path")

// recordPath checks a record's root and path: the root's read cap and
// the path's parts; ok is false for a record without them (older
// versions).
func recordPath(rec linkRecord) (root cap.DirRead, parts []string, ok bool, err error) {
	if rec.Root == "" && rec.Path == "" {
		return cap.DirRead{}, nil, false, nil
	}
	c, err := cap.Parse(rec.Root)
	if err != nil {
		return cap.DirRead{}, nil, false, fmt.Errorf("root cap: %w", err)
	}
	r, isDir := c.(cap.DirRead)
	if !isDir {
		return cap.DirRead{}, nil, false, fmt.Errorf("root cap is a %s cap, want tarn:dir-ro:", c.Kind())
	}
	parts, err = SplitPath(rec.Path)
	if err != nil || JoinPath(parts) != rec.Path {
		return cap.DirRead{}, nil, false, fmt.Errorf("path %q is not clean", rec.Path)
	}
	return r, parts, true, nil
}

// pathCheck sets gone on each link of ls whose folder k is no longer at
// its path: ErrFolderGone, or the error that kept the walk from proving
// the folder there (the link then waits and is retried). Links of one
// root and path share one walk.
func (b *Behind) pathCheck(ctx context.Context, k cap.MutableRead, ls []*plink) {
	verdicts := map[[2]string]error{}
	for _, l := range ls {
		l.gone = nil
		root, parts, ok, err := recordPath(l.rec)
		if err != nil || !ok {
			continue // checked at replay; older records are not checked
		}
		key := [2]string{l.rec.Root, l.rec.Path + "\x00" + strings.Join(l.rec.Moved, "\x00")}
		v, seen := verdicts[key]
		if !seen {
			v = b.reachable(ctx, root, parts, k, b.pathCacheTTL())
			if errors.Is(v, ErrFolderGone) {
				v = b.reachable(ctx, root, parts, k, 0)
			}
			if errors.Is(v, ErrFolderGone) {
				// This node's own move of the folder (or of one above it)
				// while the link waited: it follows the folder.
				// Its record keeps the path it was written to (setMeta
				// copies it meanwhile); the next check follows again.
				if b.followOwnMoves(ctx, root, l.rec.Root, l.rec.Path, k) || b.followRecordedMoves(ctx, root, l.rec.Moved, k) {
					v = nil
				}
			}
			verdicts[key] = v
		}
		l.gone = v
	}
}

// ownMoves are this node's latest moves of folders (Rename through a
// drive over the write-behind). A file put into a folder while this
// node moves it is acknowledged before or after the move lands; without
// write-behind its link would go into the folder by its cap and so move
// with it. Its path check then finds the path gone, and is tried again
// along the moves: the folder's identity at the end of the walk decides,
// so a wrong or stale move only costs a walk.
type ownMoves struct {
	mu sync.Mutex
	l  []ownMove // oldest first, at most maxOwnMoves
}

type ownMove struct {
	root     string // the mover's root (read cap)
	from, to string // paths under it
}

// maxOwnMoves bounds ownMoves; a link pending across more moves than
// this (a long outage of the grid) is checked against the latest ones.
const maxOwnMoves = 256

func (m *ownMoves) add(mv ownMove) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.l = append(m.l, mv)
	if len(m.l) > maxOwnMoves {
		m.l = slices.Delete(m.l, 0, len(m.l)-maxOwnMoves)
	}
}

// moved is where p went by the latest move of it or of a folder above
// it under root ("", false: none).
func (m *ownMoves) moved(root, p string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.l) - 1; i >= 0; i-- {
		mv := m.l[i]
		if mv.root != root {
			continue
		}
		if p == mv.from {
			return mv.to, true
		}
		if strings.HasPrefix(p, mv.from+"/") {
			return mv.to + p[len(mv.from):], true
		}
	}
	return "", false
}

// followOwnMoves reports whether p, moved by this node's own moves (a
// few in a row), reaches k on fresh reads.
func (b *Behind) followOwnMoves(ctx context.Context, root cap.DirRead, rs, p string, k cap.MutableRead) bool {
	for range 8 {
		next, ok := b.moves.moved(rs, p)
		if !ok || next == p {
			return false
		}
		p = next
		parts, err := SplitPath(p)
		if err != nil {
			return false
		}
		if b.reachable(ctx, root, parts, k, 0) == nil {
			return true
		}
	}
	return false
}

// followRecordedMoves reports whether one of the paths a record's link
// was being moved to when it was acknowledged (linkRecord.Moved) reaches
// k on fresh reads: a replay after a crash in the middle of this node's
// move of the folder, when its memory of the move (ownMoves) is gone.
func (b *Behind) followRecordedMoves(ctx context.Context, root cap.DirRead, moved []string, k cap.MutableRead) bool {
	for _, p := range moved {
		parts, err := SplitPath(p)
		if err != nil || JoinPath(parts) != p {
			return false
		}
		if b.reachable(ctx, root, parts, k, 0) == nil {
			return true
		}
	}
	return false
}

// movesOf is where this node's moves under way (or done lately) take
// path p under root, in turn, for a new link's record (linkRecord.Moved);
// nil when none does.
func (m *ownMoves) movesOf(root, p string) []string {
	var out []string
	for range 8 {
		next, ok := m.moved(root, p)
		if !ok || next == p || slices.Contains(out, next) {
			break
		}
		out = append(out, next)
		p = next
	}
	return out
}

// DefaultPathCacheTTL is BehindConfig.PathCacheTTL's default.
const DefaultPathCacheTTL = time.Second

func (b *Behind) pathCacheTTL() time.Duration {
	switch {
	case b.cfg.PathCacheTTL < 0:
		return 0
	case b.cfg.PathCacheTTL == 0:
		return DefaultPathCacheTTL
	}
	return b.cfg.PathCacheTTL
}

// reachable reports (nil) whether walking parts from root ends at the
// folder k; ErrFolderGone when it does not. Folders read or written
// within ttl are taken from the node's roots (0: every folder read
// fresh).
func (b *Behind) reachable(ctx context.Context, root cap.DirRead, parts []string, k cap.MutableRead, ttl time.Duration) error {
	slots, err := b.walk(ctx, root, parts, ttl)
	if err != nil {
		return err
	}
	if slots[len(slots)-1] != k {
		return fmt.Errorf("%w: %s is now another folder (the one written to was removed, moved or replaced by another node)", ErrFolderGone, JoinPath(parts))
	}
	return nil
}

// walk follows parts from root and returns the folders it passes, root
// first; ErrFolderGone when a part is missing or not a folder.
func (b *Behind) walk(ctx context.Context, root cap.DirRead, parts []string, ttl time.Duration) ([]cap.MutableRead, error) {
	recent := rootCache{ttl: ttl, m: b.d.roots.m}
	ref := dirRef{r: root}
	slots := make([]cap.MutableRead, 0, len(parts)+1)
	slots = append(slots, root.Slot)
	for i, name := range parts {
		var dir *dirnode.Dir
		var err error
		if bs, ok := recent.get(ref.r.Slot); ok {
			dir, err = dirnode.Open(bs, ref.keys(), b.d.chunks, b.d.cache)
		} else {
			dir, _, err = b.d.loadCached(ctx, ref, false)
		}
		if err != nil {
			return nil, err
		}
		e, ok, err := dir.Lookup(ctx, name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s is gone from its root (removed or moved by another node)", ErrFolderGone, JoinPath(parts[:i+1]))
		}
		c, err := cap.Parse(e.ReadCap)
		if err != nil {
			return nil, fmt.Errorf("%w: %s now holds an unreadable cap", ErrFolderGone, JoinPath(parts[:i+1]))
		}
		rc, isDir := c.(cap.DirRead)
		if e.Meta.Type != TypeDir || !isDir {
			return nil, fmt.Errorf("%w: %s is now a file", ErrFolderGone, JoinPath(parts[:i+1]))
		}
		ref = dirRef{r: rc}
		slots = append(slots, rc.Slot)
	}
	return slots, nil
}

// flushUnder makes the pending links of every folder at or below parts
// under root, before this node moves or removes that folder: they were
// acknowledged first, and go with it. Links written through another
// root (an SFTP account rooted in a subfolder, a drive at the alias
// above it) go too when their path passes through the folder moved:
// their path check would otherwise find their folder gone.
//
// to is where a move puts the folder (nil for a removal): a link put
// into the folder while the move is under way follows it there
// (ownMoves).
func (b *Behind) flushUnder(ctx context.Context, root cap.DirRead, parts, to []string) error {
	rs := root.String()
	p := JoinPath(parts)
	if to != nil {
		b.moveMu.Lock()
		b.moves.add(ownMove{root: rs, from: p, to: JoinPath(to)})
		b.moveMu.Unlock()
	}
	under := func(l *plink) bool {
		return l.rec.Root == rs && (l.rec.Path == p || strings.HasPrefix(l.rec.Path, p+"/"))
	}
	b.mu.Lock()
	var ks []cap.MutableRead
	others := map[cap.MutableRead][]linkRecord{} // folders with links of other roots
	for k, bd := range b.dirs {
		found := false
		for _, m := range []map[string]*plink{bd.pending, bd.inflight} {
			for _, l := range m {
				if under(l) {
					found = true
					break
				}
				if l.rec.Root != rs && l.rec.Root != "" {
					others[k] = append(others[k], l.rec)
				}
			}
			if found {
				break
			}
		}
		if found {
			ks = append(ks, k)
			delete(others, k)
		}
	}
	b.mu.Unlock()
	if len(others) > 0 {
		// The folder moved, by its identity; a path that passes through
		// it (through any root) holds links that go with it.
		if slots, err := b.walk(ctx, root, parts, b.pathCacheTTL()); err == nil && len(parts) > 0 {
			moved := slots[len(slots)-1]
			walked := map[[2]string]bool{}
			for k, recs := range others {
				if k == moved {
					ks = append(ks, k)
					continue
				}
				for _, rec := range recs {
					key := [2]string{rec.Root, rec.Path}
					through, seen := walked[key]
					if !seen {
						if r, rparts, ok, err := recordPath(rec); err == nil && ok {
							s, err := b.walk(ctx, r, rparts, b.pathCacheTTL())
							through = err == nil && slices.Contains(s, moved)
						}
						walked[key] = through
					}
					if through {
						ks = append(ks, k)
						break
					}
				}
			}
		}
	}
	for _, k := range ks {
		if err := b.flushPending(ctx, k); err != nil {
			return err
		}
	}
	return nil
}
