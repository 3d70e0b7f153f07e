package vdrive_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

// TestWriteBehindOwnMadeLinkInLongChain: a name put again while its link
// is being made, then put again and again (more times than a record lists
// this node's earlier links of the name) before the next change: the
// last put, acknowledged and shown, is what the folder holds after a
// crash and the replay of its journal. The folder then holds this node's
// own link made mid-chain; the replay must not take it for another
// node's change and keep the older file (the 4-in-40 failure of
// TestWriteBehindSameName under load: a SetMetadata's folder change made
// an early put while later ones of the name were acknowledged).
func TestWriteBehindOwnMadeLinkInLongChain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after bool // gate after the change is made (else before it is sent)
		puts  int  // puts of the name while and after the change is made
	}{
		{name: "few puts, before sent", after: false, puts: 3},
		{name: "many puts, before sent", after: false, puts: 12},
		{name: "many puts, after made", after: true, puts: 12},
		{name: "very many puts, after made", after: true, puts: 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGrid(t)
			root := newRootCap(t, g)
			dir := t.TempDir()
			b, gs := gatedBehind(t, g, dir, tc.after, 0)
			d := frontDrive(t, b, root)
			ctx := ctxFor(t, time.Minute)
			putBytes(t, d, "/x", []byte("put 0"))
			// The change making put 0 waits at the gate: put 0 is in
			// flight while put 1 is acknowledged.
			flushed := atGate(t, ctx, gs, func() error { return b.Flush(ctx) })
			putBytes(t, d, "/x", []byte("put 1"))
			close(gs.release)
			if err := <-flushed; err != nil {
				t.Fatal(err)
			}
			// put 0 is made; the rest wait, each replacing the last.
			for i := 2; i <= tc.puts; i++ {
				putBytes(t, d, "/x", fmt.Appendf(nil, "put %d", i))
			}
			shown, err := d.Stat(ctx, "/x")
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("put %d", tc.puts)
			if got := get(t, d, "/x"); string(got) != want {
				t.Fatalf("the node shows %q, want %q", got, want)
			}
			vdrive.Abandon(b) // the crash: the last put is journaled, not made

			b2, _ := behindOn(t, g, dir, never)
			if err := b2.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if fl := failedLinks(t, dir); len(fl) != 0 {
				t.Fatalf("the replayed last put is in the failed links: %s", fl[0].Error)
			}
			far := open(t, g, root)
			in, err := far.Stat(ctx, "/x")
			if err != nil || in.ReadCap() != shown.ReadCap() {
				t.Fatalf("after replay /x is %v (%v), the node showed %s", in, err, shown.ReadCap())
			}
			if got := get(t, far, "/x"); string(got) != want {
				t.Fatalf("after replay /x holds %q, want %q", got, want)
			}
		})
	}
}

// TestWriteBehindRewrittenWhileMade: a file rewritten without pause (a
// program saving it again and again), each put acknowledged while the
// folder change making the one before is under way, so that some link of
// the name is always pending: after a crash the replay makes the last
// put over whichever of this node's puts the folder holds.
func TestWriteBehindRewrittenWhileMade(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b, gs := gatedBehind(t, g, dir, true, 0)
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, time.Minute)
	putBytes(t, d, "/x", []byte("save 0"))
	const saves = 20
	for i := 1; i <= saves; i++ {
		flushed := atGate(t, ctx, gs, func() error { return b.Flush(ctx) })
		putBytes(t, d, "/x", fmt.Appendf(nil, "save %d", i))
		gs.release <- struct{}{}
		if err := <-flushed; err != nil {
			t.Fatal(err)
		}
	}
	vdrive.Abandon(b)

	b2, _ := behindOn(t, g, dir, never)
	if err := b2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if fl := failedLinks(t, dir); len(fl) != 0 {
		t.Fatalf("the replayed last save is in the failed links: %s", fl[0].Error)
	}
	if got, want := get(t, open(t, g, root), "/x"), fmt.Sprintf("save %d", saves); string(got) != want {
		t.Fatalf("after replay /x holds %q, want %q", got, want)
	}
}
