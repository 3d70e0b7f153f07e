package grid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/placement"
	"github.com/tarnfs/tarn/host/storageclient"
	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/storage"
)

// queueDepth is how many blocks may wait for each share's server; upload
// memory is about (1 + queueDepth*N/K) segments plus one 1 MiB send buffer
// per share.
const queueDepth = 4

// Upload stores the size bytes of r (size -1: unknown, read to EOF) as an
// immutable file and returns its cap: a cap.Literal for files of at most
// cap.LiteralMax bytes (no server is asked), else a cap.CHK. With a
// convergence secret the file is spooled to TempDir while its key is
// hashed, then encoded from the spool; with random keys a file of known
// size streams straight from r. With a convergence secret, a reader of
// known size (above 1 MiB) that is also an io.ReaderAt and an io.Seeker
// (an *os.File, an io.SectionReader) is not spooled: it is read in place
// from its current offset, as UploadAt does, and left at the end of the
// bytes uploaded. Under WithSpool, an upload of unknown size reads r
// once for the key and encodes from the caller's file.
// progress, if set, is called with the plaintext bytes encoded so far.
// The cap is returned only once every share placed is sealed and the
// shares sit on at least H servers.
func (c *Client) Upload(ctx context.Context, r io.Reader, size int64, progress func(int64)) (cap.Cap, error) {
	c.stats.uploads.Add(1)
	var cp cap.Cap
	var err error
	var spool io.ReaderAt
	if size < 0 {
		spool, _ = claimSpool(ctx)
	}
	if ra, base, ok := inPlace(r, size); ok && c.cfg.Convergence != nil {
		if cp, err = c.uploadAt(ctx, ra, base, size, progress); err == nil {
			if _, serr := r.(io.Seeker).Seek(base+size, io.SeekStart); serr != nil {
				cp, err = nil, fmt.Errorf("upload: move the source past the bytes uploaded: %w", serr)
			}
		}
	} else if spool != nil {
		cp, err = c.uploadSpooled(ctx, r, spool, progress)
	} else {
		cp, err = c.upload(ctx, r, size, progress)
	}
	if err != nil {
		c.stats.uploadsFailed.Add(1)
		c.stats.errorOf(errorKind(err))
		return nil, c.Explain(err)
	}
	return cp, nil
}

func (c *Client) upload(ctx context.Context, r io.Reader, size int64, progress func(int64)) (cap.Cap, error) {
	if size < -1 || size > cap.MaxFileSize {
		return nil, fmt.Errorf("upload: bad size %d", size)
	}
	// Small or unknown: read one byte past the literal limit to decide.
	if size <= cap.LiteralMax {
		head := make([]byte, cap.LiteralMax+1)
		n, err := io.ReadFull(r, head)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			if size >= 0 && int64(n) != size {
				return nil, fmt.Errorf("upload: got %d bytes, declared %d: %w", n, size, ErrSize)
			}
			c.stats.literal.Add(1)
			if progress != nil {
				progress(int64(n))
			}
			return cap.Literal{Data: head[:n]}, nil
		case err != nil:
			return nil, fmt.Errorf("upload: read: %w", err)
		case size >= 0:
			return nil, fmt.Errorf("upload: more than the declared %d bytes: %w", size, ErrSize)
		}
		r = io.MultiReader(bytes.NewReader(head), r)
	}

	if size < 0 {
		// Unknown size (a frontend's writer): read ahead up to the small-
		// file limit, so that a small file is handled in memory like one
		// of known size rather than spooled to a temp file.
		var ahead bytes.Buffer
		n, err := ahead.ReadFrom(io.LimitReader(r, smallUploadMax+1))
		if err != nil {
			return nil, fmt.Errorf("upload: read: %w", err)
		}
		if n <= smallUploadMax {
			size, r = n, bytes.NewReader(ahead.Bytes())
		} else {
			r = io.MultiReader(bytes.NewReader(ahead.Bytes()), r)
		}
	}

	var key cap.Key
	var reopen func() (io.Reader, error) // a fresh reader of the whole file, if re-readable
	var first io.Reader
	if size >= 0 && size <= smallUploadMax {
		// A small file of known size is read into memory (hashed there for
		// its convergent key): no spool file to create, write and remove.
		plain, err := io.ReadAll(&exactReader{r: r, left: size, size: size})
		if err != nil {
			if errors.Is(err, ErrSize) {
				return nil, err
			}
			return nil, fmt.Errorf("upload: read: %w", err)
		}
		if c.cfg.Convergence != nil {
			conv, err := chk.NewConvergence(c.cfg.Convergence, c.params, c.codec)
			if err != nil {
				return nil, fmt.Errorf("upload: %w", err)
			}
			conv.Write(plain)
			key = conv.Key()
		} else if key, err = chk.RandomKey(); err != nil {
			return nil, err
		}
		first = bytes.NewReader(plain)
		reopen = func() (io.Reader, error) { return bytes.NewReader(plain), nil }
	} else if c.cfg.Convergence != nil || size < 0 {
		f, n, k, err := c.spool(r)
		if err != nil {
			return nil, err
		}
		defer func() { f.Close(); os.Remove(f.Name()) }()
		if size >= 0 && n != size {
			return nil, fmt.Errorf("upload: got %d bytes, declared %d: %w", n, size, ErrSize)
		}
		size, key = n, k
		reopen = func() (io.Reader, error) {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return nil, fmt.Errorf("upload: rewind spool: %w", err)
			}
			return io.LimitReader(f, size), nil
		}
		if first, err = reopen(); err != nil {
			return nil, err
		}
	} else {
		k, err := chk.RandomKey()
		if err != nil {
			return nil, err
		}
		key = k
		first = &exactReader{r: r, left: size, size: size}
	}
	if progress != nil {
		first = &progressReader{r: first, fn: progress}
	}
	return c.uploadCHK(ctx, key, size, first, reopen)
}

// spool copies r into a temporary file, hashing a convergent key on the
// way when the client has a convergence secret (a random key otherwise).
func (c *Client) spool(r io.Reader) (*os.File, int64, cap.Key, error) {
	f, err := os.CreateTemp(c.cfg.TempDir, "tarn-upload-*")
	if err != nil {
		return nil, 0, cap.Key{}, fmt.Errorf("upload: spool: %w", err)
	}
	fail := func(err error) (*os.File, int64, cap.Key, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, cap.Key{}, err
	}
	var conv *chk.Convergence
	w := io.Writer(f)
	if c.cfg.Convergence != nil {
		if conv, err = chk.NewConvergence(c.cfg.Convergence, c.params, c.codec); err != nil {
			return fail(fmt.Errorf("upload: %w", err))
		}
		w = io.MultiWriter(f, conv)
	}
	// 1 MiB at a time: a 256 MiB file is 256 writes to the spool, not
	// 8,192. The wrappers keep io.CopyBuffer from going around the buffer
	// (os.File's ReadFrom falls back to 32 KiB copies from a socket).
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, make([]byte, 1<<20))
	if err != nil {
		return fail(fmt.Errorf("upload: spool to %s: %w", f.Name(), err))
	}
	if conv != nil {
		return f, n, conv.Key(), nil
	}
	k, err := chk.RandomKey()
	if err != nil {
		return fail(err)
	}
	return f, n, k, nil
}

// exactReader reads exactly size bytes and fails on fewer or more.
type exactReader struct {
	r          io.Reader
	left, size int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		var one [1]byte
		if n, _ := io.ReadFull(e.r, one[:]); n > 0 {
			return 0, fmt.Errorf("upload: more than the declared %d bytes: %w", e.size, ErrSize)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("upload: got %d bytes, declared %d: %w", e.size-e.left, e.size, ErrSize)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

type progressReader struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.n += int64(n)
		p.fn(p.n)
	}
	return n, err
}

// uploader is the state of one CHK upload.
type uploader struct {
	c      *Client
	ctx    context.Context
	si     cap.StorageIndex
	layout chk.Layout
	key    cap.Key
	byID   map[string]Server

	mu       sync.Mutex
	pl       *placement.Placement
	sealedAt map[int]map[string]bool // share -> servers where this upload sealed it
	notHappy error                   // set when a failure made H unreachable
	found    map[int][]string        // shares the survey found in place
	failed   map[string]context.CancelFunc
	srvCtx   map[string]context.Context
	// skip are servers the one-call path of a small file found dead or
	// stuck: the survey does not ask them again.
	skip map[string]bool
}

func (c *Client) uploadCHK(ctx context.Context, key cap.Key, size int64, first io.Reader, reopen func() (io.Reader, error)) (cap.Cap, error) {
	l, err := chk.NewLayout(c.params, size)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	u := &uploader{c: c, ctx: ctx, si: cap.StorageIndexOf(key), layout: l, key: key, byID: map[string]Server{},
		sealedAt: map[int]map[string]bool{}, failed: map[string]context.CancelFunc{}, srvCtx: map[string]context.Context{},
		skip: map[string]bool{}}
	defer func() {
		for _, cancel := range u.failed {
			if cancel != nil {
				cancel()
			}
		}
	}()
	if size <= smallUploadMax {
		// A small file is read whole: the one-call path encodes it into
		// memory, and the general path, if it must follow, reads it again.
		plain, err := io.ReadAll(first)
		if err != nil {
			if errors.Is(err, ErrSize) {
				return nil, err
			}
			return nil, fmt.Errorf("upload %s: read: %w", u.si, err)
		}
		if int64(len(plain)) != size {
			return nil, fmt.Errorf("upload: got %d bytes, declared %d: %w", len(plain), size, ErrSize)
		}
		if out, ok := u.putSmall(plain); ok {
			c.log.Debug("uploaded", "index", u.si.String(), "size", size, "happiness", u.pl.Happiness, "path", "one call")
			return out, nil
		}
		first = bytes.NewReader(plain)
		reopen = func() (io.Reader, error) { return bytes.NewReader(plain), nil }
	}
	if err := u.survey(); err != nil {
		return nil, err
	}
	var out cap.CHK
	for round := 0; ; round++ {
		want := u.pending()
		if round > 0 && len(want) == 0 {
			break
		}
		if round > len(u.byID)+1 {
			return nil, fmt.Errorf("upload %s: shares %v still unplaced after %d rounds (see the log)", u.si, keys(want), round)
		}
		open := func() (io.Reader, error) { return first, nil }
		if round > 0 {
			open = func() (io.Reader, error) { return u.reread(reopen, out) }
		}
		got, err := u.pass(open, want, round)
		if err != nil {
			return nil, err
		}
		if round == 0 {
			out = got
		} else if got != (cap.CHK{}) && got != out {
			return nil, fmt.Errorf("upload %s: re-encoding gave another cap", u.si)
		}
		if round == 0 && len(u.found) > 0 && u.checkFound(out) > 0 {
			continue // shares that were not this file's are replanned
		}
		if round == 0 && len(want) == 0 {
			u.renewExisting()
			break
		}
	}
	u.mu.Lock()
	happy := u.pl.Happiness
	u.mu.Unlock()
	if happy < c.place.H {
		return nil, fmt.Errorf("upload %s: %w: shares on %d distinct servers, %d needed", u.si, ErrNotHappy, happy, c.place.H)
	}
	c.log.Debug("uploaded", "index", u.si.String(), "size", size, "happiness", happy)
	return out, nil
}

// survey asks every server, in ring order, whether it has room (and, for
// convergent keys, which shares it holds already) and plans the upload.
//
// It does not wait for a server that hangs. Servers the client remembers
// as hung are not asked while the others number at least H. Once the
// servers that answered can be planned to happiness and the others have
// had a grace (mutableGrace: four times the slowest answer so far, at
// least min(1 s, ServerTimeout/4)), the survey stops: the requests still
// out are cancelled and their servers remembered as hung for a server
// timeout. A convergent file's shares such a server holds are then not
// found, and written again elsewhere: a harmless extra copy. When the
// answers cannot make H, the servers left out are asked too and every
// server is waited for up to ServerTimeout, as before.
func (u *uploader) survey() error {
	c := u.c
	servers := ring(u.si[:], c.servers())
	type answer struct {
		i        int
		ok       bool
		writable bool
		have     []storageclient.ShareInfo
		err      error
	}
	for _, s := range servers {
		u.byID[s.NodeID] = s
	}
	start := time.Now()
	// Servers announced too full for a share are left out like hung ones
	// (upload_room.go). Too few without them: ask them and wait, as
	// before.
	full := roomless(servers, u.layout.ShareSize, c.place.H)
	held := leaveOut(len(servers), c.place.H, c.hung().skip(servers, start), full,
		func(i int) bool { return u.skip[servers[i].NodeID] })
	sctx, cancel := context.WithCancel(u.ctx)
	defer cancel() // ends the requests of servers not waited for
	answers := make([]answer, len(servers))
	done := make(chan answer, len(servers))
	sem := make(chan struct{}, c.cfg.Parallel)
	pending := 0
	ask := func(i int) {
		pending++
		s := servers[i]
		go func() {
			a := answer{i: i}
			select {
			case sem <- struct{}{}:
				a.err = c.do(sctx, s, func(cl *storageclient.Client) error {
					rctx, cancel := c.reqCtx(sctx)
					defer cancel()
					v, err := cl.Version(rctx)
					if err != nil {
						return err
					}
					a.ok, a.writable = true, v.Available >= u.layout.ShareSize &&
						(v.MaxShareSize == 0 || v.MaxShareSize >= u.layout.ShareSize)
					if c.cfg.Convergence != nil {
						a.have, err = cl.List(rctx, u.si)
					}
					return err
				})
				<-sem
			case <-sctx.Done():
				a.err = sctx.Err()
			}
			a.ok = a.ok && a.err == nil
			done <- a
		}()
	}
	for i, s := range servers {
		if !u.skip[s.NodeID] && !held[i] { // skip: found dead or stuck a moment ago
			ask(i)
		}
	}
	// plan plans over the servers that answered so far.
	plan := func() (*placement.Placement, int, error) {
		var live []placement.Server
		existing := map[int][]string{}
		for i, s := range servers {
			a := answers[i]
			if !a.ok {
				continue
			}
			live = append(live, placement.Server{ID: s.NodeID, Writable: a.writable})
			for _, sh := range a.have {
				if sh.Size == u.layout.ShareSize {
					existing[int(sh.Num)] = append(existing[int(sh.Num)], s.NodeID)
				}
			}
		}
		pl, err := placement.Plan(c.place, live, existing)
		return pl, len(live), err
	}
	var (
		last   time.Duration // when the latest answer came
		timer  *time.Timer
		timerC <-chan time.Time
		early  *placement.Placement
	)
	finished := make([]bool, len(servers))
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for pending > 0 && early == nil {
		select {
		case a := <-done:
			pending--
			answers[a.i], finished[a.i] = a, true
			last = time.Since(start)
			if a.ok {
				c.hung().clear(servers[a.i].NodeID)
			} else if a.err != nil && u.ctx.Err() == nil {
				c.log.Info("server did not answer", "index", u.si.String(), "node", servers[a.i].NodeID, "error", a.err)
				if errorKind(a.err) == KindTimeout {
					c.markHung([]string{servers[a.i].NodeID})
				}
			}
		case <-timerC:
			timerC = nil
		case <-u.ctx.Done():
			return fmt.Errorf("upload %s: %w", u.si, u.ctx.Err())
		}
		wait := c.mutableGrace(last) - time.Since(start)
		if pending > 0 && wait > 0 {
			if timer != nil {
				timer.Stop()
			}
			timer = time.NewTimer(wait)
			timerC = timer.C
			continue
		}
		if pl, _, err := plan(); err == nil {
			if pending > 0 {
				early = pl
			}
			continue
		}
		// Too few answers to be happy: ask the servers left out as hung
		// too, and wait for everyone up to the server timeout.
		for i := range held {
			if !u.skip[servers[i].NodeID] {
				ask(i)
			}
		}
		held = nil
	}
	if err := u.ctx.Err(); err != nil {
		return fmt.Errorf("upload %s: %w", u.si, err)
	}
	if len(held) > 0 {
		c.log.Debug("upload survey skipped servers that hung lately or announced no room", "index", u.si.String(), "skipped", len(held), "full", len(full), "servers", len(servers))
	}
	if early != nil {
		var gave []string
		for i, s := range servers {
			if !finished[i] && !held[i] && !u.skip[s.NodeID] {
				gave = append(gave, s.NodeID)
			}
		}
		c.gaveUp(gave, time.Since(start))
		c.log.Info("upload did not wait for servers that hang", "index", u.si.String(), "waiting", gave,
			"servers", len(servers), "after", time.Since(start).Round(time.Millisecond))
	}
	pl, live, err := plan()
	if err != nil {
		return fmt.Errorf("upload %s: %d of %d servers answered: %w", u.si, live, len(servers), err)
	}
	u.pl = pl
	u.found = map[int][]string{}
	for sh, ids := range pl.Existing {
		u.found[sh] = append([]string(nil), ids...)
	}
	for sh, ids := range pl.Existing {
		for _, id := range ids {
			u.markSealed(sh, id)
		}
	}
	c.stats.existing.Add(int64(len(pl.Existing)))
	return nil
}

func (u *uploader) markSealed(sh int, id string) {
	if u.sealedAt[sh] == nil {
		u.sealedAt[sh] = map[string]bool{}
	}
	u.sealedAt[sh][id] = true
}

// pending returns the shares the plan writes somewhere they are not yet
// sealed.
func (u *uploader) pending() map[int]bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	want := map[int]bool{}
	for sh, id := range u.pl.Writes {
		if !u.sealedAt[sh][id] {
			want[sh] = true
		}
	}
	return want
}

// serverCtx is the context of all requests to one server during this
// upload; failing the server cancels it.
func (u *uploader) serverCtx(id string) context.Context {
	u.mu.Lock()
	defer u.mu.Unlock()
	if ctx, ok := u.srvCtx[id]; ok {
		return ctx
	}
	ctx, cancel := context.WithCancel(u.ctx)
	u.srvCtx[id], u.failed[id] = ctx, cancel
	return ctx
}

// fail drops a server from the upload: its requests are cancelled, its
// shares replanned onto other servers (written in the next round).
func (u *uploader) fail(id string, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pl.Failed(id) {
		return
	}
	if u.ctx.Err() != nil {
		return // the caller gave up; not the server's fault
	}
	s := u.byID[id]
	u.c.fault(s, nil, err)
	u.c.stats.serversFailed.Add(1)
	u.c.log.Warn("dropping server from upload", "index", u.si.String(), "node", id, "error", err)
	if cancel := u.failed[id]; cancel != nil {
		cancel()
	} else {
		ctx, cancel := context.WithCancel(u.ctx)
		cancel()
		u.srvCtx[id], u.failed[id] = ctx, cancel
	}
	for sh := range u.sealedAt {
		delete(u.sealedAt[sh], id)
	}
	moved, perr := u.pl.Fail(id)
	if perr != nil && u.notHappy == nil {
		u.notHappy = perr
	}
	if len(moved) > 0 {
		u.c.log.Info("replanned shares", "index", u.si.String(), "from", id, "moves", fmt.Sprint(moved))
	}
}

func (u *uploader) happinessErr() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.notHappy != nil {
		return fmt.Errorf("upload %s: %w", u.si, u.notHappy)
	}
	return nil
}

// task streams one share to one server.
type task struct {
	sh    int
	id    string
	w     *storageclient.ShareWriter
	ctx   context.Context
	ch    chan job
	dead  chan struct{} // closed when the task is over (read err after it)
	err   error
	bytes atomic.Int64
	// busySince is when the request in progress started (unix ns; 0 when
	// idle): the progress monitor fails a server stuck in one for longer
	// than ServerTimeout.
	busySince atomic.Int64
}

type job struct {
	buf     *[]byte
	off     int64
	release func() // set for a block lent by the encoder (buf is then not pooled)
}

func (j job) done() {
	if j.release != nil {
		j.release()
		return
	}
	bufPool.Put(j.buf)
}

// allocate gets a writer for every share in want at its planned server,
// replanning around servers that fail. Shares a server says it has already
// count as sealed there.
func (u *uploader) allocate(want map[int]bool, wait bool) (map[int]*task, error) {
	tasks := map[int]*task{}
	busy := map[int]bool{} // being written by another upload: left for the next round
	for {
		if err := u.happinessErr(); err != nil {
			return tasks, err
		}
		todo := map[string][]uint32{}
		u.mu.Lock()
		for sh := range want {
			id, ok := u.pl.Writes[sh]
			if !ok {
				continue // homeless (no writable server): happiness decides
			}
			if t := tasks[sh]; (t != nil && t.id == id) || u.sealedAt[sh][id] || busy[sh] {
				continue
			}
			todo[id] = append(todo[id], uint32(sh))
		}
		u.mu.Unlock()
		if len(todo) == 0 {
			return tasks, nil
		}
		type result struct {
			id   string
			a    *storageclient.Allocation
			busy []uint32
			err  error
		}
		results := make(chan result, len(todo))
		for id, shs := range todo {
			sort.Slice(shs, func(i, j int) bool { return shs[i] < shs[j] })
			go func() {
				ctx := u.serverCtx(id)
				var a *storageclient.Allocation
				var busy []uint32
				err := u.c.do(ctx, u.byID[id], func(cl *storageclient.Client) error {
					var err error
					a, busy, err = u.allocateOn(ctx, cl, id, shs, wait)
					if err != nil {
						for _, w := range a.Writers {
							u.abort(w)
						}
					}
					return err
				})
				results <- result{id, a, busy, err}
			}()
		}
		for range todo {
			r := <-results
			if r.err != nil {
				u.fail(r.id, r.err)
				continue
			}
			for _, sh := range r.busy {
				busy[int(sh)] = true
				u.c.log.Info("share being written by another upload", "index", u.si.String(), "share", sh, "node", r.id)
			}
			u.mu.Lock()
			for _, sh := range r.a.AlreadyHave {
				u.markSealed(int(sh), r.id)
			}
			u.mu.Unlock()
			for sh, w := range r.a.Writers {
				if old := tasks[int(sh)]; old != nil {
					u.abort(old.w)
				}
				tasks[int(sh)] = &task{sh: int(sh), id: r.id, w: w, ctx: u.serverCtx(r.id),
					ch: make(chan job, queueDepth), dead: make(chan struct{})}
			}
		}
		// Drop tasks whose server failed meanwhile.
		u.mu.Lock()
		for sh, t := range tasks {
			if u.pl.Failed(t.id) {
				delete(tasks, sh)
			}
		}
		u.mu.Unlock()
	}
}

// allocateOn allocates shares on one server. Shares another upload is
// writing there right now (the same convergent file uploaded twice at
// once) are returned as busy. With wait, they are asked for again, with
// back-off, for up to ServerTimeout first: by then the other upload has
// usually sealed them (they count as already there) or given up (they are
// ours to write). The first round never waits, as both uploads may hold
// shares the other wants.
func (u *uploader) allocateOn(ctx context.Context, cl *storageclient.Client, id string, shs []uint32, wait bool) (*storageclient.Allocation, []uint32, error) {
	all := &storageclient.Allocation{Writers: map[uint32]*storageclient.ShareWriter{}}
	deadline := time.Now().Add(u.c.cfg.ServerTimeout)
	delay := 20 * time.Millisecond
	for {
		rctx, cancel := u.c.reqCtx(ctx)
		a, err := cl.Allocate(rctx, u.si, shs, u.layout.ShareSize, u.c.leaseSecret(u.si[:], id))
		cancel()
		if err != nil {
			return all, nil, err
		}
		all.AlreadyHave = append(all.AlreadyHave, a.AlreadyHave...)
		for sh, w := range a.Writers {
			all.Writers[sh] = w
		}
		if len(a.InProgress) == 0 || !wait || time.Now().Add(delay).After(deadline) {
			return all, a.InProgress, nil
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return all, nil, ctx.Err()
		}
		shs, delay = a.InProgress, min(2*delay, 500*time.Millisecond)
	}
}

// abort discards an unsealed share in the background.
func (u *uploader) abort(w *storageclient.ShareWriter) {
	u.c.bg.Add(1)
	go func() {
		defer u.c.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), u.c.cfg.ServerTimeout)
		defer cancel()
		w.Abort(ctx)
	}()
}

// sink hands the encoder's writes to the share tasks.
type sink struct {
	tasks map[int]*task
}

func (s *sink) WriteAt(ctx context.Context, sh int, p []byte, off int64) error {
	t := s.tasks[sh]
	if t == nil {
		return nil // a share kept from before, or not written this round
	}
	b := getBuf(len(p))
	copy(*b, p)
	select {
	case t.ch <- job{buf: b, off: off}:
		return nil
	case <-t.dead:
		bufPool.Put(b)
		return nil
	case <-t.ctx.Done(): // its server failed: the share is replanned
		bufPool.Put(b)
		return nil
	case <-ctx.Done():
		bufPool.Put(b)
		return ctx.Err()
	}
}

// WriteBlock queues the encoder's block itself (no copy); it is released
// once written, or dropped.
func (s *sink) WriteBlock(ctx context.Context, sh int, p []byte, off int64, release func()) error {
	t := s.tasks[sh]
	if t == nil {
		release()
		return nil
	}
	select {
	case t.ch <- job{buf: &p, off: off, release: release}:
		return nil
	case <-t.dead:
		release()
		return nil
	case <-t.ctx.Done():
		release()
		return nil
	case <-ctx.Done():
		release()
		return ctx.Err()
	}
}

// run writes the task's jobs and seals the share when the channel closes.
// A failure drops the whole server at once, so its other shares stop
// waiting on it too.
func (t *task) run(u *uploader, commit *atomic.Bool) {
	defer close(t.dead)
	defer func() {
		if t.err == nil {
			return
		}
		if t.err != errAbandoned {
			u.fail(t.id, t.err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), u.c.cfg.ServerTimeout)
		defer cancel()
		t.w.Abort(ctx)
	}()
	busy := func() { t.busySince.Store(time.Now().UnixNano()) }
	for j := range t.ch {
		if t.err == nil {
			busy()
			t.err = t.w.WriteAt(t.ctx, *j.buf, j.off)
			t.busySince.Store(0)
			if t.err == nil {
				t.bytes.Add(int64(len(*j.buf)))
				u.c.stats.bytesUp.Add(int64(len(*j.buf)))
			}
		}
		j.done()
		if t.err != nil {
			// Release what is still queued, and what comes until the
			// channel closes.
			go func() {
				for j := range t.ch {
					j.done()
				}
			}()
			return
		}
	}
	if !commit.Load() {
		// The encoder failed: these bytes are not a share. Never seal.
		t.err = errAbandoned
		return
	}
	busy()
	t.err = t.w.Seal(t.ctx)
	t.busySince.Store(0)
}

// monitor fails every server with a request stuck for longer than
// ServerTimeout, until stop is closed.
func (u *uploader) monitor(tasks map[int]*task, stop <-chan struct{}) {
	d := u.c.cfg.ServerTimeout
	tick := time.NewTicker(max(d/8, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		now := time.Now().UnixNano()
		for _, t := range tasks {
			if since := t.busySince.Load(); since != 0 && time.Duration(now-since) > d {
				u.fail(t.id, fmt.Errorf("server %s: share %d made no progress for %s: %w", t.id, t.sh, d, context.DeadlineExceeded))
			}
		}
	}
}

// errAbandoned marks the tasks of a pass whose encoding failed.
var errAbandoned = errors.New("upload abandoned")

// pass allocates the shares in want, encodes the whole file from src,
// streams those shares and seals them. Servers that fail are dropped and
// their shares replanned for the next pass.
func (u *uploader) pass(open func() (io.Reader, error), want map[int]bool, round int) (cap.CHK, error) {
	tasks, err := u.allocate(want, round > 0)
	abortAll := func() {
		for _, t := range tasks {
			u.abort(t.w)
		}
	}
	if err != nil {
		abortAll()
		return cap.CHK{}, err
	}
	if round > 0 && len(tasks) == 0 {
		return cap.CHK{}, u.happinessErr() // nothing to write (found sealed, or still busy)
	}
	src, err := open()
	if err != nil {
		abortAll()
		return cap.CHK{}, err
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	// Tasks run in the background (Close waits for them): one whose server
	// failed may still be finishing its abort when the pass moves on.
	var commit atomic.Bool // set once the encoder finished: only then seal
	for _, t := range tasks {
		u.c.bg.Add(1)
		go func() { defer u.c.bg.Done(); t.run(u, &commit) }()
	}
	stop := make(chan struct{})
	go u.monitor(tasks, stop)
	closeAll := func() {
		for _, t := range tasks {
			close(t.ch)
		}
		for _, t := range tasks {
			select {
			case <-t.dead:
			case <-t.ctx.Done(): // its server failed (or the upload ended)
			}
		}
		close(stop)
	}
	enc, err := chk.NewEncoder(u.ctx, u.c.params, u.key, u.layout.Size, u.c.cfg.Codec, &sink{tasks})
	if err != nil {
		closeAll() // the tasks abort their shares
		return cap.CHK{}, fmt.Errorf("upload %s: %w", u.si, err)
	}
	// The encoder reads src straight into its segment buffers (ReadFrom).
	_, err = io.Copy(enc, src)
	var out cap.CHK
	if err == nil {
		out, err = enc.Close()
	} else {
		enc.Abort() // the source failed: return the encoder's shared buffers
	}
	if err == nil && u.ctx.Err() == nil {
		commit.Store(true)
	}
	closeAll()
	if err == nil {
		err = u.ctx.Err()
	}
	if err != nil {
		if errors.Is(err, ErrSize) {
			return cap.CHK{}, err
		}
		return cap.CHK{}, fmt.Errorf("upload %s: %w", u.si, err)
	}
	for _, t := range tasks {
		select {
		case <-t.dead:
		default:
			continue // its server failed; the task aborts in the background
		}
		if t.err != nil {
			continue // failed and aborted by the task
		}
		u.mu.Lock()
		ok := !u.pl.Failed(t.id)
		if ok {
			u.markSealed(t.sh, t.id)
		}
		u.mu.Unlock()
		if ok {
			u.c.stats.sealed.Add(1)
		}
	}
	if err := u.happinessErr(); err != nil {
		return cap.CHK{}, err
	}
	return out, nil
}

func keys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// reread returns the file again for a later round: from the spool, or
// else decoded from the shares sealed so far.
func (u *uploader) reread(reopen func() (io.Reader, error), c cap.CHK) (io.Reader, error) {
	if reopen != nil {
		return reopen()
	}
	u.mu.Lock()
	holders := map[int][]Server{}
	for sh, ids := range u.sealedAt {
		for id := range ids {
			holders[sh] = append(holders[sh], u.byID[id])
		}
	}
	u.mu.Unlock()
	f, err := u.c.openKnown(u.ctx, c, holders)
	if err != nil {
		return nil, fmt.Errorf("upload %s: read back to place replaced shares: %w", u.si, err)
	}
	// WriteTo reads ahead over several segments; the pass closes the
	// pipe when it is done with it, which ends the goroutine.
	pr, pw := io.Pipe()
	u.c.bg.Add(1)
	go func() {
		defer u.c.bg.Done()
		_, err := f.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// checkFound reads the extension block of every share the survey found in
// place and checks it against the cap just computed: a share that is not
// this file's (corrupt, or planted) must not count. Its server is told,
// and dropped from the upload so that the share is written elsewhere (a
// server keeps a sealed share; it cannot be written again there). It
// returns how many shares failed.
func (u *uploader) checkFound(c cap.CHK) int {
	type item struct {
		sh int
		id string
	}
	var items []item
	for sh, ids := range u.found {
		for _, id := range ids {
			items = append(items, item{sh, id})
		}
	}
	var bad atomic.Int32
	var wg sync.WaitGroup
	sem := make(chan struct{}, u.c.cfg.Parallel)
	for _, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s := u.byID[it.id]
			var head []byte
			err := u.c.do(u.ctx, s, func(cl *storageclient.Client) error {
				rctx, cancel := u.c.reqCtx(u.ctx)
				defer cancel()
				var err error
				head, err = cl.Read(rctx, u.si, uint32(it.sh), 0, chk.HeaderSize+chk.UEBSize)
				return err
			})
			if err != nil {
				bad.Add(1)
				u.fail(it.id, fmt.Errorf("read extension block of existing share %d: %w", it.sh, err))
				return
			}
			if tagged.Hash(tagged.ChkUEB, head[chk.HeaderSize:]) == c.UEBHash {
				return
			}
			bad.Add(1)
			reason := fmt.Sprintf("share %d: extension block does not match the cap", it.sh)
			u.c.stats.corrupt.Add(1)
			u.c.log.Warn("corrupt share found in place", "index", u.si.String(), "share", it.sh, "node", it.id)
			err = u.c.do(u.ctx, s, func(cl *storageclient.Client) error {
				rctx, cancel := u.c.reqCtx(u.ctx)
				defer cancel()
				return cl.AdviseCorruption(rctx, storage.Ref{Index: u.si, Num: uint32(it.sh)}, false, reason)
			})
			if err != nil {
				u.c.log.Info("advise corruption", "index", u.si.String(), "share", it.sh, "node", it.id, "error", err)
			}
			u.fail(it.id, fmt.Errorf("%s: %w", reason, chk.ErrCorrupt))
		}()
	}
	wg.Wait()
	return int(bad.Load())
}

// renewExisting adds this client's lease to shares it found in place.
func (u *uploader) renewExisting() {
	u.mu.Lock()
	ids := map[string]bool{}
	for _, srvs := range u.pl.Existing {
		for _, id := range srvs {
			ids[id] = true
		}
	}
	u.mu.Unlock()
	var wg sync.WaitGroup
	for id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(u.ctx, u.c.cfg.ServerTimeout)
			defer cancel()
			err := u.c.do(ctx, u.byID[id], func(cl *storageclient.Client) error {
				_, err := cl.RenewLease(ctx, u.si, u.c.leaseSecret(u.si[:], id))
				return err
			})
			if err != nil {
				u.c.log.Info("renew lease", "index", u.si.String(), "node", id, "error", err)
			}
		}()
	}
	wg.Wait()
}
