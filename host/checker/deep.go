package checker

import (
	"context"
	"fmt"
	"strings"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/vdrive"
)

// Summary counts the outcomes of a deep check.
type Summary struct {
	Objects       int `json:"objects"`
	Files         int `json:"files"`
	Directories   int `json:"directories"`
	Healthy       int `json:"healthy"`
	Unhealthy     int `json:"unhealthy"`
	Repaired      int `json:"repaired"`
	Unrecoverable int `json:"unrecoverable"`
	// Errors counts entries whose check could not run at all.
	Errors int `json:"errors"`
}

func (s *Summary) add(r *Report) {
	s.Objects++
	if r.Kind == cap.KindDir {
		s.Directories++
	} else {
		s.Files++
	}
	switch r.Outcome {
	case Healthy:
		s.Healthy++
	case Unhealthy:
		s.Unhealthy++
	case Repaired:
		s.Repaired++
	case Unrecoverable:
		s.Unrecoverable++
	}
}

// DeepReport is the result of a deep check.
type DeepReport struct {
	Root    string    `json:"root"`
	Summary Summary   `json:"summary"`
	Reports []*Report `json:"reports"`
}

// DeepCheck checks every directory and file reachable from path p under
// the directory cap root, depth first in name order, each directory once even
// when linked twice. progress, if set, is called with each report as it
// is made. A directory that cannot be listed is reported (unrecoverable or
// unhealthy) and the walk goes on with the rest.
func (c *Checker) DeepCheck(ctx context.Context, root, p string, opt Options, progress func(*Report)) (*DeepReport, error) {
	cp, err := cap.Parse(root)
	if err != nil {
		return nil, fmt.Errorf("deep-check: %w: %w", ErrBadCap, err)
	}
	d, err := c.drive(cp)
	if err != nil {
		return nil, fmt.Errorf("deep-check: %w", err)
	}
	out := &DeepReport{Root: "/" + strings.Trim(p, "/")}
	emit := func(r *Report) {
		out.Summary.add(r)
		out.Reports = append(out.Reports, r)
		if progress != nil {
			progress(r)
		}
	}
	info, err := d.Stat(ctx, out.Root)
	if err != nil {
		return nil, fmt.Errorf("deep-check: %w", err)
	}
	seen := map[string]bool{}
	var walk func(p string, capStr string, isDir bool) error
	walk = func(p, capStr string, isDir bool) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ecp, err := cap.Parse(capStr)
		if err != nil {
			out.Summary.Errors++
			emit(&Report{Path: p, Kind: "unknown", Outcome: Unhealthy, Problems: []string{"entry cap: " + err.Error()}})
			return nil
		}
		r, err := c.Check(ctx, ecp, opt)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			out.Summary.Errors++
			r = &Report{Kind: ecp.Kind(), Outcome: Unrecoverable, Problems: []string{err.Error()}}
		}
		r.Path = p
		emit(r)
		if !isDir || seen[capStr] {
			return nil
		}
		seen[capStr] = true
		if r.Outcome == Unrecoverable {
			return nil
		}
		infos, err := d.ReadDir(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			out.Summary.Errors++
			r.Problems = append(r.Problems, "list directory: "+err.Error())
			return nil
		}
		for _, in := range infos {
			if err := walk(strings.TrimSuffix(p, "/")+"/"+in.Name(), capFor(in, opt), in.IsDir()); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(out.Root, capFor(info, opt), info.IsDir()); err != nil {
		return out, fmt.Errorf("deep-check: %w", err)
	}
	return out, nil
}

// capFor is the cap an entry is checked with: its read cap, the least
// that checks it, or with Repair its write cap when the walk has one,
// since repairing a mutable file or directory whose copies hold an
// unfinished newer version means publishing it again (see
// grid.Client.RepairMutable).
func capFor(in *vdrive.Info, opt Options) string {
	if opt.Repair {
		if w := in.WriteCap(); w != "" {
			return w
		}
	}
	return in.ReadCap()
}
