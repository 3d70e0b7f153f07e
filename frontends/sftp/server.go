// Package sftp is the SFTP frontend: an SSH server (golang.org/x/crypto/ssh)
// that lets an account reach its drive with sftp, scp (both its SFTP mode
// and the legacy `scp -t`/`scp -f` protocol), rclone, sshfs and the like.
// It adapts pkg/sftp's request server to the vdrive API, which is the only
// way it touches the grid (vdrive.WithSpool tells an upload's context
// which spool file the grid may read in place). Logins are checked by host/accounts (password
// or public key); each account sees its own root, and a read-only account
// is refused every write with "permission denied".
//
// Files are written through a spool: pkg/sftp hands writes to several
// workers, out of order and with holes, so an open-for-write file is
// built in an unlinked temporary file and uploaded when the client closes
// it; the close is answered only once the file is on the grid and linked.
// The grid reads that file in place: it is the upload's only copy.
// The answers follow OpenSSH's sftp-server on a local disk; docs/sftp.md
// lists every difference and why.
package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	xsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/accounts"
	"github.com/tarnfs/tarn/host/vdrive"
)

// Config is what Start needs.
type Config struct {
	// SFTP is the profile's [[sftp]] table: listen address, host key
	// files, allowed accounts (empty: all), idle timeout, max sessions.
	SFTP conf.SFTP
	// Accounts checks logins.
	Accounts *accounts.Set
	// Drive opens an account's drive (vdrive.New over the node's store
	// with acct.RootCap). It is called once per SSH connection.
	Drive func(acct *accounts.Account) (*vdrive.Drive, error)
	// Space reports the grid's space for statvfs (nil: DefaultSpace).
	Space func(ctx context.Context) (Space, error)
	// TempDir holds spool files of uploads in progress (default
	// os.TempDir()). They are unlinked as soon as they are made.
	TempDir string
	// Logger gets the frontend's log lines (default: none).
	Logger hclog.Logger
	// OnSession, when set, is called for each session channel opened (an
	// sftp subsystem or an scp exec; the node's metrics count them).
	OnSession func()
}

// handshakeTimeout bounds an SSH handshake and login.
const handshakeTimeout = 30 * time.Second

// Server is a running SFTP frontend.
type Server struct {
	cfg      Config
	accts    *accounts.Set
	ssh      *ssh.ServerConfig
	keys     []ssh.PublicKey
	ln       net.Listener
	log      hclog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	sessions atomic.Int64 // open session channels
	// fastServed counts the reads and writes the data fast path answered
	// (fastpath.go).
	fastServed atomic.Int64
	// fastQueued counts the reads the read loop handed to a handle's
	// readQueue (fastpath.go) instead of waiting for the grid.
	fastQueued atomic.Int64
	pending    chan struct{}
	limit      *sizeLimit // the largest file (sizelimit.go)

	mu     sync.Mutex
	conns  map[*ssh.ServerConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Start listens on cfg.SFTP.Listen and serves until Close (or until ctx
// ends). Host keys are read from cfg.SFTP.HostKeys, each generated at the
// first start when missing.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Accounts == nil || cfg.Drive == nil {
		return nil, errors.New("sftp: Accounts and Drive are required")
	}
	if len(cfg.SFTP.HostKeys) == 0 {
		return nil, errors.New("sftp: no host key file")
	}
	if cfg.SFTP.MaxSessions <= 0 {
		cfg.SFTP.MaxSessions = 64
	}
	if cfg.SFTP.IdleTimeout <= 0 {
		cfg.SFTP.IdleTimeout = conf.Duration(15 * time.Minute)
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	if err := os.MkdirAll(cfg.TempDir, 0o700); err != nil {
		return nil, fmt.Errorf("sftp spool folder: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.Named("sftp")
	accts, err := cfg.Accounts.Only(cfg.SFTP.Accounts)
	if err != nil {
		return nil, fmt.Errorf("sftp accounts: %w", err)
	}
	s := &Server{
		cfg: cfg, accts: accts, log: log, conns: map[*ssh.ServerConn]struct{}{},
		pending: make(chan struct{}, cfg.SFTP.MaxSessions+16),
		limit:   &sizeLimit{max: int64(cfg.SFTP.MaxFileSize), space: cfg.Space},
	}
	s.ssh = &ssh.ServerConfig{
		Config:            ssh.Config{Ciphers: serverCiphers},
		PasswordCallback:  s.checkPassword,
		PublicKeyCallback: s.checkKey,
		MaxAuthTries:      6,
		ServerVersion:     "SSH-2.0-tarn",
	}
	for _, path := range cfg.SFTP.HostKeys {
		k, err := LoadHostKey(path)
		if err != nil {
			return nil, fmt.Errorf("sftp: %w", err)
		}
		s.ssh.AddHostKey(k)
		s.keys = append(s.keys, k.PublicKey())
		log.Info("host key", "file", path, "fingerprint", Fingerprint(k.PublicKey()))
	}
	s.ln, err = net.Listen("tcp", cfg.SFTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("sftp listen on %s: %w", cfg.SFTP.Listen, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.serve()
	if ctx != nil {
		go func() {
			select {
			case <-ctx.Done():
				s.Close()
			case <-s.ctx.Done():
			}
		}()
	}
	log.Info("listening", "addr", s.ln.Addr().String(), "accounts", strings.Join(accts.Names(), ","))
	return s, nil
}

// Addr is the address the server listens on (host:port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HostKeys are the server's public host keys.
func (s *Server) HostKeys() []ssh.PublicKey { return append([]ssh.PublicKey(nil), s.keys...) }

// Close stops listening, ends every connection and waits for their
// goroutines. Uploads not yet closed by their clients are dropped.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*ssh.ServerConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.cancel()
	err := s.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				s.log.Error("accept", "error", err)
			}
			return
		}
		select {
		case s.pending <- struct{}{}:
		default:
			s.log.Warn("connection refused: too many connections", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.pending }()
			s.handleConn(c)
		}()
	}
}

// serverCiphers are the ciphers offered, in x/crypto/ssh's order of
// preference less chacha20-poly1305@openssh.com. A client picks the first
// of its own list the server offers, and OpenSSH and PuTTY list
// chacha20-poly1305 first; Go's ChaCha20 has no assembly on amd64 and
// decrypted at ~0.36 GB/s here against ~2.3 GB/s for AES-GCM, which made
// it the largest single cost of an OpenSSH upload. Every client that has
// chacha20-poly1305 also has aes*-ctr (OpenSSH then takes aes128-ctr with
// hmac-sha2-256-etm); pkg/sftp-based clients (rclone) take aes128-gcm.
var serverCiphers = []string{
	ssh.CipherAES128GCM, ssh.CipherAES256GCM,
	ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR,
}

// Permissions extension that carries the logged-in account's name.
const permAccount = "tarn-account"

func (s *Server) checkPassword(md ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	defer cancel()
	a, err := s.accts.CheckPassword(ctx, md.User(), string(pw), md.RemoteAddr().String())
	if err != nil {
		s.log.Info("login refused", "user", md.User(), "method", "password", "remote", md.RemoteAddr().String(), "reason", err)
		return nil, err
	}
	return &ssh.Permissions{Extensions: map[string]string{permAccount: a.Name}}, nil
}

func (s *Server) checkKey(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	a, err := s.accts.CheckPublicKey(md.User(), key)
	if err != nil {
		return nil, err
	}
	return &ssh.Permissions{Extensions: map[string]string{
		permAccount: a.Name, "pubkey-fp": ssh.FingerprintSHA256(key),
	}}, nil
}

// activity tracks a connection's idleness: the time of the last byte read
// on any of its channels, and operations (uploads) that keep it busy
// without traffic.
type activity struct {
	last atomic.Int64 // unix nanos
	busy atomic.Int64
}

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

func (a *activity) begin() func() {
	a.busy.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			a.touch()
			a.busy.Add(-1)
		})
	}
}

func (a *activity) idleFor() time.Duration {
	if a.busy.Load() > 0 {
		return 0
	}
	return time.Since(time.Unix(0, a.last.Load()))
}

func (s *Server) handleConn(raw net.Conn) {
	remote := raw.RemoteAddr().String()
	nc := newBatchConn(raw) // fastconn.go: batched writes, large reads
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.ssh)
	if err != nil {
		nc.Close()
		s.log.Debug("handshake failed", "remote", remote, "error", err)
		return
	}
	nc.SetDeadline(time.Time{})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sc.Close()
		return
	}
	s.conns[sc] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
		sc.Close()
	}()
	go ssh.DiscardRequests(reqs)

	name := sc.Permissions.Extensions[permAccount]
	acct, ok := s.accts.Account(name)
	if !ok {
		s.log.Error("logged-in account vanished", "account", name)
		return
	}
	log := s.log.With("account", acct.Name, "remote", remote)
	log.Info("login", "method", authMethod(sc.Permissions))
	drive, err := s.cfg.Drive(acct)
	if err != nil {
		log.Error("open the account's drive", "error", err)
		for nch := range chans {
			nch.Reject(ssh.ConnectionFailed, "the account's drive cannot be opened; see the server log")
		}
		return
	}
	act := &activity{}
	act.touch()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go s.idleWatch(ctx, sc, act, log)

	var wg sync.WaitGroup
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "only session channels are served")
			continue
		}
		if n := s.sessions.Add(1); n > int64(s.cfg.SFTP.MaxSessions) {
			s.sessions.Add(-1)
			log.Warn("session refused: too many sessions", "max", s.cfg.SFTP.MaxSessions)
			nch.Reject(ssh.ResourceShortage, fmt.Sprintf("too many sessions (at most %d)", s.cfg.SFTP.MaxSessions))
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			s.sessions.Add(-1)
			continue
		}
		if s.cfg.OnSession != nil {
			s.cfg.OnSession()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.sessions.Add(-1)
			sess := &session{s: s, ch: ch, act: act, log: log, acct: acct, drive: drive, ctx: ctx}
			sess.run(chReqs)
		}()
	}
	cancel()
	wg.Wait()
	log.Info("logout")
}

func authMethod(p *ssh.Permissions) string {
	if p.Extensions["pubkey-fp"] != "" {
		return "publickey " + p.Extensions["pubkey-fp"]
	}
	return "password"
}

// idleWatch closes the connection after IdleTimeout without traffic on
// its channels or an upload in progress.
func (s *Server) idleWatch(ctx context.Context, sc *ssh.ServerConn, act *activity, log hclog.Logger) {
	limit := s.cfg.SFTP.IdleTimeout.D()
	tick := min(max(limit/4, 10*time.Millisecond), 10*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if act.idleFor() >= limit {
				log.Info("closing an idle connection", "idle_timeout", limit)
				sc.Close()
				return
			}
		}
	}
}

// session is one session channel: an sftp subsystem or an scp exec.
type session struct {
	s     *Server
	ch    ssh.Channel
	act   *activity
	log   hclog.Logger
	acct  *accounts.Account
	drive *vdrive.Drive
	ctx   context.Context
}

// refusal is what a shell or a command other than scp gets on stderr.
const refusal = "tarn: this server offers SFTP only (sftp, scp, rclone, sshfs); shells and commands are refused\r\n"

func (ss *session) run(reqs <-chan *ssh.Request) {
	defer ss.ch.Close()
	for req := range reqs {
		switch req.Type {
		case "subsystem":
			name := parseString(req.Payload)
			if name != "sftp" {
				req.Reply(false, nil)
				ss.log.Info("subsystem refused", "name", name)
				continue
			}
			req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			ss.serveSFTP()
			return
		case "exec":
			cmd := parseString(req.Payload)
			req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			ss.exec(cmd)
			return
		case "shell":
			req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			ss.refuse("shell")
			return
		case "pty-req", "window-change":
			req.Reply(true, nil)
		default: // env, x11-req, auth-agent-req@openssh.com, signal...
			req.Reply(false, nil)
		}
	}
}

func (ss *session) refuse(what string) {
	ss.log.Info("refused", "request", what)
	ss.ch.Stderr().Write([]byte(refusal))
	ss.exit(1)
}

// exit sends the exit status and closes the channel.
func (ss *session) exit(code uint32) {
	var b [4]byte
	b[0], b[1], b[2], b[3] = byte(code>>24), byte(code>>16), byte(code>>8), byte(code)
	ss.ch.SendRequest("exit-status", false, b[:])
	ss.ch.CloseWrite()
	ss.ch.Close()
}

// parseString reads an SSH string (uint32 length, bytes); "" when short.
func parseString(b []byte) string {
	if len(b) < 4 {
		return ""
	}
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if uint64(n) > uint64(len(b)-4) {
		return ""
	}
	return string(b[4 : 4+n])
}

// chanRW is a channel whose reads mark the connection active; end, when
// set, is called when a read fails (the client's end of input, or the
// connection's).
type chanRW struct {
	ssh.Channel
	act *activity
	end func()
}

func (c chanRW) Read(p []byte) (int, error) {
	n, err := c.Channel.Read(p)
	if n > 0 {
		c.act.touch()
	}
	if err != nil && c.end != nil {
		c.end()
	}
	return n, err
}

func (ss *session) fsys() *fsys {
	return &fsys{
		d: ss.drive, ro: ss.acct.ReadOnly || ss.drive.ReadOnly(), account: ss.acct.Name,
		ctx: ss.ctx, spool: ss.s.cfg.TempDir, space: ss.s.cfg.Space, limit: ss.s.limit, log: ss.log,
		busy: ss.act.begin, uid: uint32(os.Getuid()), gid: uint32(os.Getgid()),
	}
}

func (ss *session) serveSFTP() {
	fs := ss.fsys()
	// WithRSAllocator: each packet is read into a 256 KiB page the session
	// reuses once its answer is sent, instead of a fresh allocation per
	// packet (garbage at the rate data arrives: ~2 CPU ns per byte of an
	// upload went to allocating, zeroing and collecting them). The
	// handlers never keep a packet's bytes past their return (WriteAt
	// copies into the spool, ReadAt into the page), which the reuse needs.
	// Pages in use are bounded by the requests pkg/sftp holds at once
	// (~25: its queues and 8 workers), a few MiB per session.
	// limitsConn (limits.go) lets OpenSSH's clients send and ask for
	// 255 KiB at a time.
	// sendQueue (fastconn.go) hands the channel runs of whole answers;
	// limitsConn answers the reads and writes of open files itself (the
	// data fast path, fastpath.go) and passes the rest to pkg/sftp.
	// The client's end of input ends the session (pkg/sftp then drops
	// the open files): the session's reads are cancelled at once, so
	// that neither pkg/sftp, which waits for its workers and then closes
	// the handles one by one, nor a CLOSE under way waits for a hung grid.
	reads, endReads := context.WithCancel(ss.ctx)
	defer endReads()
	fs.reads = reads
	sq := newSendQueue(chanRW{ss.ch, ss.act, endReads})
	lc := newLimitsConn(sq)
	lc.fast = newFastHandles(&ss.s.fastServed, &ss.s.fastQueued)
	lc.fast.send = lc.send
	lc.ids = &idNames{uid: fs.uid, gid: fs.gid, name: fs.account}
	rs := xsftp.NewRequestServer(lc, fastHandlers(fs, lc.fast),
		xsftp.WithRSMaxTxPacket(maxData), xsftp.WithRSAllocator())
	ss.log.Debug("sftp session")
	// Serve ends at the client's EOF; the channel stays open for the exit
	// status (rs.Close would close it first, and OpenSSH's scp treats a
	// missing exit status as a failure).
	err := rs.Serve()
	if err != nil && !errors.Is(err, io.EOF) {
		ss.log.Debug("sftp session ended", "error", err)
	}
	// Every answer goes out before the exit status and the channel's close.
	sq.Flush()
	sq.q.stop()
	ss.exit(0)
}
