package sftp

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// limits@openssh.com: a server that answers it tells OpenSSH's sftp and
// scp (8.7 and later) how large a read or write may be, and they then
// move 255 KiB per request instead of 32 KiB. pkg/sftp's request server
// accepts packets of that size but neither advertises nor answers the
// extension, so limitsConn, between the SSH channel and the request
// server, adds it to the version packet and answers the requests itself.
// Fewer, larger requests cut the per-request work of an upload (a
// status answer, encrypted and sent, a spool write, a worker hand-off)
// by eight. Every other byte passes through untouched.

const (
	// maxPacket is pkg/sftp's largest packet (its maxMsgLength, the
	// length word excluded).
	maxPacket = 256 << 10
	// maxData is the largest read or write: OpenSSH's own server's
	// (its largest packet less 1 KiB for the headers).
	maxData = maxPacket - 1024

	fxpVersion  = 2
	fxpExtended = 200
	fxpExtReply = 201

	limitsExt = "limits@openssh.com"
	// maxExtended bounds an extended request read here to look at its
	// name; larger ones (long paths) pass through without a look.
	maxExtended = 64 << 10
)

// limitsConn frames the SFTP packets between the channel and pkg/sftp's
// request server (one reader, pkg/sftp's serve loop; writes serialised by
// pkg/sftp's own lock, and by mu against the answers sent from here).
type limitsConn struct {
	rw io.ReadWriteCloser

	// Read side: bytes of the current packet to hand out first, then
	// left more to pass straight from rw.
	head []byte
	left uint32

	// The data fast path (fastpath.go): the open files it serves (nil:
	// none), the buffer a request is read into and the one its answer is
	// built in.
	fast *fastHandles
	in   []byte
	out  []byte

	// ids answers users-groups-by-id@openssh.com (nil: not offered).
	ids *idNames

	// Requests naming a handle that were passed to pkg/sftp and whose
	// answer has not gone out yet. pkg/sftp answers every request it
	// reads with one packet, in the order it read them (its
	// packetManager), so the nth packet it writes answers the nth request
	// handed to it, whatever the ids say: a client may reuse an id, and
	// the version packet carries none. toSftp counts the requests handed
	// on (read loop only); under mu, answers counts the packets pkg/sftp
	// wrote, inflight[done:] holds in order the pending requests that
	// name a handle, and pending per handle how many are pending and how
	// many of those change the file (WRITE, FSETSTAT). The fast path
	// serves a handle only when nothing it must follow is pending there
	// (fastpath.go).
	toSftp   uint64
	answers  uint64
	inflight []passed
	done     int
	pending  map[string]*handleLoad

	mu         sync.Mutex
	boundary   *sync.Cond // signalled when the outgoing stream is between packets
	wleft      uint64     // bytes of the outgoing packet still to be written
	advertised bool       // the version packet carried the extension
	lost       bool       // outgoing framing lost: answer nothing from here
	versioned  bool       // the first outgoing packet has gone
}

func newLimitsConn(rw io.ReadWriteCloser) *limitsConn {
	c := &limitsConn{rw: rw}
	c.boundary = sync.NewCond(&c.mu)
	return c
}

func (c *limitsConn) Close() error { return c.rw.Close() }

// Read hands pkg/sftp the client's packets, less the limits requests it
// answers itself.
func (c *limitsConn) Read(p []byte) (int, error) {
	for {
		if len(c.head) > 0 {
			n := copy(p, c.head)
			c.head = c.head[n:]
			return n, nil
		}
		if c.left > 0 {
			if uint32(len(p)) > c.left {
				p = p[:c.left]
			}
			n, err := c.rw.Read(p)
			c.left -= uint32(n)
			return n, err
		}
		// Between packets: read the next one's length and type.
		var h [5]byte
		if n, err := io.ReadFull(c.rw, h[:4]); err != nil {
			if n == 0 {
				return 0, err
			}
			return 0, io.ErrUnexpectedEOF
		}
		length := binary.BigEndian.Uint32(h[:4])
		if length == 0 {
			c.head = append([]byte(nil), h[:4]...) // pkg/sftp refuses it
			c.toSftp++
			continue
		}
		if _, err := io.ReadFull(c.rw, h[4:5]); err != nil {
			return 0, io.ErrUnexpectedEOF
		}
		if c.fast != nil && (h[4] == fxpRead || h[4] == fxpWrite || h[4] == fxpClose || h[4] == fxpFstat || h[4] == fxpFsetstat) && length <= maxPacket {
			if cap(c.in) < int(4+length) {
				c.in = make([]byte, 4+maxPacket)
			}
			pkt := c.in[:4+length]
			copy(pkt, h[:])
			if _, err := io.ReadFull(c.rw, pkt[5:]); err != nil {
				return 0, io.ErrUnexpectedEOF
			}
			switch h[4] {
			case fxpClose:
				// Reads and writes sent before the close have run; later
				// ones go to pkg/sftp, which has forgotten the handle.
				if handle, ok := closeHandle(pkt[5:]); ok {
					if e, ok := c.fast.get(handle); ok && e.q != nil {
						e.q.closing()
					}
					c.fast.forget(handle)
				}
			case fxpFstat, fxpFsetstat:
				// Later reads and writes of the handle must follow it.
				c.passing(h[4], pkt[5:])
			default:
				served, err := c.serveData(h[4], pkt[5:])
				if err != nil {
					return 0, err
				}
				if served {
					continue
				}
				c.passing(h[4], pkt[5:])
			}
			c.head = pkt
			c.toSftp++
			continue
		}
		if h[4] != fxpExtended || length > maxExtended || !c.answering() {
			c.head = append(c.head[:0], h[:]...)
			c.left = length - 1
			c.toSftp++
			continue
		}
		pkt := make([]byte, 5+length-1)
		copy(pkt, h[:])
		if _, err := io.ReadFull(c.rw, pkt[5:]); err != nil {
			return 0, io.ErrUnexpectedEOF
		}
		id, name, ok := parseExtended(pkt[5:])
		var reply []byte
		switch {
		case ok && name == limitsExt:
			reply = limitsReply(id)
		case ok && name == idsExt && c.ids != nil:
			reply, ok = c.ids.reply(id, pkt[5:])
		default:
			ok = false
		}
		if !ok {
			c.head = pkt
			c.toSftp++
			continue
		}
		if err := c.send(reply); err != nil {
			return 0, err
		}
	}
}

// answering reports whether limits requests are answered here: the
// version packet advertised them and the outgoing framing is known.
func (c *limitsConn) answering() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.advertised && !c.lost
}

// handleLoad counts the requests on one handle pkg/sftp has not answered.
type handleLoad struct{ all, changes int }

// passed is a request handed to pkg/sftp: its number among those (from
// 0), its handle, and whether it changes the file.
type passed struct {
	seq     uint64
	handle  string
	changes bool
}

// passing records a READ, WRITE, FSTAT or FSETSTAT (body after the type
// byte) about to be handed to pkg/sftp as request number toSftp, until
// its answer goes out (answered).
func (c *limitsConn) passing(typ byte, body []byte) {
	_, handle, ok := idHandle(body) // the answer is told by its place, not its id
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost {
		return // answers can no longer be followed: the fast path stops
	}
	if c.pending == nil {
		c.pending = map[string]*handleLoad{}
	}
	p := passed{c.toSftp, handle, typ == fxpWrite || typ == fxpFsetstat}
	c.inflight = append(c.inflight, p)
	l := c.pending[handle]
	if l == nil {
		l = &handleLoad{}
		c.pending[handle] = l
	}
	l.all++
	if p.changes {
		l.changes++
	}
}

// answered counts a packet pkg/sftp writes, the answer to its next
// request, and ends what passing recorded for the requests answered
// (mu held).
func (c *limitsConn) answered() {
	c.answers++
	for c.done < len(c.inflight) && c.inflight[c.done].seq < c.answers {
		p := c.inflight[c.done]
		c.inflight[c.done] = passed{}
		c.done++
		if l := c.pending[p.handle]; l != nil {
			l.all--
			if p.changes {
				l.changes--
			}
			if l.all <= 0 {
				delete(c.pending, p.handle)
			}
		}
	}
	switch {
	case c.done == len(c.inflight):
		c.inflight, c.done = c.inflight[:0], 0
	case c.done >= 64 && 2*c.done >= len(c.inflight):
		n := copy(c.inflight, c.inflight[c.done:])
		clear(c.inflight[n:])
		c.inflight, c.done = c.inflight[:n], 0
	}
}

// mustFollow reports whether a request of type typ on handle must wait
// for requests pkg/sftp has not answered: a read for changes to the
// file, a write for anything (a read or stat sent before it must not see
// it, a write before it must not land after it). Such a request goes to
// pkg/sftp too. After the outgoing framing is lost nothing is known: all do.
func (c *limitsConn) mustFollow(typ byte, handle string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost {
		return true
	}
	l := c.pending[handle]
	if l == nil {
		return false
	}
	if typ == fxpRead {
		return l.changes > 0
	}
	return l.all > 0
}

// parseExtended reads an extended request's id and name.
func parseExtended(b []byte) (id uint32, name string, ok bool) {
	if len(b) < 8 {
		return 0, "", false
	}
	id = binary.BigEndian.Uint32(b)
	n := binary.BigEndian.Uint32(b[4:])
	if uint64(n) > uint64(len(b)-8) {
		return 0, "", false
	}
	return id, string(b[8 : 8+n]), true
}

// limitsReply is the answer to a limits request: the largest packet,
// read and write; open handles 0, no limit (pkg/sftp keeps none).
func limitsReply(id uint32) []byte {
	b := make([]byte, 0, 4+1+4+4*8)
	b = binary.BigEndian.AppendUint32(b, 1+4+4*8)
	b = append(b, fxpExtReply)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint64(b, maxPacket)
	b = binary.BigEndian.AppendUint64(b, maxData)
	b = binary.BigEndian.AppendUint64(b, maxData)
	b = binary.BigEndian.AppendUint64(b, 0)
	return b
}

// send writes a whole packet between two of pkg/sftp's.
func (c *limitsConn) send(pkt []byte) error { return c.send3(pkt, nil, nil) }

// pieceWriter writes a packet given in pieces as one write (sendQueue).
type pieceWriter interface {
	write3(a, b, c []byte) (int, error)
}

// send3 writes the packet a+b+c, whole, between two of pkg/sftp's.
func (c *limitsConn) send3(a, b, d []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.wleft > 0 && !c.lost {
		c.boundary.Wait()
	}
	if c.lost {
		return fmt.Errorf("sftp: answer %s: outgoing packets out of step", limitsExt)
	}
	var err error
	switch pw, ok := c.rw.(pieceWriter); {
	case ok:
		_, err = pw.write3(a, b, d)
	case len(b)+len(d) == 0:
		_, err = c.rw.Write(a)
	default:
		_, err = c.rw.Write(append(append(append([]byte(nil), a...), b...), d...))
	}
	if err != nil {
		c.lost = true // a part may have gone
		c.boundary.Broadcast()
	}
	return err
}

// Write passes pkg/sftp's packets on, keeping track of where each ends,
// and adds the extension to the version packet.
func (c *limitsConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := b
	if !c.versioned {
		c.versioned = true
		var more []string
		if c.ids != nil {
			more = append(more, idsExt)
		}
		if v, ok := withLimits(b, more...); ok {
			out, c.advertised = v, true
		}
	}
	c.track(b)
	if _, err := c.rw.Write(out); err != nil {
		// pkg/sftp gives the packet up (a header's payload never
		// follows): the framing is lost, and the read loop must not wait
		// in send for a boundary that never comes.
		c.lost = true
		c.boundary.Broadcast()
		return 0, err
	}
	if c.wleft == 0 || c.lost {
		c.boundary.Broadcast()
	}
	return len(b), nil
}

// track follows the outgoing packets' lengths through b.
func (c *limitsConn) track(b []byte) {
	for len(b) > 0 && !c.lost {
		if c.wleft == 0 {
			if len(b) < 4 {
				// pkg/sftp writes a packet's header (length, type, id)
				// in one piece; anything else and the framing is lost.
				c.lost = true
				c.inflight, c.done, c.pending = nil, 0, nil // nothing is known to end
				return
			}
			c.wleft = 4 + uint64(binary.BigEndian.Uint32(b))
			c.answered()
		}
		k := min(c.wleft, uint64(len(b)))
		c.wleft -= k
		b = b[k:]
	}
}

// withLimits is b with limits@openssh.com, and the extensions in more,
// added to its extensions (each at version "1") when b is exactly one
// whole version packet (what pkg/sftp writes first).
func withLimits(b []byte, more ...string) ([]byte, bool) {
	if len(b) < 9 || b[4] != fxpVersion || uint64(binary.BigEndian.Uint32(b)) != uint64(len(b)-4) {
		return nil, false
	}
	v := append([]byte(nil), b...)
	for _, ext := range append([]string{limitsExt}, more...) {
		v = binary.BigEndian.AppendUint32(v, uint32(len(ext)))
		v = append(v, ext...)
		v = binary.BigEndian.AppendUint32(v, 1)
		v = append(v, '1')
	}
	binary.BigEndian.PutUint32(v, uint32(len(v)-4))
	return v, true
}
