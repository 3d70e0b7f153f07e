package vdrive_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/vdrive"
)

// startTogether runs fn(i) for i in [0, n) in n goroutines released at
// once, and returns their errors by i.
func startTogether(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var ready, wg sync.WaitGroup
	gate := make(chan struct{})
	for i := 0; i < n; i++ {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-gate
			errs[i] = fn(i)
		}()
	}
	ready.Wait()
	close(gate)
	wg.Wait()
	return errs
}

// TestConcurrentCreatesBatched: 50 goroutines each create a file in one
// directory at the same time, as a frontend with many transfers does; all
// 50 are listed with their own content, and the directory changed in far
// fewer than 50 Modify calls because the links were coalesced.
func TestConcurrentCreatesBatched(t *testing.T) {
	const n = 50
	for _, tc := range []struct {
		name string
		opts []vdrive.Option
	}{
		{"no-dir-cache", nil},
		{"dir-cache", []vdrive.Option{vdrive.WithDirCache(time.Second)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGrid(t)
			c := newClient(t, g)
			ctx := ctxFor(t, 2*time.Minute)
			root, err := vdrive.NewRoot(ctx, vdrive.GridStore(c))
			if err != nil {
				t.Fatal(err)
			}
			d, _ := vdrive.New(vdrive.GridStore(c), root.String(), tc.opts...)
			if err := d.Mkdir(ctx, "/in"); err != nil {
				t.Fatal(err)
			}
			before := c.MutableStats()
			errs := startTogether(n, func(i int) error {
				w, err := d.Create(ctx, fmt.Sprintf("/in/f%02d", i))
				if err != nil {
					return err
				}
				if _, err := w.Write(pseudo(byte(i), 4096)); err != nil {
					w.Abort()
					return err
				}
				return w.Close()
			})
			for i, err := range errs {
				if err != nil {
					t.Fatalf("file %d: %v", i, err)
				}
			}
			modifies := c.MutableStats().Modifies - before.Modifies
			t.Logf("%d files linked in %d directory changes", n, modifies)
			if modifies > n/2 {
				t.Fatalf("%d files took %d directory changes, want at most %d (coalesced)", n, modifies, n/2)
			}
			fresh := open(t, g, d.RootCap())
			got := names(t, fresh, "/in")
			if len(got) != n {
				t.Fatalf("/in lists %d entries, want %d: %v", len(got), n, got)
			}
			for i := 0; i < n; i++ {
				p := fmt.Sprintf("/in/f%02d", i)
				if got[i] != p[len("/in/"):] {
					t.Fatalf("entry %d is %q", i, got[i])
				}
				if b := get(t, fresh, p); string(b) != string(pseudo(byte(i), 4096)) {
					t.Fatalf("%s holds other bytes", p)
				}
			}
		})
	}
}

// TestBatchedErrorsStayOwn: in one burst of changes to a directory, the
// callers whose change cannot be made (a Link onto an existing name, a
// file closed where a directory is, a SetMetadata of a missing name) get
// their own error, the same as alone, and every other change is made.
func TestBatchedErrorsStayOwn(t *testing.T) {
	g := newGrid(t)
	c := newClient(t, g)
	ctx := ctxFor(t, 2*time.Minute)
	root, err := vdrive.NewRoot(ctx, vdrive.GridStore(c))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := vdrive.New(vdrive.GridStore(c), root.String())
	if err := d.Mkdir(ctx, "/in"); err != nil {
		t.Fatal(err)
	}
	if err := d.Link(ctx, "/in/taken", litCap("first")); err != nil {
		t.Fatal(err)
	}
	if err := d.Mkdir(ctx, "/in/adir"); err != nil {
		t.Fatal(err)
	}
	// Writers for the "adir" case are opened before the race: Create
	// refuses a directory it can see, Close must refuse one all the same.
	const n = 30
	type want struct {
		op  func(context.Context) error
		err error // nil: must succeed
	}
	cases := make([]want, n)
	for i := range cases {
		switch i % 5 {
		case 0: // a name that exists: this caller alone gets ErrExist
			cases[i] = want{func(ctx context.Context) error { return d.Link(ctx, "/in/taken", litCap(fmt.Sprint("other ", i))) }, vdrive.ErrExist}
		case 1: // metadata of a name never made
			cases[i] = want{func(ctx context.Context) error {
				return d.SetMetadata(ctx, fmt.Sprintf("/in/missing%02d", i), func(m *vdrive.Metadata) error { return nil })
			}, vdrive.ErrNotExist}
		case 2: // a file over a directory made after the writer was opened
			name := fmt.Sprintf("/in/late%02d", i)
			w, err := d.Create(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(w, "x"); err != nil {
				t.Fatal(err)
			}
			if err := d.Mkdir(ctx, name); err != nil {
				t.Fatal(err)
			}
			cases[i] = want{func(context.Context) error { return w.Close() }, vdrive.ErrIsDir}
		default:
			cases[i] = want{func(ctx context.Context) error {
				return d.Link(ctx, fmt.Sprintf("/in/ok%02d", i), litCap(fmt.Sprint("ok ", i)))
			}, nil}
		}
	}
	before := c.MutableStats()
	errs := startTogether(n, func(i int) error { return cases[i].op(ctx) })
	modifies := c.MutableStats().Modifies - before.Modifies
	t.Logf("%d changes in %d directory changes", n, modifies)
	for i, err := range errs {
		if w := cases[i].err; w == nil && err != nil {
			t.Errorf("change %d failed: %v", i, err)
		} else if w != nil && !errors.Is(err, w) {
			t.Errorf("change %d: error %v, want %v", i, err, w)
		}
	}
	var ok []string
	for _, name := range names(t, open(t, g, d.RootCap()), "/in") {
		if strings.HasPrefix(name, "ok") {
			ok = append(ok, name)
		}
		if strings.HasPrefix(name, "missing") {
			t.Errorf("%s was made", name)
		}
	}
	if len(ok) != 2*n/5 {
		t.Fatalf("/in holds %d of the %d good links: %v", len(ok), 2*n/5, ok)
	}
	info, err := d.Stat(ctx, "/in/taken")
	if err != nil || info.ReadCap() != litCap("first") {
		t.Fatalf("/in/taken was replaced: %v %v", info, err)
	}
	if modifies >= n {
		t.Fatalf("%d changes took %d directory changes: not coalesced", n, modifies)
	}
}

// TestBatchedCallerGivesUp: callers whose context ends at any point
// (before, while or after their change is queued behind others) do not
// make the others fail, and whatever was acknowledged is listed.
func TestBatchedCallerGivesUp(t *testing.T) {
	g := newGrid(t)
	d := newDrive(t, g)
	ctx := ctxFor(t, 2*time.Minute)
	if err := d.Mkdir(ctx, "/in"); err != nil {
		t.Fatal(err)
	}
	const n = 12
	errs := startTogether(n, func(i int) error {
		cctx := ctx
		if i%3 == 0 {
			var cancel context.CancelFunc
			cctx, cancel = context.WithTimeout(ctx, time.Duration(i)*time.Millisecond)
			defer cancel()
		}
		return d.Link(cctx, fmt.Sprintf("/in/f%02d", i), litCap(fmt.Sprint(i)))
	})
	got := map[string]bool{}
	for _, name := range names(t, d, "/in") {
		got[name] = true
	}
	for i, err := range errs {
		name := fmt.Sprintf("f%02d", i)
		switch {
		case i%3 != 0 && err != nil:
			t.Errorf("link %d failed beside a caller that gave up: %v", i, err)
		case err == nil && !got[name]:
			t.Errorf("link %d acknowledged but %s is not listed", i, name)
		}
	}
}

// gatedStore holds each of its first Modify calls until released.
type gatedStore struct {
	vdrive.Store
	entered chan int
	release []chan struct{}
	mu      sync.Mutex
	calls   int
}

func (s *gatedStore) Modify(ctx context.Context, c cap.MutableWrite, fn func(old []byte) ([]byte, error)) error {
	s.mu.Lock()
	i := s.calls
	s.calls++
	s.mu.Unlock()
	if i < len(s.release) {
		s.entered <- i
		<-s.release[i]
	}
	return s.Store.Modify(ctx, c, fn)
}

// waitQueued waits until n changes are queued on d.
func waitQueued(t *testing.T, d *vdrive.Drive, n int) {
	t.Helper()
	for end := time.Now().Add(time.Minute); vdrive.Queued(d) != n; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d changes queued, want %d", vdrive.Queued(d), n)
		}
	}
}

// TestBatchLeaderGivesUp: the caller who makes a batched change for the
// others gives up (its context ends) while the change is under way; the
// others' changes are made all the same, in one directory change after
// the one they queued behind.
func TestBatchLeaderGivesUp(t *testing.T) {
	g := newGrid(t)
	gs := &gatedStore{Store: vdrive.GridStore(newClient(t, g)), entered: make(chan int, 2),
		release: []chan struct{}{make(chan struct{}), make(chan struct{})}}
	ctx := ctxFor(t, 2*time.Minute)
	root, err := vdrive.NewRoot(ctx, gs.Store)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := vdrive.New(gs, root.String())
	link := func(ctx context.Context, name string) chan error {
		ch := make(chan error, 1)
		go func() { ch <- d.Link(ctx, "/"+name, litCap(name)) }()
		return ch
	}
	first := link(ctx, "first")
	if i := <-gs.entered; i != 0 {
		t.Fatalf("modify %d entered first", i)
	}
	leadCtx, giveUp := context.WithCancel(ctx)
	defer giveUp()
	lead := link(leadCtx, "lead")
	waitQueued(t, d, 1)
	var others []chan error
	for i := 0; i < 4; i++ {
		others = append(others, link(ctx, fmt.Sprintf("other%d", i)))
	}
	waitQueued(t, d, 5)
	close(gs.release[0])
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-gs.entered // the batch of lead and the others
	giveUp()
	close(gs.release[1])
	for i, ch := range others {
		if err := <-ch; err != nil {
			t.Errorf("other %d: %v", i, err)
		}
	}
	leadErr := <-lead
	got := strings.Join(names(t, open(t, g, d.RootCap()), "/"), ",")
	want := "first,other0,other1,other2,other3"
	if leadErr == nil {
		want = "first,lead,other0,other1,other2,other3"
	}
	if got != want {
		t.Fatalf("root lists %s, want %s (lead: %v)", got, want, leadErr)
	}
	if gs.calls != 2 {
		t.Fatalf("%d directory changes, want 2", gs.calls)
	}
}
