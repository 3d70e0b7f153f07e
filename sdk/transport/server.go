package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/sdk/dataplane"
	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/transport/transportpb"
)

// FrameSize is the most data one fallback Frame carries, well below gRPC's
// 4 MiB message limit. (1 MiB frames moved ~1.7x the bytes of 256 KiB ones
// here.)
const FrameSize = pluginkit.ChunkSize

// unclaimedTimeout is how long a fallback connection waits for the host to
// open its Stream before the plugin closes it.
const unclaimedTimeout = 30 * time.Second

// server is the plugin side of tarn.transport.v1: it answers RPCs by calling
// a Transport, handing sockets over the fd channel when the host asks.
type server struct {
	transportpb.UnimplementedTransportServer
	t      Transport
	fds    *dataplane.FdConn // nil when the host offered none or it failed
	fdsErr error

	mu        sync.Mutex
	next      uint64
	listeners map[uint64]*plListener
	conns     map[uint64]net.Conn  // fallback conns not yet claimed by Stream
	abandoned map[uint64]time.Time // claims the host gave up on, and when
}

func newServer(t Transport, dp pluginkit.DataPlane, dpErr error) *server {
	return &server{t: t, fds: dp.Fds, fdsErr: dpErr,
		listeners: map[uint64]*plListener{}, conns: map[uint64]net.Conn{},
		abandoned: map[uint64]time.Time{}}
}

// pluginIDs start here, so that ids the plugin picks (for listeners, and
// for conns of a host that sends no claim) never meet the host's claims.
const pluginIDs = 1 << 63

func (s *server) id() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return pluginIDs + s.next
}

func (s *server) Info(ctx context.Context, _ *transportpb.InfoRequest) (*transportpb.InfoResponse, error) {
	in, err := s.t.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	r := &transportpb.InfoResponse{Name: in.Name, Version: in.Version, Schemes: in.Schemes,
		Protocol: ProtocolVersion, FdPassing: s.fds != nil}
	if s.fdsErr != nil {
		r.FdError = s.fdsErr.Error()
	}
	return r, nil
}

func (s *server) Configure(ctx context.Context, req *transportpb.ConfigureRequest) (*transportpb.Empty, error) {
	if c, ok := s.t.(pluginkit.Configurer); ok {
		return &transportpb.Empty{}, toStatus(c.Configure(ctx, req.SettingsJson))
	}
	if t := bytes.TrimSpace(req.SettingsJson); len(t) > 0 && !bytes.Equal(t, []byte("{}")) && !bytes.Equal(t, []byte("null")) {
		return nil, status.Error(codes.InvalidArgument, "transport plugin takes no settings")
	}
	return &transportpb.Empty{}, nil
}

// plListener is a listener of the plugin with one goroutine accepting into
// conns, so that an Accept call cut by the host loses no connection: the
// next Accept gets it.
type plListener struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{} // closed by CloseListener
	once  sync.Once
	errc  chan struct{} // closed when the accept loop ends
	err   error
}

func (l *plListener) loop() {
	defer close(l.errc)
	backoff := time.Duration(0)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				l.err = err
				return
			}
			// Out of descriptors, an aborted handshake: wait and go on,
			// as net/http does, until the host closes the listener.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
				continue
			case <-l.done:
				l.err = err
				return
			}
		}
		backoff = 0
		select {
		case l.conns <- c:
		case <-l.done:
			c.Close()
			return
		}
	}
}

func (l *plListener) close() {
	l.once.Do(func() {
		close(l.done)
		l.ln.Close()
	})
}

func (s *server) Listen(ctx context.Context, req *transportpb.ListenRequest) (*transportpb.ListenResponse, error) {
	ln, err := s.t.Listen(ctx, req.Addr)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := ctx.Err(); err != nil {
		// The host gave up: nobody would ever close this listener.
		ln.Close()
		return nil, toStatus(err)
	}
	l := &plListener{ln: ln, conns: make(chan net.Conn), done: make(chan struct{}), errc: make(chan struct{})}
	id := s.id()
	s.mu.Lock()
	s.listeners[id] = l
	s.mu.Unlock()
	go l.loop()
	return &transportpb.ListenResponse{Listener: id, Addr: ln.Addr().String()}, nil
}

func (s *server) listener(id uint64) (*plListener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.listeners[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no listener %d", id)
	}
	return l, nil
}

func (s *server) Accept(ctx context.Context, req *transportpb.AcceptRequest) (*transportpb.ConnResponse, error) {
	l, err := s.listener(req.Listener)
	if err != nil {
		return nil, err
	}
	select {
	case c := <-l.conns:
		return s.handOver(ctx, c, req.FdId, req.Claim)
	case <-l.done:
		return nil, status.Error(codes.FailedPrecondition, "listener closed")
	case <-l.errc:
		return nil, status.Errorf(codes.Unknown, "accept on %s: %v", l.ln.Addr(), l.err)
	case <-ctx.Done():
		return nil, toStatus(ctx.Err())
	}
}

func (s *server) CloseListener(_ context.Context, req *transportpb.CloseListenerRequest) (*transportpb.Empty, error) {
	s.mu.Lock()
	l, ok := s.listeners[req.Listener]
	delete(s.listeners, req.Listener)
	s.mu.Unlock()
	if ok {
		l.close()
	}
	return &transportpb.Empty{}, nil
}

func (s *server) Dial(ctx context.Context, req *transportpb.DialRequest) (*transportpb.ConnResponse, error) {
	c, err := s.t.Dial(ctx, req.Addr)
	if err != nil {
		return nil, toStatus(err)
	}
	return s.handOver(ctx, c, req.FdId, req.Claim)
}

// filer is a connection backed by a file descriptor (*net.TCPConn,
// *net.UnixConn, ...).
type filer interface {
	File() (*os.File, error)
}

// handOver gives c to the host: over the fd channel when the host asked
// and c has a descriptor, otherwise as a fallback conn for Stream, named by
// the host's claim. A claim the host already abandoned is closed instead.
func (s *server) handOver(ctx context.Context, c net.Conn, fdID, claim uint64) (*transportpb.ConnResponse, error) {
	r := &transportpb.ConnResponse{LocalAddr: addrString(c.LocalAddr()), RemoteAddr: addrString(c.RemoteAddr())}
	if fdID != 0 && s.fds != nil {
		if fc, ok := c.(filer); ok {
			f, err := fc.File()
			// The host holds its own descriptor once it is sent; ours
			// can go either way.
			c.Close()
			if err != nil {
				return nil, status.Errorf(codes.Internal, "hand over connection to %s: %v", r.RemoteAddr, err)
			}
			defer f.Close()
			// Under the lock, so that once Abandon has answered the
			// socket was either sent before or is never sent.
			s.mu.Lock()
			_, gone := s.abandoned[claim]
			delete(s.abandoned, claim)
			if !gone {
				err = s.fds.Send(fdID, f)
			}
			s.mu.Unlock()
			if gone {
				return nil, status.Error(codes.Canceled, "the host abandoned this connection")
			}
			if err != nil {
				return nil, status.Errorf(codes.Internal, "hand over connection to %s: %v", r.RemoteAddr, err)
			}
			r.FdId = fdID
			return r, nil
		}
	}
	if err := ctx.Err(); err != nil {
		c.Close()
		return nil, toStatus(err)
	}
	_, r.CloseWrite = c.(closeWriter)
	id := claim
	if id == 0 {
		id = s.id()
	}
	s.mu.Lock()
	if _, gone := s.abandoned[id]; gone {
		delete(s.abandoned, id)
		s.mu.Unlock()
		c.Close()
		return nil, status.Error(codes.Canceled, "the host abandoned this connection")
	}
	if _, dup := s.conns[id]; dup {
		s.mu.Unlock()
		c.Close()
		return nil, status.Errorf(codes.InvalidArgument, "claim %d is already in use", id)
	}
	s.conns[id] = c
	s.mu.Unlock()
	time.AfterFunc(unclaimedTimeout, func() {
		if c := s.claim(id); c != nil {
			c.Close()
		}
	})
	r.Conn = id
	return r, nil
}

// Abandon closes the connection of a claim the host gave up on, or
// remembers the claim so that handOver closes it when it comes.
func (s *server) Abandon(_ context.Context, req *transportpb.AbandonRequest) (*transportpb.Empty, error) {
	s.mu.Lock()
	c, ok := s.conns[req.Claim]
	delete(s.conns, req.Claim)
	if !ok && req.Claim != 0 {
		now := time.Now()
		for id, at := range s.abandoned {
			if now.Sub(at) > unclaimedTimeout {
				delete(s.abandoned, id)
			}
		}
		s.abandoned[req.Claim] = now
	}
	s.mu.Unlock()
	if ok {
		c.Close()
	}
	return &transportpb.Empty{}, nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func (s *server) claim(id uint64) net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conns[id]
	delete(s.conns, id)
	return c
}

// closeWriter is a connection that can half-close.
type closeWriter interface {
	CloseWrite() error
}

// Stream pumps a fallback connection's bytes both ways until the host ends
// its side of the stream or the connection fails.
func (s *server) Stream(st transportpb.Transport_StreamServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	c := s.claim(first.Conn)
	if c == nil {
		return status.Errorf(codes.NotFound, "no connection %d waiting for its stream", first.Conn)
	}
	defer c.Close()

	// Connection to host. Each frame gets its own copy of what was read:
	// a message must not change after Send.
	pumpErr := make(chan error, 1)
	go func() {
		buf := make([]byte, FrameSize)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if serr := st.Send(&transportpb.Frame{Data: bytes.Clone(buf[:n])}); serr != nil {
					pumpErr <- nil // the stream is gone; the other side ends too
					return
				}
			}
			if errors.Is(err, io.EOF) {
				if serr := st.Send(&transportpb.Frame{CloseWrite: true}); serr != nil {
					pumpErr <- nil
					return
				}
				return // keep the stream until the host closes
			}
			if err != nil {
				pumpErr <- fmt.Errorf("read %s: %w", c.RemoteAddr(), err)
				return
			}
		}
	}()

	// Host to connection.
	hostErr := make(chan error, 1)
	go func() {
		f := first
		for {
			if len(f.Data) > 0 {
				if _, err := c.Write(f.Data); err != nil {
					hostErr <- fmt.Errorf("write %s: %w", c.RemoteAddr(), err)
					return
				}
			}
			if f.CloseWrite {
				if cw, ok := c.(closeWriter); ok {
					cw.CloseWrite()
				}
			}
			var err error
			if f, err = st.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil // the host closed the connection
				}
				hostErr <- err
				return
			}
		}
	}()

	select {
	case err = <-hostErr:
	case err = <-pumpErr:
	}
	if err != nil {
		return status.Error(codes.Unknown, err.Error())
	}
	return nil
}

// closeAll closes every listener and unclaimed connection, when the host
// has gone.
func (s *server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, l := range s.listeners {
		l.close()
		delete(s.listeners, id)
	}
	for id, c := range s.conns {
		c.Close()
		delete(s.conns, id)
	}
}
