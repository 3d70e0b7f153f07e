package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// localOut is where a download goes on the local disk (tarn get, tarn cp
// from the grid).
type localOut struct {
	*os.File
	path string      // the file the bytes are for
	tmp  bool        // File is a temporary file beside path, renamed over it at commit
	mode fs.FileMode // for the renamed file
}

// createOut opens the local path out for a download. A new name or a
// regular file is written whole or not at all: a temporary file beside it
// (prefix names it), renamed over it by commit. Anything else that exists
// there, a device such as /dev/null, a FIFO, a terminal, is written in
// place: the rename put a regular file in its stead (as root, over
// /dev/null) and a reader of the FIFO got nothing. A symbolic link is
// followed: its target is replaced, not the link.
func createOut(out, prefix string) (*localOut, error) {
	path := out
	if p, err := filepath.EvalSymlinks(out); err == nil {
		path = p
	}
	mode := fs.FileMode(0o644)
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return nil, fmt.Errorf("%s is a folder", out)
	case err == nil && !st.Mode().IsRegular():
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &localOut{File: f, path: path}, nil
	case err == nil:
		mode = st.Mode().Perm()
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), prefix)
	if err != nil {
		return nil, err
	}
	return &localOut{File: f, path: path, tmp: true, mode: mode}, nil
}

// commit makes the bytes written the file's (after an fsync when sync).
func (o *localOut) commit(sync bool) error {
	if sync && o.tmp {
		if err := o.Sync(); err != nil {
			o.abort()
			return fmt.Errorf("write %s: %w", o.path, err)
		}
	}
	if err := o.Close(); err != nil {
		o.abort()
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	if !o.tmp {
		return nil
	}
	if err := os.Chmod(o.Name(), o.mode); err != nil {
		o.abort()
		return err
	}
	if err := os.Rename(o.Name(), o.path); err != nil {
		o.abort()
		return err
	}
	o.tmp = false
	return nil
}

// abort drops a download not committed (the temporary file); safe after
// commit.
func (o *localOut) abort() {
	o.Close()
	if o.tmp {
		os.Remove(o.Name())
	}
}
