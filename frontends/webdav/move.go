package webdav

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/net/webdav"

	"github.com/tarnfs/tarn/host/vdrive"
)

// serveMove answers a MOVE. x/net/webdav's own removed an existing
// destination before it tried the rename, so a MOVE whose source was
// gone (a client retrying a MOVE that had succeeded, or another client
// having moved it first) deleted the destination, often the very file
// just moved there, and answered 403. Here the source is looked up
// first (404 if missing), a file replaces a file in one rename
// (vdrive.Rename, as rename(2)), and only a collection involved in a
// replace is removed first. A missing Overwrite header means T (RFC 4918
// 10.6, as for COPY; x/net/webdav took F).
func (s *session) serveMove(w http.ResponseWriter, r *http.Request, src, dst string) {
	ctx := r.Context()
	if d := r.Header.Get("Depth"); d != "" && d != "infinity" {
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("MOVE %s: Depth must be infinity", src))
		return
	}
	if src == "/" {
		s.fail(w, r, http.StatusForbidden, errors.New("MOVE of the root collection"))
		return
	}
	if status, err := s.confirmMove(r, src, dst); err != nil {
		s.fail(w, r, status, err)
		return
	}
	from, err := s.fs.d.Stat(ctx, src)
	if err != nil {
		s.failErr(w, r, fmt.Errorf("MOVE %s: %w", src, err))
		return
	}
	if status, err := s.destParent(ctx, dst); err != nil {
		s.fail(w, r, status, fmt.Errorf("MOVE %s to %s: %w", src, dst, err))
		return
	}
	overwrite := r.Header.Get("Overwrite") != "F"
	to, err := s.fs.d.Stat(ctx, dst)
	exists := err == nil
	switch {
	case err != nil && !isNotExist(err):
		s.failErr(w, r, fmt.Errorf("MOVE %s to %s: %w", src, dst, err))
		return
	case exists && !overwrite:
		s.fail(w, r, http.StatusPreconditionFailed, fmt.Errorf("MOVE %s to %s: the destination exists and Overwrite is F", src, dst))
		return
	}
	// Every member of a moved or replaced collection goes: a lock below
	// either needs its token.
	var trees []string
	if from.IsDir() {
		trees = append(trees, src)
	}
	if exists && to.IsDir() {
		trees = append(trees, dst)
	}
	if s.refuseLockedBelow(w, r, trees...) {
		return
	}
	if exists && (from.IsDir() || to.IsDir()) {
		// rename(2) would refuse these (a folder over a file, or over a
		// folder that is not empty); MOVE replaces the destination whole.
		if err := s.fs.RemoveAll(ctx, dst); err != nil && !isNotExist(err) {
			s.failErr(w, r, fmt.Errorf("MOVE %s to %s: remove the destination: %w", src, dst, err))
			return
		}
	}
	if err := s.fs.d.Rename(ctx, src, dst); err != nil {
		if errors.Is(err, vdrive.ErrNotExist) {
			s.fail(w, r, http.StatusNotFound, fmt.Errorf("MOVE %s: gone meanwhile: %w", src, err))
			return
		}
		s.failErr(w, r, fmt.Errorf("MOVE %s to %s: %w", src, dst, err))
		return
	}
	// Locks do not move with their resources (RFC 4918 7.6): the moved
	// tree's are destroyed, and so are those below a replaced
	// destination; a lock on the destination itself now covers what
	// moved there.
	s.ls.release(src, true)
	if exists {
		s.ls.release(dst, false)
		w.WriteHeader(http.StatusNoContent)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
}

// confirmMove checks the If header of a MOVE as x/net/webdav does: the
// source and the destination must each be unlocked or locked by a token
// of the list that holds; an untagged list's conditions are about the
// source.
func (s *session) confirmMove(r *http.Request, src, dst string) (int, error) {
	now := time.Now()
	hdr := r.Header.Get("If")
	if hdr == "" {
		for _, n := range []string{src, dst} {
			if s.ls.locked(now, n) {
				return webdav.StatusLocked, fmt.Errorf("%s is locked", n)
			}
		}
		return 0, nil
	}
	lists, err := parseIf(hdr)
	if err != nil {
		return http.StatusBadRequest, err
	}
	for _, l := range lists {
		res, ok := s.ifResource(r, l, src)
		if !ok {
			continue
		}
		if _, err := s.ls.Confirm(now, res, dst, l.conditions...); err == nil {
			if res != src && s.ls.locked(now, src) {
				if _, err := s.ls.Confirm(now, src, "", tokensOf(l.conditions)...); err != nil {
					continue
				}
			}
			return 0, nil
		}
	}
	if (s.ls.locked(now, src) || s.ls.locked(now, dst)) && onlyTokens(lists) {
		return webdav.StatusLocked, fmt.Errorf("MOVE %s to %s: locked, and the If header names none of its locks", src, dst)
	}
	return http.StatusPreconditionFailed, fmt.Errorf("no list of the If header holds for %s", src)
}
