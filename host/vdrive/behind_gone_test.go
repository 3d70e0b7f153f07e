package vdrive_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/vdrive"
)

// failedLinks reads dir's failed links.
func failedLinks(t testing.TB, dir string) []vdrive.FailedLink {
	t.Helper()
	fs, err := vdrive.ReadFailedLinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestWriteBehindFolderGone: a file acknowledged into a folder that
// another node then removes, moves, or replaces (by another folder or a
// file) before the link is made is not linked into the old folder, where
// no path reaches it, nor into what is at the path now: it goes to the
// failed links with its path, name, cap and ErrFolderGone's reason, and
// Stats counts it. A folder left where it was gets its link.
func TestWriteBehindFolderGone(t *testing.T) {
	g := newGrid(t)
	cases := []struct {
		name  string
		other func(ctx context.Context, d *vdrive.Drive) error
		gone  bool
	}{
		{"removed", func(ctx context.Context, d *vdrive.Drive) error { return d.RemoveAll(ctx, "/up/in") }, true},
		{"parent removed", func(ctx context.Context, d *vdrive.Drive) error { return d.RemoveAll(ctx, "/up") }, true},
		{"moved", func(ctx context.Context, d *vdrive.Drive) error { return d.Rename(ctx, "/up/in", "/up/elsewhere") }, true},
		{"replaced by a new folder", func(ctx context.Context, d *vdrive.Drive) error {
			if err := d.RemoveAll(ctx, "/up/in"); err != nil {
				return err
			}
			if err := d.Mkdir(ctx, "/up/in"); err != nil {
				return err
			}
			// A file of the same name there, which the link must not replace.
			return d.Put(ctx, "/up/in/a.txt", bytes.NewReader([]byte("theirs")), 6, nil)
		}, true},
		{"replaced by a file", func(ctx context.Context, d *vdrive.Drive) error {
			if err := d.RemoveAll(ctx, "/up/in"); err != nil {
				return err
			}
			return d.Put(ctx, "/up/in", bytes.NewReader([]byte("a file")), 6, nil)
		}, true},
		{"left where it was", func(ctx context.Context, d *vdrive.Drive) error { return d.Mkdir(ctx, "/up/other") }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCap(t, g)
			dir := t.TempDir()
			// Every walk fresh: the other node's change is seen at once
			// (TestWriteBehindPathCache covers the cached walk).
			b := behindWith(t, g, vdrive.BehindConfig{Dir: dir, Delay: never, PathCacheTTL: -1, Logger: testLogger(t)})
			d := frontDrive(t, b, root)
			ctx := ctxFor(t, 2*time.Minute)
			if err := d.MkdirAll(ctx, "/up/in"); err != nil {
				t.Fatal(err)
			}
			in, err := d.Stat(ctx, "/up/in")
			if err != nil {
				t.Fatal(err)
			}
			folder := in.WriteCap()
			l := putBytes(t, d, "/up/in/a.txt", pseudo(7, 3000))
			far := open(t, g, root)
			if err := tc.other(ctx, far); err != nil {
				t.Fatal(err)
			}
			if err := b.Flush(ctx); err != nil {
				t.Fatalf("flush: %v (a link whose folder is gone is kept, not returned)", err)
			}
			if n := b.Pending(); n != 0 {
				t.Fatalf("%d links pending after the flush", n)
			}
			fl := failedLinks(t, dir)
			// What the removed folder itself holds: the old folder, opened
			// by its own cap, must not have got the link.
			old := open(t, g, folder)
			if !tc.gone {
				if len(fl) != 0 {
					t.Fatalf("failed links %+v for a folder left where it was", fl)
				}
				if got := get(t, far, "/up/in/a.txt"); !bytes.Equal(got, pseudo(7, 3000)) {
					t.Fatal("the link was not made in the folder left where it was")
				}
				return
			}
			if len(fl) != 1 {
				t.Fatalf("%d failed links, want 1: %+v", len(fl), fl)
			}
			f := fl[0]
			if f.Name != "a.txt" || f.Path != "/up/in" || f.Cap != l.Info.ReadCap() || f.Size != 3000 || f.Root == "" ||
				!strings.Contains(f.Error, vdrive.ErrFolderGone.Error()) || f.Acknowledged.IsZero() {
				t.Fatalf("failed link %+v, want a.txt in /up/in, cap %s, a folder-gone reason", f, l.Info.ReadCap())
			}
			if got := names(t, old, "/"); len(got) != 0 {
				t.Fatalf("the link was made in the folder no path reaches: %v", got)
			}
			if st := b.Stats(); st.Failed != 1 || st.FailedTotal != 1 || st.Pending != 0 {
				t.Fatalf("stats %+v, want 1 failed link, none pending", st)
			}
			if tc.name == "replaced by a new folder" {
				if got := get(t, far, "/up/in/a.txt"); string(got) != "theirs" {
					t.Fatalf("the other node's file at the path was replaced: %q", got)
				}
			}
		})
	}
}

// TestWriteBehindOwnMoveCarriesLinks: this node's own move or removal of
// a folder with files pending below it (a client's `mv tmp final` right
// after its uploads) makes those links first: the files move with the
// folder (or go with it), and none ends in the failed links.
func TestWriteBehindOwnMoveCarriesLinks(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b, _ := behindOn(t, g, dir, never)
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, 2*time.Minute)
	if err := d.MkdirAll(ctx, "/tmp/sub"); err != nil {
		t.Fatal(err)
	}
	if err := d.MkdirAll(ctx, "/junk/deep"); err != nil {
		t.Fatal(err)
	}
	putBytes(t, d, "/tmp/a", []byte("a"))
	putBytes(t, d, "/tmp/sub/b", []byte("bb"))
	putBytes(t, d, "/junk/deep/c", []byte("ccc"))
	if err := d.Rename(ctx, "/tmp", "/final"); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveAll(ctx, "/junk"); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	far := open(t, g, root)
	for p, want := range map[string]string{"/final/a": "a", "/final/sub/b": "bb"} {
		if got := get(t, far, p); string(got) != want {
			t.Fatalf("%s: %q, want %q", p, got, want)
		}
	}
	if fl := failedLinks(t, dir); len(fl) != 0 {
		t.Fatalf("failed links after this node's own move: %+v", fl)
	}
	if b.Pending() != 0 {
		t.Fatalf("%d pending", b.Pending())
	}
}

// TestWriteBehindStatsAndWarn: while a folder's change of pending links
// keeps failing, Stats shows its links, their age and the folder as
// failing; the log says so at WARN once per WarnEvery, not once per
// retry, and at INFO when the links are made at last.
func TestWriteBehindStatsAndWarn(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	rs := &refusingStore{slotCounter: slotCounter{Store: vdrive.GridStore(newClient(t, g))}}
	var logged bytes.Buffer
	var mu sync.Mutex
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: lockedWriter{&mu, &logged}})
	b, err := vdrive.OpenBehind(rs, vdrive.BehindConfig{Dir: t.TempDir(), Delay: 200 * time.Millisecond, Logger: log, WarnEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, time.Minute)
	if err := d.Mkdir(ctx, "/f"); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Pending != 0 || st.Failing != 0 || !st.Oldest.IsZero() {
		t.Fatalf("stats of an idle write-behind: %+v", st)
	}
	rs.refuse.Store(true)
	start := time.Now()
	for _, n := range []string{"a", "b", "c"} {
		putBytes(t, d, "/f/"+n, []byte(n))
	}
	// Three attempts at least: 200 ms, then 250 and 500 ms of backoff.
	deadline := time.Now().Add(20 * time.Second)
	for b.Stats().ChangeFailures < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: fewer than 3 failed changes in 20 s", b.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := b.Stats()
	if st.Pending != 3 || st.Folders != 1 || st.Failing != 1 || st.FailingLinks != 3 ||
		st.Oldest.Before(start.Add(-time.Second)) || st.Oldest.After(time.Now()) || st.FailingSince.IsZero() {
		t.Fatalf("stats while failing: %+v", st)
	}
	mu.Lock()
	out := logged.String()
	mu.Unlock()
	if n := strings.Count(out, "[WARN]"); n != 1 {
		t.Fatalf("%d WARN lines for one folder failing %d times within WarnEvery, want 1:\n%s", n, st.ChangeFailures, out)
	}
	if !strings.Contains(out, "path=/f") || !strings.Contains(out, errRefused.Error()) {
		t.Fatalf("the WARN line lacks the folder's path or the error:\n%s", out)
	}
	rs.refuse.Store(false)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Pending != 0 || st.Failing != 0 || st.FailingLinks != 0 || !st.Oldest.IsZero() {
		t.Fatalf("stats once made: %+v", st)
	}
	mu.Lock()
	out = logged.String()
	mu.Unlock()
	if !strings.Contains(out, "made again") {
		t.Fatalf("no INFO line when the links were made:\n%s", out)
	}
}

// TestWriteBehindReplayIdempotent: a node killed after a folder change
// made its links but before their journal records were deleted replays
// them at start. A link whose entry holds its cap already is not made
// again; one whose entry another node changed meanwhile (replaced, or
// removed) is not made over that change (it would undo it) but kept in
// the failed links, logged; the journal is empty afterwards.
func TestWriteBehindReplayIdempotent(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b, sc := behindOn(t, g, dir, never)
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, 2*time.Minute)
	if err := d.Mkdir(ctx, "/w"); err != nil {
		t.Fatal(err)
	}
	// Names that held a file before (the removal of a name new with
	// the link cannot be told from a link never made: docs/operations.md).
	putBytes(t, d, "/w/changed", []byte("first version"))
	putBytes(t, d, "/w/removed", []byte("first version too"))
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mine := map[string][]byte{"same": pseudo(1, 2000), "changed": pseudo(2, 2000), "removed": pseudo(3, 2000)}
	for n, data := range mine {
		putBytes(t, d, "/w/"+n, data)
	}
	// The journal as the kill found it: the records still there ...
	jpath := filepath.Join(dir, vdrive.JournalFile)
	snap, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	// ... after the change that made them.
	m0 := sc.modifies.Load()
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if sc.modifies.Load() == m0 {
		t.Fatal("the flush made no change")
	}
	vdrive.Abandon(b)
	if err := os.WriteFile(jpath, snap, 0o600); err != nil {
		t.Fatal(err)
	}
	// Meanwhile another node changes two of the entries.
	far := open(t, g, root)
	if err := far.Put(ctx, "/w/changed", bytes.NewReader([]byte("theirs")), 6, nil); err != nil {
		t.Fatal(err)
	}
	if err := far.Remove(ctx, "/w/removed"); err != nil {
		t.Fatal(err)
	}

	var logged bytes.Buffer
	var mu sync.Mutex
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: lockedWriter{&mu, &logged}})
	b2, err := vdrive.OpenBehind(vdrive.GridStore(newClient(t, g)), vdrive.BehindConfig{Dir: dir, Delay: never, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close() })
	if n := b2.Pending(); n != 3 {
		t.Fatalf("replay: %d pending, want 3", n)
	}
	if err := b2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := get(t, far, "/w/same"); !bytes.Equal(got, mine["same"]) {
		t.Fatal("/w/same lost its bytes")
	}
	if got := get(t, far, "/w/changed"); string(got) != "theirs" {
		t.Fatalf("replay undid another node's change of /w/changed: %d bytes", len(got))
	}
	if _, err := far.Stat(ctx, "/w/removed"); !errors.Is(err, vdrive.ErrNotExist) {
		t.Fatalf("replay undid another node's removal of /w/removed: %v", err)
	}
	fl := failedLinks(t, dir)
	got := map[string]vdrive.FailedLink{}
	for _, f := range fl {
		got[f.Name] = f
	}
	if len(fl) != 2 || got["changed"].Cap == "" || got["removed"].Cap == "" {
		t.Fatalf("failed links %+v, want changed and removed", fl)
	}
	for _, n := range []string{"changed", "removed"} {
		if !strings.Contains(got[n].Error, vdrive.ErrChangedSince.Error()) {
			t.Fatalf("failed link %s: %q, want the changed-since reason", n, got[n].Error)
		}
		// The file is intact: its cap, linked anew, reads its bytes.
		if err := far.Link(ctx, "/w/restored-"+n, got[n].Cap); err != nil {
			t.Fatal(err)
		}
		if b := get(t, far, "/w/restored-"+n); !bytes.Equal(b, mine[n]) {
			t.Fatalf("the failed link of %s reads other bytes", n)
		}
	}
	mu.Lock()
	out := logged.String()
	mu.Unlock()
	if !strings.Contains(out, "made before the last stop") {
		t.Fatalf("the link made before the stop was not logged as such:\n%s", out)
	}
	b2.Close()
	b3, _ := behindOn(t, g, dir, never)
	if n := b3.Pending(); n != 0 {
		t.Fatalf("journal holds %d links after the replay, want 0", n)
	}
}
