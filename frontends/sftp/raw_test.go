package sftp

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// rawClient speaks SFTP v3 packet by packet, so a test sees the exact
// status code of every request (pkg/sftp's client folds codes into
// os errors and retries some requests another way).
type rawClient struct {
	r  io.Reader
	w  io.Writer
	mu sync.Mutex
	id uint32
}

// SFTP v3 packet types.
const (
	pInit     = 1
	pVersion  = 2
	pOpen     = 3
	pClose    = 4
	pRead     = 5
	pWrite    = 6
	pLstat    = 7
	pFstat    = 8
	pSetstat  = 9
	pFsetstat = 10
	pOpendir  = 11
	pReaddir  = 12
	pRemove   = 13
	pMkdir    = 14
	pRmdir    = 15
	pRealpath = 16
	pStat     = 17
	pRename   = 18
	pReadlink = 19
	pSymlink  = 20
	pStatus   = 101
	pHandle   = 102
	pData     = 103
	pName     = 104
	pAttrs    = 105
	pExtended = 200
	pExtReply = 201
)

// Open flags.
const (
	fRead   = 1
	fWrite  = 2
	fAppend = 4
	fCreat  = 8
	fTrunc  = 16
	fExcl   = 32
)

// Attribute flags.
const (
	aSize   = 1
	aUIDGID = 2
	aPerm   = 4
	aTimes  = 8
)

type pkt []byte

func (p pkt) u32(v uint32) pkt { return binary.BigEndian.AppendUint32(p, v) }
func (p pkt) u64(v uint64) pkt { return binary.BigEndian.AppendUint64(p, v) }
func (p pkt) str(s string) pkt { return append(p.u32(uint32(len(s))), s...) }

func newRawClient(r io.Reader, w io.Writer) (*rawClient, error) {
	c := &rawClient{r: r, w: w}
	if err := c.send(pInit, pkt{}.u32(3)); err != nil {
		return nil, err
	}
	typ, _, err := c.recv()
	if err != nil {
		return nil, err
	}
	if typ != pVersion {
		return nil, fmt.Errorf("want version, got packet %d", typ)
	}
	return c, nil
}

func (c *rawClient) send(typ byte, body pkt) error {
	b := pkt{}.u32(uint32(len(body) + 1))
	b = append(b, typ)
	b = append(b, body...)
	_, err := c.w.Write(b)
	return err
}

func (c *rawClient) recv() (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n == 0 || n > 1<<20 {
		return 0, nil, fmt.Errorf("bad packet length %d", n)
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return h[4], body, nil
}

// reply is a response: its type, status code (for a status) and body
// after the id.
type reply struct {
	typ  byte
	code uint32
	msg  string
	body []byte
}

// call sends one request and reads its reply.
func (c *rawClient) call(typ byte, body pkt) (reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.id++
	if err := c.send(typ, pkt{}.u32(c.id).append(body)); err != nil {
		return reply{}, err
	}
	t, b, err := c.recv()
	if err != nil {
		return reply{}, err
	}
	if len(b) < 4 || binary.BigEndian.Uint32(b) != c.id {
		return reply{}, fmt.Errorf("reply with a wrong id")
	}
	r := reply{typ: t, body: b[4:]}
	if t == pStatus && len(r.body) >= 4 {
		r.code = binary.BigEndian.Uint32(r.body)
		if len(r.body) >= 8 {
			n := binary.BigEndian.Uint32(r.body[4:])
			if int(n) <= len(r.body)-8 {
				r.msg = string(r.body[8 : 8+n])
			}
		}
	}
	return r, nil
}

func (p pkt) append(b pkt) pkt { return append(p, b...) }

// handle reads the handle of a handle reply.
func (r reply) handle() string {
	if r.typ != pHandle || len(r.body) < 4 {
		return ""
	}
	n := binary.BigEndian.Uint32(r.body)
	return string(r.body[4 : 4+n])
}

// result is the outcome a case compares: 0 for success (any non-status
// reply or SSH_FX_OK), else the status code.
func (r reply) result() uint32 {
	if r.typ == pStatus {
		return r.code
	}
	return 0
}

func (c *rawClient) open(p string, flags uint32, attrs pkt) (reply, error) {
	if attrs == nil {
		attrs = pkt{}.u32(0)
	}
	return c.call(pOpen, pkt{}.str(p).u32(flags).append(attrs))
}

func (c *rawClient) closeHandle(h string) (reply, error) { return c.call(pClose, pkt{}.str(h)) }

func (c *rawClient) path1(typ byte, p string) (reply, error) { return c.call(typ, pkt{}.str(p)) }

func (c *rawClient) path2(typ byte, a, b string) (reply, error) {
	return c.call(typ, pkt{}.str(a).str(b))
}

func (c *rawClient) ext(name string, body pkt) (reply, error) {
	return c.call(pExtended, pkt{}.str(name).append(body))
}
