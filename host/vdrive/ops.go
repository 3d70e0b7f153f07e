package vdrive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/dirnode"
)

// locate splits a path into its parent's components and final name; the
// root has no name (ok false).
func locate(p string) (parent []string, name string, ok bool, err error) {
	parts, err := SplitPath(p)
	if err != nil || len(parts) == 0 {
		return nil, "", false, err
	}
	return parts[:len(parts)-1], parts[len(parts)-1], true, nil
}

// Stat describes the entry at p. The root is a directory named "/" whose
// Size is its entry count.
func (d *Drive) Stat(ctx context.Context, p string) (*Info, error) {
	return d.stat(ctx, p, true)
}

// StatCached is Stat where a miss in a cached directory root (WithDirCache)
// is taken as it is, not read again: for a caller about to change p, whose
// change reads the directory's current version anyway (a file upload that
// links over whatever is there), so that a new file costs no directory
// read. A hit is what Stat would answer. Without WithDirCache it is Stat.
func (d *Drive) StatCached(ctx context.Context, p string) (*Info, error) {
	return d.stat(ctx, p, false)
}

// stat is Stat; recheckMiss false is StatCached.
func (d *Drive) stat(ctx context.Context, p string, recheckMiss bool) (*Info, error) {
	parentParts, name, ok, err := locate(p)
	if err != nil {
		return nil, pathErr("stat", p, err)
	}
	if !ok {
		if err := d.flushDir(ctx, d.root); err != nil {
			return nil, pathErr("stat", p, err)
		}
		dir, err := d.load(ctx, d.root)
		if err != nil {
			return nil, pathErr("stat", p, err)
		}
		return &Info{name: "/", e: dirnode.Entry{ReadCap: d.root.r.String(), Meta: Metadata{Type: TypeDir, Size: int64(dir.Len())}},
			ro: d.root.w == nil}, nil
	}
	parent, err := d.walk(ctx, parentParts)
	if err != nil {
		return nil, pathErr("stat", p, err)
	}
	if l, ok := d.pendingLink(parent, name); ok {
		return d.info(parent, parent.keys(), l.entry()), nil
	}
	var dir *dirnode.Dir
	var e dirnode.Entry
	found := false
	if recheckMiss {
		dir, e, found, err = d.lookup(ctx, parent, name, false)
	} else if dir, err = d.load(ctx, parent); err == nil {
		e, found, err = dir.Lookup(ctx, name)
	}
	if err != nil {
		return nil, pathErr("stat", p, err)
	}
	if !found {
		return nil, pathErr("stat", p, ErrNotExist)
	}
	return d.info(parent, dir.Keys(), e), nil
}

// ReadDir lists the directory at p, sorted by name.
func (d *Drive) ReadDir(ctx context.Context, p string) ([]*Info, error) {
	parts, err := SplitPath(p)
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	ref, err := d.walk(ctx, parts)
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	if err := d.flushDir(ctx, ref); err != nil {
		return nil, pathErr("readdir", p, err)
	}
	dir, err := d.load(ctx, ref)
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	es, err := dir.List(ctx)
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	keys := dir.Keys()
	out := make([]*Info, len(es))
	for i := range es {
		out[i] = d.info(ref, keys, es[i])
	}
	return out, nil
}

// Open opens the file at p for range reads (ErrIsDir for a directory).
// With the grid store, ctx also governs the File's later reads: open with
// a context that lives as long as the File is used.
func (d *Drive) Open(ctx context.Context, p string) (File, error) {
	info, err := d.Stat(ctx, p)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	if info.IsDir() {
		return nil, pathErr("open", p, ErrIsDir)
	}
	f, err := d.openCap(ctx, info.ReadCap())
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	return f, nil
}

// OpenInfo opens the file in describes (an Info from Stat, ReadDir or a
// Linked) without looking its path up again. ctx governs later reads as
// for Open.
func (d *Drive) OpenInfo(ctx context.Context, in *Info) (File, error) {
	if in == nil {
		return nil, fmt.Errorf("open: no entry: %w", ErrInvalid)
	}
	if in.IsDir() {
		return nil, pathErr("open", in.Name(), ErrIsDir)
	}
	f, err := d.openCap(ctx, in.ReadCap())
	if err != nil {
		return nil, pathErr("open", in.Name(), err)
	}
	return f, nil
}

func (d *Drive) openCap(ctx context.Context, s string) (File, error) {
	c, err := cap.Parse(s)
	if err != nil {
		return nil, err
	}
	if v, ok := c.(cap.MutableRead); ok {
		b, err := d.store.ReadMutable(ctx, v)
		if err != nil {
			return nil, err
		}
		return bytes.NewReader(b), nil
	}
	return d.store.Open(ctx, c)
}

// writable resolves the parent of p for a change, refusing a read-only
// drive first (whatever else is wrong with the request).
func (d *Drive) writable(ctx context.Context, op, p string) (dirRef, string, error) {
	if d.root.w == nil {
		return dirRef{}, "", pathErr(op, p, ErrReadOnly)
	}
	parentParts, name, ok, err := locate(p)
	if err != nil {
		return dirRef{}, "", pathErr(op, p, err)
	}
	if !ok {
		return dirRef{}, "", pathErr(op, p, fmt.Errorf("the root: %w", ErrInvalid))
	}
	parent, err := d.walk(ctx, parentParts)
	if err != nil {
		return dirRef{}, "", pathErr(op, p, err)
	}
	if parent.w == nil {
		return dirRef{}, "", pathErr(op, p, ErrReadOnly)
	}
	return parent, name, nil
}

// Writer streams a new file to the grid; Close uploads the rest and links
// the file at its path, Abort (or any failure) links nothing.
type Writer struct {
	d      *Drive
	ctx    context.Context
	path   string
	parent dirRef
	name   string
	pw     *io.PipeWriter
	// unwrite ends the count of this file being written into parent.
	unwrite func()
	n       int64
	done    chan upResult
	once    sync.Once
	err     error
	linked  Linked
}

// Linked is what Put or a Writer's Close linked.
type Linked struct {
	// Info is the entry as linked.
	Info *Info
	// Replaced reports whether a file was at the path (and was replaced,
	// keeping its ctime and extra metadata); false for a new name.
	Replaced bool
}

type upResult struct {
	c   cap.Cap
	err error
}

// Create starts writing the file at p, replacing a file there when the
// writer is closed (a directory there: ErrIsDir). The data is uploaded as
// an immutable file while it is written; its cap is linked only by a
// successful Close. ctx governs the upload.
func (d *Drive) Create(ctx context.Context, p string) (*Writer, error) {
	parent, name, err := d.prepareFile(ctx, "create", p)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	w := &Writer{d: d, ctx: ctx, path: p, parent: parent, name: name, pw: pw, done: make(chan upResult, 1),
		unwrite: d.writing.start(parent.r.Slot)}
	go func() {
		c, err := d.store.Upload(ctx, pr, -1, nil)
		if err == nil {
			pr.Close()
		} else {
			pr.CloseWithError(err)
		}
		w.done <- upResult{c, err}
	}()
	return w, nil
}

// prepareFile resolves the parent of a file about to be written and
// refuses a directory (or the root) at p.
func (d *Drive) prepareFile(ctx context.Context, op, p string) (dirRef, string, error) {
	parent, name, err := d.writableFile(ctx, op, p)
	if err != nil {
		if errors.Is(err, ErrInvalid) && !errors.Is(err, ErrBadName) {
			return dirRef{}, "", pathErr(op, p, ErrIsDir)
		}
		return dirRef{}, "", err
	}
	if _, ok := d.pendingLink(parent, name); ok {
		return parent, name, nil // a file, linked behind
	}
	// A miss in a cached root (WithDirCache) is taken as it is, saving a
	// slot read per new file: if another client has since made a
	// directory there, linking the file refuses it (ErrIsDir at Close).
	// A directory found there is checked again on the current version.
	dir, cached, err := d.loadCached(ctx, parent, true)
	if err != nil {
		return dirRef{}, "", pathErr(op, p, err)
	}
	e, ok, err := dir.Lookup(ctx, name)
	if err == nil && ok && e.Meta.Type == TypeDir && cached {
		if dir, err = d.loadFresh(ctx, parent); err == nil {
			e, ok, err = dir.Lookup(ctx, name)
		}
	}
	if err != nil {
		return dirRef{}, "", pathErr(op, p, err)
	}
	if ok && e.Meta.Type == TypeDir {
		return dirRef{}, "", pathErr(op, p, ErrIsDir)
	}
	return parent, name, nil
}

// Write adds p to the file.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.pw.Write(p)
	w.n += int64(n)
	if err != nil {
		return n, pathErr("write", w.path, err)
	}
	return n, nil
}

// errAborted ends an aborted upload.
var errAborted = errors.New("write aborted")

// Abort ends the write without linking anything.
func (w *Writer) Abort() {
	w.once.Do(func() {
		defer w.unwrite()
		w.pw.CloseWithError(errAborted)
		<-w.done
		w.err = pathErr("write", w.path, errAborted)
	})
}

// Close finishes the upload and links the file at its path (replacing a
// file there, keeping its ctime and extra metadata). Only a nil error
// means the file is stored and linked.
func (w *Writer) Close() error {
	w.once.Do(func() { w.err = w.finish() })
	return w.err
}

// Linked is what a successful Close linked (zero before, or after a
// failure).
func (w *Writer) Linked() Linked {
	if w.err != nil {
		return Linked{}
	}
	return w.linked
}

func (w *Writer) finish() error {
	defer w.unwrite()
	w.pw.Close()
	res := <-w.done
	if res.err != nil {
		return pathErr("close", w.path, fmt.Errorf("upload: %w", res.err))
	}
	l, err := w.d.linkFile(w.ctx, w.path, w.parent, w.name, res.c, w.n)
	if err != nil {
		return pathErr("close", w.path, err)
	}
	w.linked = l
	return nil
}

// linkFile links an uploaded file at name (its path p), replacing a
// file there and keeping its ctime and extra keys. A drive
// WithWriteBehind journals the link instead (linkBehind).
func (d *Drive) linkFile(ctx context.Context, p string, parent dirRef, name string, c cap.Cap, size int64) (Linked, error) {
	if d.deferLinks && d.behind != nil && d.behind.deferring() {
		return d.linkBehind(ctx, p, parent, name, c, size)
	}
	now := d.now().UTC()
	var l Linked
	err := d.editQueued(ctx, parent, func(tx *dirnode.Tx) error {
		m, replaced, err := setFile(tx, name, c.String(), size, now)
		if err != nil {
			return err
		}
		// This may run again on a newer version; the last run is what
		// the directory holds.
		e := dirnode.Entry{Name: name, ReadCap: c.String(), Meta: m}
		l = Linked{Info: d.info(parent, tx.Keys(), e), Replaced: replaced}
		return nil
	})
	if err != nil {
		return Linked{}, err
	}
	return l, nil
}

// setFile sets name to the file c of size bytes written at now, keeping
// the ctime and extra keys of a file it replaces; a directory there is
// ErrIsDir. tx is untouched on error.
func setFile(tx *dirnode.Tx, name, c string, size int64, now time.Time) (Metadata, bool, error) {
	m := Metadata{Type: TypeFile, Size: size, Ctime: now, Mtime: now}
	old, ok, err := tx.Get(name)
	if err != nil {
		return m, false, err
	}
	if ok {
		if old.Meta.Type == TypeDir {
			return m, false, ErrIsDir
		}
		m.Extra = old.Meta.Extra
		if !old.Meta.Ctime.IsZero() {
			m.Ctime = old.Meta.Ctime
		}
	}
	if err := setEntry(tx, name, c, "", m); err != nil {
		return m, false, err
	}
	return m, ok, nil
}

// linkBehind journals the link of a file uploaded as c at name and answers
// as linkFile would (see behind.go): a directory at name refuses it, a
// file there (linked or pending) is replaced, keeping its ctime and extra
// keys.
func (d *Drive) linkBehind(ctx context.Context, p string, parent dirRef, name string, c cap.Cap, size int64) (Linked, error) {
	now := d.now().UTC()
	m := Metadata{Type: TypeFile, Size: size, Ctime: now, Mtime: now}
	replaced := false
	// The folder's path and what the name holds now go in the record: the
	// link is made only while both hold (behind_path.go, behind_replay.go).
	parts, err := SplitPath(p)
	if err != nil || len(parts) == 0 {
		return Linked{}, fmt.Errorf("link %q: %w", p, ErrInvalid)
	}
	var prev *string
	var also []string
	// No other link of the name is journaled until this one is: what it
	// replaces is then all this node made or has pending there.
	defer d.behind.lockName(parent, name)()
	if l, ok := d.behind.lookup(parent.r.Slot, name); ok {
		replaced = true
		m.Ctime, m.Extra = l.rec.Ctime, l.rec.Extra
		prev, also = priorCaps(l, "")
	} else {
		// As prepareFile: a cached miss is taken as it is (if another
		// client has made a directory there since, the link fails later
		// and is kept in the failed links), a directory found is checked
		// on the current version.
		dir, cached, err := d.loadCached(ctx, parent, true)
		if err != nil {
			return Linked{}, err
		}
		e, ok, err := dir.Lookup(ctx, name)
		// An over-long name is linked only over its entry (setEntry): a
		// miss is checked on the current version too, and refused then,
		// not acknowledged to fail later.
		if err == nil && cached && ((ok && e.Meta.Type == TypeDir) || (!ok && len(name) > MaxNewNameLen)) {
			if dir, err = d.loadFresh(ctx, parent); err == nil {
				e, ok, err = dir.Lookup(ctx, name)
			}
		}
		if err != nil {
			return Linked{}, err
		}
		if !ok && len(name) > MaxNewNameLen {
			return Linked{}, &NameTooLongError{Len: len(name)}
		}
		cur := ""
		if ok {
			if e.Meta.Type == TypeDir {
				return Linked{}, ErrIsDir
			}
			replaced = true
			m.Extra = cloneMeta(e.Meta).Extra
			if !e.Meta.Ctime.IsZero() {
				m.Ctime = e.Meta.Ctime
			}
			cur = e.ReadCap
		}
		prev, also = priorCaps(nil, cur)
	}
	if err := m.Check(); err != nil {
		return Linked{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	rec := linkRecord{Name: name, Cap: c.String(), Size: size, Ctime: m.Ctime, Mtime: m.Mtime, Extra: m.Extra,
		Root: d.root.r.String(), Path: JoinPath(parts[:len(parts)-1]), Prev: prev, Also: also, At: now}
	if err := d.behind.add(ctx, parent, rec); err != nil {
		return Linked{}, err
	}
	e := dirnode.Entry{Name: name, ReadCap: c.String(), Meta: m}
	return Linked{Info: d.info(parent, parent.keys(), e), Replaced: replaced}, nil
}

// Put stores the size bytes of r (-1: unknown, read to EOF) as the file at
// p, replacing a file there, as Create, Write and Close would; a known
// size lets the upload stream without spooling when keys are random.
// progress, if set, gets the bytes uploaded so far. Nothing is linked on
// error.
func (d *Drive) Put(ctx context.Context, p string, r io.Reader, size int64, progress func(int64)) error {
	_, err := d.PutLinked(ctx, p, r, size, progress)
	return err
}

// PutLinked is Put, and says what it linked: a caller that answers with
// the new entry (its cap, whether the name was new) needs no look-up
// after. A small body held in memory (a bytes.Reader with its size) goes
// to the grid as it is, with no pipe or goroutine.
func (d *Drive) PutLinked(ctx context.Context, p string, r io.Reader, size int64, progress func(int64)) (Linked, error) {
	// No look-up first (a slot read saved; but for a name over
	// MaxNewNameLen, which must name a file already): a directory at p is
	// found when linking, and the upload is then left unlinked.
	parent, name, err := d.writableFile(ctx, "put", p)
	if err != nil {
		if errors.Is(err, ErrInvalid) && !errors.Is(err, ErrBadName) {
			return Linked{}, pathErr("put", p, ErrIsDir)
		}
		return Linked{}, err
	}
	defer d.writing.start(parent.r.Slot)()
	// A known size is exact (Store.Upload fails on other than size
	// bytes), and r goes to the store as it is, so the store can see a
	// body held in memory.
	n, src := size, r
	var cr *countingReader
	if size < 0 {
		cr = &countingReader{r: r}
		src = cr
	}
	c, err := d.store.Upload(ctx, src, size, progress)
	if err != nil {
		return Linked{}, pathErr("put", p, fmt.Errorf("upload: %w", err))
	}
	if cr != nil {
		n = cr.n
	}
	l, err := d.linkFile(ctx, p, parent, name, c, n)
	if err != nil {
		return Linked{}, pathErr("put", p, err)
	}
	return l, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Mkdir makes an empty directory at p (ErrExist if p exists).
func (d *Drive) Mkdir(ctx context.Context, p string) error {
	parent, name, err := d.writableNew(ctx, "mkdir", p)
	if err != nil {
		if errors.Is(err, ErrInvalid) && !errors.Is(err, ErrBadName) {
			return pathErr("mkdir", p, ErrExist)
		}
		return err
	}
	if _, ok := d.pendingLink(parent, name); ok {
		return pathErr("mkdir", p, ErrExist)
	}
	if _, _, ok, err := d.lookup(ctx, parent, name, true); err != nil {
		return pathErr("mkdir", p, err)
	} else if ok {
		return pathErr("mkdir", p, ErrExist)
	}
	w, err := NewRoot(ctx, d.store)
	if err != nil {
		return pathErr("mkdir", p, err)
	}
	now := d.now().UTC()
	rc := w.ReadCap().String()
	err = d.edit(ctx, parent, func(tx *dirnode.Tx) error {
		if e, ok, err := tx.Get(name); err != nil {
			return err
		} else if ok {
			if e.ReadCap == rc {
				return nil // our own change, published by an earlier attempt
			}
			return ErrExist
		}
		return setEntry(tx, name, rc, w.String(), Metadata{Type: TypeDir, Ctime: now, Mtime: now})
	})
	if err != nil {
		return pathErr("mkdir", p, err)
	}
	return nil
}

// MkdirAll makes p and any missing parents; existing directories are fine.
func (d *Drive) MkdirAll(ctx context.Context, p string) error {
	parts, err := SplitPath(p)
	if err != nil {
		return pathErr("mkdir", p, err)
	}
	for i := 1; i <= len(parts); i++ {
		sub := JoinPath(parts[:i])
		err := d.Mkdir(ctx, sub)
		if errors.Is(err, ErrExist) || errors.Is(err, ErrNameTooLong) {
			// An over-long name refused as new may be an existing
			// directory (written by an older version): go through it.
			info, serr := d.Stat(ctx, sub)
			if serr != nil {
				if errors.Is(err, ErrNameTooLong) && errors.Is(serr, ErrNotExist) {
					return err
				}
				return serr
			}
			if !info.IsDir() {
				return pathErr("mkdir", sub, ErrNotDir)
			}
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// isEmptyDir reports whether the directory of entry e has no entries.
func (d *Drive) isEmptyDir(ctx context.Context, parent dirRef, keys dirnode.Keys, e dirnode.Entry) (bool, error) {
	ref, err := d.child(parent, keys, e)
	if err != nil {
		return false, err
	}
	if d.behind != nil && d.behind.has(ref.r.Slot) {
		return false, nil // links written behind are entries
	}
	if d.writing.has(ref.r.Slot) {
		return false, nil // so are files being written
	}
	dir, err := d.loadFresh(ctx, ref)
	if err != nil {
		return false, err
	}
	return dir.Len() == 0, nil
}

// Remove unlinks the entry at p; a directory must be empty (ErrNotEmpty).
// The child's data is not deleted: other links to its cap still work, and
// unreferenced shares expire with their leases.
func (d *Drive) Remove(ctx context.Context, p string) error {
	parent, name, err := d.writable(ctx, "remove", p)
	if err != nil {
		return err
	}
	if err := d.flushDir(ctx, parent); err != nil {
		return pathErr("remove", p, err)
	}
	ran := false // an earlier attempt removed it: gone is done
	err = d.edit(ctx, parent, func(tx *dirnode.Tx) error {
		e, ok, err := tx.Get(name)
		if err != nil {
			return err
		}
		if !ok {
			if ran {
				return nil
			}
			return ErrNotExist
		}
		ran = true
		if e.Meta.Type == TypeDir {
			empty, err := d.isEmptyDir(ctx, parent, tx.Keys(), e)
			if err != nil {
				return err
			}
			if !empty {
				return ErrNotEmpty
			}
		}
		_, _, err = tx.Delete(name)
		return err
	})
	if err != nil {
		return pathErr("remove", p, err)
	}
	return nil
}

// RemoveAll unlinks the entry at p, a directory with whatever it holds
// (as "rm -r" does: nothing below is deleted, only no longer reachable
// from here). A missing p is not an error.
func (d *Drive) RemoveAll(ctx context.Context, p string) error {
	parent, name, err := d.writable(ctx, "remove", p)
	if err != nil {
		if errors.Is(err, ErrNotExist) {
			return nil
		}
		return err
	}
	if err := d.flushDir(ctx, parent); err != nil {
		return pathErr("remove", p, err)
	}
	if d.behind != nil {
		// Links pending below go with it, as acknowledged before.
		if parts, err := SplitPath(p); err == nil {
			if err := d.behind.flushUnder(ctx, d.root.r, parts, nil); err != nil {
				return pathErr("remove", p, err)
			}
		}
	}
	err = d.edit(ctx, parent, func(tx *dirnode.Tx) error {
		_, _, err := tx.Delete(name)
		return err
	})
	if err != nil {
		return pathErr("remove", p, err)
	}
	return nil
}

// checkReplace decides whether src may be linked over what is at name in
// tx: nothing, the same child, a file over a file, or a directory over an
// empty directory, as rename(2) allows.
func (d *Drive) checkReplace(ctx context.Context, parent dirRef, tx *dirnode.Tx, name string, src dirnode.Entry) error {
	dst, ok, err := tx.Get(name)
	if err != nil || !ok || dst.ReadCap == src.ReadCap {
		return err
	}
	switch {
	case src.Meta.Type == TypeDir && dst.Meta.Type != TypeDir:
		return ErrNotDir
	case src.Meta.Type != TypeDir && dst.Meta.Type == TypeDir:
		return ErrIsDir
	case dst.Meta.Type == TypeDir:
		empty, err := d.isEmptyDir(ctx, parent, tx.Keys(), dst)
		if err != nil {
			return err
		}
		if !empty {
			return ErrNotEmpty
		}
	}
	return nil
}

// Rename moves the entry at oldp to newp, within a directory or across
// directories, replacing what is at newp as rename(2) does: a file
// replaces a file, a directory replaces an empty directory; a file over a
// directory is ErrIsDir, a directory over a file ErrNotDir, over a
// non-empty directory ErrNotEmpty. Moving a directory into itself is
// ErrInvalid. Within one directory the move is one atomic change. Across
// directories it is two: the entry is first linked at newp, then unlinked
// at oldp only if oldp still names the same child (else ErrConflict, and
// both names stay linked). A failure between the two leaves the child
// linked twice, never lost.
func (d *Drive) Rename(ctx context.Context, oldp, newp string) error {
	if d.root.w == nil {
		return pathErr("rename", oldp, ErrReadOnly)
	}
	op, err := SplitPath(oldp)
	if err != nil {
		return pathErr("rename", oldp, err)
	}
	np, err := SplitPath(newp)
	if err != nil {
		return pathErr("rename", newp, err)
	}
	if len(op) == 0 || len(np) == 0 {
		return pathErr("rename", oldp, fmt.Errorf("cannot move the root or onto it: %w", ErrInvalid))
	}
	if JoinPath(np) != JoinPath(op) {
		// The target is a new name, or one replaced: an old over-long
		// entry may move to a shorter name, or be replaced by another
		// entry (a safe save: write a temporary file, rename it over),
		// never make another over-long name (setEntry holds it when the
		// target goes meanwhile).
		if err := CheckNewName(np[len(np)-1]); err != nil {
			if _, serr := d.Stat(ctx, newp); serr != nil {
				return pathErr("rename", newp, err)
			}
		}
	}
	if len(np) > len(op) && JoinPath(np[:len(op)]) == JoinPath(op) {
		return pathErr("rename", oldp, fmt.Errorf("cannot move a directory into itself (%s): %w", shown(JoinPath(np)), ErrInvalid))
	}
	src, oldName, err := d.writable(ctx, "rename", oldp)
	if err != nil {
		return err
	}
	dst, newName, err := d.writable(ctx, "rename", newp)
	if err != nil {
		return err
	}
	if err := d.flushDir(ctx, src); err != nil {
		return pathErr("rename", oldp, err)
	}
	if err := d.flushDir(ctx, dst); err != nil {
		return pathErr("rename", newp, err)
	}
	if d.behind != nil {
		// Links pending in a folder moved go with it (behind_path.go).
		if err := d.behind.flushUnder(ctx, d.root.r, op, np); err != nil {
			return pathErr("rename", oldp, err)
		}
	}
	if src.r == dst.r {
		var moved string // read cap moved by an earlier attempt
		err := d.edit(ctx, src, func(tx *dirnode.Tx) error {
			e, ok, err := tx.Get(oldName)
			if err != nil {
				return err
			}
			if !ok {
				if moved != "" {
					if n, ok, err := tx.Get(newName); err == nil && ok && n.ReadCap == moved {
						return nil
					}
				}
				return ErrNotExist
			}
			if oldName == newName {
				return nil
			}
			moved = e.ReadCap
			if err := d.checkReplace(ctx, src, tx, newName, e); err != nil {
				return err
			}
			wc, err := writeCapOf(tx.Keys(), e)
			if err != nil {
				return err
			}
			if _, _, err := tx.Delete(oldName); err != nil {
				return err
			}
			return setEntry(tx, newName, e.ReadCap, wc, e.Meta)
		})
		if err != nil {
			return pathErr("rename", oldp, err)
		}
		return nil
	}
	sdir, err := d.loadFresh(ctx, src)
	if err != nil {
		return pathErr("rename", oldp, err)
	}
	e, ok, err := sdir.Lookup(ctx, oldName)
	if err != nil {
		return pathErr("rename", oldp, err)
	}
	if !ok {
		return pathErr("rename", oldp, ErrNotExist)
	}
	wc, err := writeCapOf(sdir.Keys(), e)
	if err != nil {
		return pathErr("rename", oldp, err)
	}
	err = d.edit(ctx, dst, func(tx *dirnode.Tx) error {
		if err := d.checkReplace(ctx, dst, tx, newName, e); err != nil {
			return err
		}
		return setEntry(tx, newName, e.ReadCap, wc, e.Meta)
	})
	if err != nil {
		return pathErr("rename", newp, err)
	}
	ran := false
	err = d.edit(ctx, src, func(tx *dirnode.Tx) error {
		cur, ok, err := tx.Get(oldName)
		if err != nil {
			return err
		}
		if !ok && ran {
			return nil // unlinked by an earlier attempt
		}
		ran = true
		if !ok || cur.ReadCap != e.ReadCap {
			return fmt.Errorf("%s now names another child or nothing; %s stays linked: %w", shown(JoinPath(op)), shown(JoinPath(np)), ErrConflict)
		}
		_, _, err = tx.Delete(oldName)
		return err
	})
	if err != nil {
		return pathErr("rename", oldp, err)
	}
	return nil
}

// writeCapOf opens an entry's write cap ("" when it has none).
func writeCapOf(k dirnode.Keys, e dirnode.Entry) (string, error) {
	if !e.HasWriteCap() {
		return "", nil
	}
	return k.WriteCap(e)
}

// SetMetadata changes the metadata of the entry at p: fn edits a copy
// (times and Extra; Type and Size are kept as they are). fn may run more
// than once when other clients change the directory at the same time. It
// must not call the drive: it may run while other changes of the
// directory wait for it (see editQueued).
func (d *Drive) SetMetadata(ctx context.Context, p string, fn func(*Metadata) error) error {
	parent, name, err := d.writable(ctx, "setmetadata", p)
	if err != nil {
		return err
	}
	if d.deferLinks && d.behind != nil && d.behind.deferring() {
		// A file linked behind takes its metadata in its journaled link.
		if done, err := d.behind.setMeta(parent, name, fn); done {
			if err != nil {
				return pathErr("setmetadata", p, err)
			}
			return nil
		}
	}
	err = d.editQueued(ctx, parent, func(tx *dirnode.Tx) error {
		e, ok, err := tx.Get(name)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotExist
		}
		m := cloneMeta(e.Meta)
		if err := fn(&m); err != nil {
			return err
		}
		m.Type, m.Size = e.Meta.Type, e.Meta.Size
		if err := m.Check(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return tx.SetMeta(name, m)
	})
	if err != nil {
		return pathErr("setmetadata", p, err)
	}
	return nil
}

// linkOf is what an entry for cap string s holds: read cap, write cap and
// metadata.
func linkOf(s string, now timeNow) (rc, wc string, m Metadata, err error) {
	c, err := cap.Parse(s)
	if err != nil {
		return "", "", m, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	t := now().UTC()
	m = Metadata{Type: TypeFile, Ctime: t, Mtime: t}
	switch v := c.(type) {
	case cap.DirWrite:
		return v.ReadCap().String(), v.String(), Metadata{Type: TypeDir, Ctime: t, Mtime: t}, nil
	case cap.DirRead:
		return v.String(), "", Metadata{Type: TypeDir, Ctime: t, Mtime: t}, nil
	case cap.CHK:
		m.Size = v.Size
		return v.String(), "", m, nil
	case cap.Literal:
		m.Size = int64(len(v.Data))
		return v.String(), "", m, nil
	case cap.MutableWrite:
		return v.ReadCap().String(), v.String(), m, nil
	case cap.MutableRead:
		return v.String(), "", m, nil
	default:
		return "", "", m, fmt.Errorf("cannot link a %s cap (it cannot be read): %w", c.Kind(), ErrInvalid)
	}
}

type timeNow = func() time.Time

// Link attaches an existing cap at p (ErrExist if p exists): a directory
// write or read cap becomes a directory (writable only with the write
// cap), a file cap a file. Verify caps cannot be linked.
func (d *Drive) Link(ctx context.Context, p, capString string) error {
	parent, name, err := d.writableNew(ctx, "link", p)
	if err != nil {
		return err
	}
	rc, wc, m, err := linkOf(capString, d.now)
	if err != nil {
		return pathErr("link", p, err)
	}
	err = d.editQueued(ctx, parent, func(tx *dirnode.Tx) error {
		if e, ok, err := tx.Get(name); err != nil {
			return err
		} else if ok {
			if e.ReadCap == rc {
				return nil // linked already (by an earlier attempt)
			}
			return ErrExist
		}
		return setEntry(tx, name, rc, wc, m)
	})
	if err != nil {
		return pathErr("link", p, err)
	}
	return nil
}

// LinkMany attaches many caps (name -> cap) in the directory at dir in one
// change: all or none (ErrExist if any name exists). It is how a bulk copy
// links many small files without one directory write per file.
func (d *Drive) LinkMany(ctx context.Context, dir string, links map[string]string) error {
	if d.root.w == nil {
		return pathErr("link", dir, ErrReadOnly)
	}
	parts, err := SplitPath(dir)
	if err != nil {
		return pathErr("link", dir, err)
	}
	type link struct {
		name, rc, wc string
		m            Metadata
	}
	ls := make([]link, 0, len(links))
	given := make(map[string]string, len(links)) // clean name -> as given
	for n, s := range links {
		clean, err := dirnode.CleanName(n)
		if err != nil {
			return pathErr("link", dir, badName(n, err))
		}
		if o, dup := given[clean]; dup {
			// Two spellings of one name (NFC and NFD): one entry, so
			// which cap would win is not the caller's to guess.
			return pathErr("link", JoinPath(append(parts[:len(parts):len(parts)], clean)),
				fmt.Errorf("%+q and %+q are one name (Unicode NFC): %w", o, n, ErrInvalid))
		}
		given[clean] = n
		// A name over the limit for new names may be an existing entry
		// (an older version's): the edit finds it (ErrExist, so a caller
		// writes over it in place) or setEntry refuses it as new.
		if err := CheckNewName(clean); err != nil && !errors.Is(err, ErrNameTooLong) {
			return pathErr("link", JoinPath(append(parts[:len(parts):len(parts)], clean)), err)
		}
		rc, wc, m, err := linkOf(s, d.now)
		if err != nil {
			return pathErr("link", JoinPath(append(parts[:len(parts):len(parts)], clean)), err)
		}
		ls = append(ls, link{clean, rc, wc, m})
	}
	ref, err := d.walk(ctx, parts)
	if err != nil {
		return pathErr("link", dir, err)
	}
	if err := d.flushDir(ctx, ref); err != nil {
		return pathErr("link", dir, err)
	}
	err = d.edit(ctx, ref, func(tx *dirnode.Tx) error {
		for _, l := range ls {
			if e, ok, err := tx.Get(l.name); err != nil {
				return err
			} else if ok {
				if e.ReadCap == l.rc {
					continue // linked already (by an earlier attempt)
				}
				return fmt.Errorf("%q: %w", l.name, ErrExist)
			}
			if err := setEntry(tx, l.name, l.rc, l.wc, l.m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return pathErr("link", dir, err)
	}
	return nil
}
