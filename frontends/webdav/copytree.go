package webdav

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sync"
	"time"

	"golang.org/x/net/webdav"

	"github.com/tarnfs/tarn/host/vdrive"
)

// maxCopyDepth bounds the nesting a COPY of a collection walks (as
// x/net/webdav's own copy does).
const maxCopyDepth = 1000

// serveCopyTree answers a COPY of the collection src with Depth infinity.
// x/net/webdav's copy walks the tree entry by entry, so each file cost a
// look-up of its new name, of its new parent and a folder change of its
// own (900 files of /usr/share/zoneinfo took 73 s). Here each folder of
// the copy costs one directory read of the source, one change to make it
// and one to link all its files (vdrive.LinkMany: immutable files are
// linked by cap, no data moves); only entries with dead properties, and
// files with a write cap (copied by content, so the copy does not alias
// the original), cost more. It reports whether it answered; false leaves
// the request to x/net/webdav (a file, a missing source, Depth 0).
func (s *session) serveCopyTree(w http.ResponseWriter, r *http.Request, src, dst string) bool {
	switch r.Header.Get("Depth") {
	case "", "infinity":
	default:
		return false
	}
	ctx := r.Context()
	in, err := s.fs.d.Stat(ctx, src)
	if err != nil || !in.IsDir() {
		return false
	}
	if status, err := s.confirmCopy(r, dst); err != nil {
		s.fail(w, r, status, err)
		return true
	}
	overwrite := r.Header.Get("Overwrite") != "F"
	created := true
	switch old, err := s.fs.d.Stat(ctx, dst); {
	case err == nil:
		if !overwrite {
			s.fail(w, r, http.StatusPreconditionFailed, fmt.Errorf("COPY %s to %s: the destination exists and Overwrite is F", src, dst))
			return true
		}
		if old != nil {
			if err := s.fs.RemoveAll(ctx, dst); err != nil && !isNotExist(err) {
				s.failErr(w, r, fmt.Errorf("COPY %s to %s: remove the destination: %w", src, dst, err))
				return true
			}
		}
		created = false
	case !isNotExist(err) && !errors.Is(err, vdrive.ErrNotDir):
		s.failErr(w, r, fmt.Errorf("COPY %s to %s: %w", src, dst, err))
		return true
	}
	if status, err := s.destParent(ctx, dst); err != nil {
		s.fail(w, r, status, fmt.Errorf("COPY %s to %s: %w", src, dst, err))
		return true
	}
	c := &treeCopy{s: s, sem: make(chan struct{}, copyParallel)}
	if err := c.tree(ctx, in, src, dst, 0); err != nil {
		s.failErr(w, r, fmt.Errorf("COPY %s to %s: %w", src, dst, err))
		return true
	}
	if created {
		w.WriteHeader(http.StatusCreated)
	} else {
		s.ls.release(dst, false) // the replaced tree's members are gone
		w.WriteHeader(http.StatusNoContent)
	}
	return true
}

// confirmCopy checks the If header of a COPY as x/net/webdav does: only
// the destination must not be locked by another (RFC 4918 7.5.1); an
// untagged list's conditions are about the destination.
func (s *session) confirmCopy(r *http.Request, dst string) (int, error) {
	now := time.Now()
	hdr := r.Header.Get("If")
	if hdr == "" {
		if s.ls.locked(now, dst) {
			return webdav.StatusLocked, fmt.Errorf("%s is locked", dst)
		}
		return 0, nil
	}
	lists, err := parseIf(hdr)
	if err != nil {
		return http.StatusBadRequest, err
	}
	for _, l := range lists {
		res, ok := s.ifResource(r, l, "")
		if !ok {
			continue
		}
		if _, err := s.ls.Confirm(now, res, dst, l.conditions...); err == nil {
			return 0, nil
		}
	}
	return http.StatusPreconditionFailed, fmt.Errorf("no list of the If header holds for %s", dst)
}

// copyParallel is how many folders of one COPY are copied at once: the
// makes of sibling folders then share their parent's change.
const copyParallel = 8

// treeCopy is one COPY of a collection under way.
type treeCopy struct {
	s   *session
	sem chan struct{} // a slot per extra goroutine
}

// tree makes dst a copy of the directory src (described by in); its
// subfolders are copied by other goroutines while slots are free, else
// in this one (so a deep tree never waits for slots it holds).
func (c *treeCopy) tree(ctx context.Context, in *vdrive.Info, src, dst string, depth int) error {
	s := c.s
	if depth >= maxCopyDepth {
		return fmt.Errorf("%s: more than %d levels deep", src, maxCopyDepth)
	}
	kids, err := s.fs.d.ReadDir(ctx, src)
	if err != nil {
		return err
	}
	if err := s.fs.d.Mkdir(ctx, dst); err != nil {
		return err
	}
	if err := copyMeta(ctx, s.fs.d, in, dst); err != nil {
		return err
	}
	links := map[string]string{}
	var withMeta, byContent, dirs []*vdrive.Info
	for _, k := range kids {
		switch {
		case s.fs.apple == AppleRefuse && isAppleDouble(k.Name()):
			// This server refuses to make them; leave them behind.
		case k.IsDir():
			dirs = append(dirs, k)
		case k.WriteCap() != "" || k.ReadCap() == "":
			byContent = append(byContent, k)
		default:
			links[k.Name()] = k.ReadCap()
			if len(k.Metadata().Extra) > 0 {
				withMeta = append(withMeta, k)
			}
		}
	}
	if len(links) > 0 {
		if err := s.fs.d.LinkMany(ctx, dst, links); err != nil {
			return err
		}
	}
	for _, k := range withMeta {
		if err := copyMeta(ctx, s.fs.d, k, path.Join(dst, k.Name())); err != nil {
			return err
		}
	}
	for _, k := range byContent {
		if err := s.copyContent(ctx, k, path.Join(dst, k.Name())); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, k := range dirs {
		if ctx.Err() != nil {
			break
		}
		from, to := path.Join(src, k.Name()), path.Join(dst, k.Name())
		select {
		case c.sem <- struct{}{}:
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-c.sem }()
				if err := c.tree(ctx, k, from, to, depth+1); err != nil {
					cancel(err)
				}
			}()
		default:
			if err := c.tree(ctx, k, from, to, depth+1); err != nil {
				cancel(err)
			}
		}
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}

// copyMeta gives the entry at dst the dead properties (and other extra
// keys) of in; a Win32LastModifiedTime among them brings its mtime, as
// setting it would. Nothing to copy costs nothing.
func copyMeta(ctx context.Context, d *drive, in *vdrive.Info, dst string) error {
	m := in.Metadata()
	if len(m.Extra) == 0 {
		return nil
	}
	_, win := m.Extra[propKey(win32Mtime)]
	return d.SetMetadata(ctx, dst, func(n *vdrive.Metadata) error {
		if n.Extra == nil {
			n.Extra = map[string]string{}
		}
		for k, v := range m.Extra {
			n.Extra[k] = v
		}
		if win && !m.Mtime.IsZero() {
			n.Mtime = m.Mtime
		}
		return nil
	})
}

// copyContent copies a file that must not be linked by its read cap (a
// mutable file: the copy would follow the original's changes) by its
// bytes.
func (s *session) copyContent(ctx context.Context, in *vdrive.Info, dst string) error {
	rd, err := s.fs.d.OpenInfo(ctx, in)
	if err != nil {
		return err
	}
	if c, ok := rd.(io.Closer); ok {
		defer c.Close()
	}
	if _, err := s.fs.d.PutLinked(ctx, dst, io.NewSectionReader(rd, 0, rd.Size()), rd.Size(), nil); err != nil {
		return err
	}
	return copyMeta(ctx, s.fs.d, in, dst)
}
