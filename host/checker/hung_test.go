package checker_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/checker"
	"github.com/tarnfs/tarn/host/vdrive"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
)

// hungTimeout is the server timeout (grid client and checker) of the
// tests of frozen servers.
const hungTimeout = 3 * time.Second

// TestDeepCheckFrozenServer: a deep check of a folder of 20 files with one
// of 5 servers frozen takes about one server timeout in all, not one per
// file, and every file's report names the frozen server as not answering.
func TestDeepCheckFrozenServer(t *testing.T) {
	e := newEnvTimeout(t, 5, nil, hungTimeout)
	ctx := context.Background()
	st := vdrive.GridStore(e.gc)
	root, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	d, err := vdrive.New(st, root.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.MkdirAll(ctx, "/f"); err != nil {
		t.Fatal(err)
	}
	const files = 20
	for i := range files {
		b := random(4<<10 + i)
		if err := d.Put(ctx, fmt.Sprintf("/f/%02d.bin", i), bytes.NewReader(b), int64(len(b)), nil); err != nil {
			t.Fatal(err)
		}
	}
	// The same check with every server up: what the work itself takes on
	// this machine now (under -race on a loaded one, seconds), so that the
	// bound below is on the time the frozen server adds.
	start := time.Now()
	if _, err := e.ck.DeepCheck(ctx, root.String(), "/f", checker.Options{Verify: true}, nil); err != nil {
		t.Fatal(err)
	}
	base := time.Since(start)
	frozen := e.g.Servers[2]
	frozen.Freeze()
	t.Cleanup(frozen.Thaw)

	start = time.Now()
	dr, err := e.ck.DeepCheck(ctx, root.String(), "/f", checker.Options{Verify: true}, nil)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("deep check of %d files with a server frozen: %s, %s with none (server timeout %s)", files, elapsed.Round(time.Millisecond), base.Round(time.Millisecond), hungTimeout)
	if limit := base + 2*hungTimeout; elapsed > limit {
		t.Errorf("deep check took %s (%s with no server frozen), want about one server timeout more (at most %s)", elapsed, base, limit)
	}
	if dr.Summary.Files != files || dr.Summary.Unrecoverable != 0 || dr.Summary.Errors != 0 {
		t.Fatalf("summary %+v", dr.Summary)
	}
	for _, r := range dr.Reports {
		if r.Kind != cap.KindCHK {
			continue
		}
		if !slices.Contains(r.Unreachable, frozen.NodeID) {
			t.Errorf("%s: unreachable %v, want the frozen server %s", r.Path, r.Unreachable, frozen.NodeID)
		}
		if r.Good != 4 || r.Outcome != checker.Unhealthy {
			t.Errorf("%s: %d good shares, %s; want 4, unhealthy (one share on the frozen server)", r.Path, r.Good, r.Outcome)
		}
	}
}

// TestCheckFrozenServerOnce: a checker on its own (no grid client to learn
// from) checking 10 files one after the other with a server frozen waits
// for it once (the first file: one server timeout), names it in every
// report, and once it is thawed asks it again (its probe saw it answer).
func TestCheckFrozenServerOnce(t *testing.T) {
	e := newEnvTimeout(t, 5, nil, hungTimeout)
	var caps []cap.CHK
	for range 10 {
		caps = append(caps, e.upload(t, random(8<<10)))
	}
	ck, err := checker.New(checker.Config{
		Transport: e.g.Transport, Cert: e.g.ClientCert(), GridSecret: e.g.Secret, Servers: e.g.Source(),
		Codec: codecreedsolomon.New(), LeaseSecret: e.lease, H: 4,
		ServerTimeout: hungTimeout, Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	// Connections to every server first: the frozen one hangs on a live
	// link (a dial to it would hang as long).
	if r, err := ck.Check(context.Background(), caps[0], checker.Options{}); err != nil || r.Outcome != checker.Healthy {
		t.Fatalf("before the freeze: %v %v", r, err)
	}
	// The same checks with every server up: what the work itself takes on
	// this machine now, so that the bound below is on what the frozen
	// server adds (a -race run on a loaded machine took seconds).
	start := time.Now()
	for _, c := range caps {
		if _, err := ck.Check(context.Background(), c, checker.Options{Verify: true}); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Since(start)
	frozen := e.g.Servers[1]
	frozen.Freeze()
	t.Cleanup(frozen.Thaw)
	start = time.Now()
	for i, c := range caps {
		r, err := ck.Check(context.Background(), c, checker.Options{Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Unreachable, []string{frozen.NodeID}) || r.Good != 4 {
			t.Errorf("file %d: unreachable %v, %d good; want [%s], 4", i, r.Unreachable, r.Good, frozen.NodeID)
		}
	}
	elapsed := time.Since(start)
	t.Logf("check of %d files with a server frozen: %s, %s with none (server timeout %s)", len(caps), elapsed.Round(time.Millisecond), base.Round(time.Millisecond), hungTimeout)
	if limit := base + 2*hungTimeout; elapsed > limit {
		t.Errorf("10 checks took %s (%s with no server frozen), want about one server timeout more (at most %s)", elapsed, base, limit)
	}
	frozen.Thaw()
	deadline := time.Now().Add(3 * hungTimeout)
	for {
		r, err := ck.Check(context.Background(), caps[0], checker.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Unreachable) == 0 && r.Outcome == checker.Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thawed server still not asked after %s: unreachable %v", 3*hungTimeout, r.Unreachable)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
