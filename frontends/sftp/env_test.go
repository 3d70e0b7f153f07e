package sftp

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	xsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/accounts"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
)

// Test accounts: alice (password and key, writable), bob (read-only
// flag over a writable root), carol (key only).
const (
	alicePW = "correct horse battery staple"
	bobPW   = "bob's password"
)

// env is a test grid, a drive per account and an SFTP server over them.
type env struct {
	t       testing.TB
	grid    *testgrid.Grid
	store   vdrive.Store
	counts  *countingStore    // store, counting directory reads
	roots   map[string]string // account -> root cap
	srv     *Server
	key     ed25519.PrivateKey // alice's and carol's client key
	signer  ssh.Signer
	spool   string
	logBuf  *logBuffer
	hostKey string
}

type envOptions struct {
	idle        time.Duration
	maxSessions int
	// dirCache is the drives' vdrive.WithDirCache (the node uses 1 s);
	// 0: none, every look-up reads the directory.
	dirCache time.Duration
	// writeBehind, when set, opens the drives over a vdrive write-behind
	// with this delay, WithWriteBehind, as the node does.
	writeBehind time.Duration
	// behind opens the drives over a write-behind even with writeBehind
	// 0 (links made before answering), as the node does with
	// link_write_behind "0s".
	behind bool
	// space is what the node reports (nil: 10 GiB, 4 GiB free);
	// maxFileSize the profile's sftp.max_file_size.
	space       *Space
	maxFileSize conf.Size
	// serverTimeout is the grid client's server_timeout (0: 10 s).
	serverTimeout time.Duration
}

var hashCache = map[string]string{}

func hashPW(t testing.TB, pw string) string {
	if h, ok := hashCache[pw]; ok {
		return h
	}
	h, err := accounts.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	hashCache[pw] = h
	return h
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	g := testgrid.New(t, 5, &testgrid.Options{Server: func(_ int, cfg *storageserver.Config) {
		cfg.ValidateSlotWrite = mutable.ValidateSlotWrite
	}})
	gridTemp := t.TempDir()
	c, err := grid.New(grid.Config{
		Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret,
		Codec: codecreedsolomon.New(), Servers: g.Source(), K: 3, H: 4, N: 5,
		Convergence: []byte("sftp test convergence"),
		TempDir:     gridTemp, ServerTimeout: cmp.Or(o.serverTimeout, 10*time.Second),
		Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e := &env{t: t, grid: g, counts: &countingStore{Store: vdrive.GridStore(c), gridTemp: gridTemp}, roots: map[string]string{}, logBuf: &logBuffer{}}
	e.store = e.counts
	var driveOpts []vdrive.Option
	if o.writeBehind > 0 || o.behind {
		b, err := vdrive.OpenBehind(e.counts, vdrive.BehindConfig{Dir: t.TempDir(), Delay: o.writeBehind})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() }) // before the grid client's Close
		e.store = b
		driveOpts = append(driveOpts, vdrive.WithWriteBehind())
	}
	if o.dirCache > 0 {
		driveOpts = append(driveOpts, vdrive.WithDirCache(o.dirCache))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	var list []conf.Account
	_, e.key, _ = ed25519.GenerateKey(rand.Reader)
	e.signer, _ = ssh.NewSignerFromKey(e.key)
	authLine := string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(e.signer.PublicKey())))
	for _, a := range []conf.Account{
		{Name: "alice", PasswordHash: hashPW(t, alicePW), AuthorizedKeys: []string{authLine}},
		{Name: "bob", PasswordHash: hashPW(t, bobPW), ReadOnly: true},
		{Name: "carol", AuthorizedKeys: []string{authLine}},
	} {
		root, err := vdrive.NewRoot(ctx, e.store)
		if err != nil {
			t.Fatal(err)
		}
		e.roots[a.Name] = root.String()
		a.RootCapFile = filepath.Join(dir, a.Name+".cap")
		if err := os.WriteFile(a.RootCapFile, []byte(root.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		list = append(list, a)
	}
	set, err := accounts.New(list)
	if err != nil {
		t.Fatal(err)
	}
	if o.idle == 0 {
		o.idle = time.Minute
	}
	if o.maxSessions == 0 {
		o.maxSessions = 16
	}
	e.spool = filepath.Join(dir, "spool")
	e.hostKey = filepath.Join(dir, "ssh_host_ed25519_key")
	space := Space{Total: 10 << 30, Free: 4 << 30}
	if o.space != nil {
		space = *o.space
	}
	srv, err := Start(context.Background(), Config{
		SFTP: conf.SFTP{Enabled: true, Listen: "127.0.0.1:0", HostKeys: []string{e.hostKey},
			IdleTimeout: conf.Duration(o.idle), MaxSessions: o.maxSessions, MaxFileSize: o.maxFileSize},
		Accounts: set,
		Drive: func(a *accounts.Account) (*vdrive.Drive, error) {
			return vdrive.New(e.store, a.RootCap, driveOpts...)
		},
		Space:   func(context.Context) (Space, error) { return space, nil },
		TempDir: e.spool,
		Logger:  hclog.New(&hclog.LoggerOptions{Output: e.logBuf, Level: hclog.Debug}),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", e.logBuf.String())
		}
	})
	return e
}

// countingStore counts the directory (slot) reads and changes the drives
// make, and the file uploads: how many read their source in place (an
// io.ReaderAt and io.Seeker of known size, which host/grid does not
// spool), and the most files seen in the grid client's TempDir (its
// spool) while an upload ran.
type countingStore struct {
	vdrive.Store
	reads, modifies  atomic.Int64
	uploads, inPlace atomic.Int64
	opens            atomic.Int64     // immutable files opened: file and directory chunk reads
	onUpload         func(size int64) // if set (before any upload), called with each upload's size
	gridTemp         string
	gridSpools       atomic.Int64
}

func (c *countingStore) Modify(ctx context.Context, k cap.MutableWrite, fn func([]byte) ([]byte, error)) error {
	c.modifies.Add(1)
	return c.Store.Modify(ctx, k, fn)
}

func (c *countingStore) Upload(ctx context.Context, r io.Reader, size int64, progress func(int64)) (cap.Cap, error) {
	c.uploads.Add(1)
	if c.onUpload != nil {
		c.onUpload(size)
	}
	_, at := r.(io.ReaderAt)
	_, sk := r.(io.Seeker)
	if at && sk && size >= 0 {
		c.inPlace.Add(1)
	}
	sample := func(int64) {
		if ents, err := os.ReadDir(c.gridTemp); err == nil && int64(len(ents)) > c.gridSpools.Load() {
			c.gridSpools.Store(int64(len(ents)))
		}
	}
	wrapped := sample
	if progress != nil {
		wrapped = func(n int64) { sample(n); progress(n) }
	}
	return c.Store.Upload(ctx, r, size, wrapped)
}

func (c *countingStore) Open(ctx context.Context, k cap.Cap) (vdrive.File, error) {
	c.opens.Add(1)
	return c.Store.Open(ctx, k)
}

func (c *countingStore) ReadMutable(ctx context.Context, k cap.MutableRead) ([]byte, error) {
	c.reads.Add(1)
	return c.Store.ReadMutable(ctx, k)
}

// drive opens an account's root directly (to check what SFTP did).
func (e *env) drive(account string) *vdrive.Drive {
	d, err := vdrive.New(e.store, e.roots[account])
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// dial logs in over SSH with a password (or the test key when pw is "").
func (e *env) dial(user, pw string) (*ssh.Client, error) {
	auth := []ssh.AuthMethod{ssh.Password(pw)}
	if pw == "" {
		auth = []ssh.AuthMethod{ssh.PublicKeys(e.signer)}
	}
	return ssh.Dial("tcp", e.srv.Addr(), &ssh.ClientConfig{
		User: user, Auth: auth, HostKeyCallback: ssh.FixedHostKey(e.srv.HostKeys()[0]),
		Timeout: 10 * time.Second,
	})
}

// client is a pkg/sftp client logged in as user.
func (e *env) client(user, pw string) *xsftp.Client {
	e.t.Helper()
	conn, err := e.dial(user, pw)
	if err != nil {
		e.t.Fatalf("ssh login as %s: %v", user, err)
	}
	c, err := xsftp.NewClient(conn, xsftp.UseConcurrentWrites(true), xsftp.MaxConcurrentRequestsPerFile(64))
	if err != nil {
		conn.Close()
		e.t.Fatalf("sftp session as %s: %v", user, err)
	}
	e.t.Cleanup(func() { c.Close(); conn.Close() })
	return c
}

func (e *env) put(d *vdrive.Drive, p string, data []byte) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := d.Create(ctx, p)
	if err != nil {
		e.t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) get(d *vdrive.Drive, p string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := d.Open(ctx, p)
	if err != nil {
		return nil, err
	}
	b := make([]byte, f.Size())
	if n, err := f.ReadAt(b, 0); n != len(b) {
		return nil, err
	}
	return b, nil
}

// pseudo is reproducible data.
func pseudo(seed byte, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// codeOf is the SFTP status code behind a pkg/sftp client error.
func codeOf(err error) uint32 {
	var se *xsftp.StatusError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &se):
		return se.Code
	case errors.Is(err, fs.ErrNotExist):
		return fxNoSuchFile
	case errors.Is(err, fs.ErrPermission):
		return fxPermissionDenied
	case errors.Is(err, io.EOF):
		return fxEOF
	}
	return 999
}

// logBuffer is a log sink safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
