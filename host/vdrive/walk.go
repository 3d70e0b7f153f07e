package vdrive

import (
	"context"
	"errors"
	"io/fs"
	"strings"
)

// WalkFunc is called for each entry Walk visits with its slash path. An
// error ends the walk with that error, except fs.SkipDir (skip this
// directory's entries, or the rest of the directory for a file) and
// fs.SkipAll (end the walk without error).
type WalkFunc func(p string, info *Info) error

// Walk visits p and, if it is a directory, everything under it, depth
// first, in name order. Each directory is visited once even when linked
// more than once (as links can make cycles).
func (d *Drive) Walk(ctx context.Context, p string, fn WalkFunc) error {
	parts, err := SplitPath(p)
	if err != nil {
		return pathErr("walk", p, err)
	}
	info, err := d.Stat(ctx, p)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	err = d.walk1(ctx, JoinPath(parts), info, fn, seen)
	if errors.Is(err, fs.SkipDir) || errors.Is(err, fs.SkipAll) {
		return nil
	}
	return err
}

func (d *Drive) walk1(ctx context.Context, p string, info *Info, fn WalkFunc, seen map[string]bool) error {
	if err := fn(p, info); err != nil || !info.IsDir() {
		return err
	}
	if seen[info.ReadCap()] {
		return nil
	}
	seen[info.ReadCap()] = true
	infos, err := d.ReadDir(ctx, p)
	if err != nil {
		return err
	}
	for _, in := range infos {
		err := d.walk1(ctx, strings.TrimSuffix(p, "/")+"/"+in.Name(), in, fn, seen)
		if errors.Is(err, fs.SkipDir) {
			if in.IsDir() {
				continue
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}
