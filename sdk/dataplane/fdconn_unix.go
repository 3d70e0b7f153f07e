//go:build unix

package dataplane

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// NewFdPair makes a socketpair. The host keeps the *FdConn and hands the
// *os.File to the plugin process as an extra file.
func NewFdPair() (*FdConn, *os.File, error) {
	fds, err := socketpair()
	if err != nil {
		return nil, nil, fmt.Errorf("dataplane: socketpair: %w", err)
	}
	mine, err := FdConnFromFile(os.NewFile(uintptr(fds[0]), "tarn-fdchan-host"))
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return mine, os.NewFile(uintptr(fds[1]), "tarn-fdchan-plugin"), nil
}

// FdConnFromFile wraps an inherited socketpair end. The file is consumed.
func FdConnFromFile(f *os.File) (*FdConn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("dataplane: fd channel: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("dataplane: fd channel is a %T, not a unix socket", c)
	}
	return &FdConn{c: uc}, nil
}

// Send passes a duplicate of f's descriptor with the given id. The caller
// keeps ownership of f and may close it once Send returns.
func (c *FdConn) Send(id uint64, f *os.File) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	rights := unix.UnixRights(int(f.Fd()))
	c.mu.Lock()
	defer c.mu.Unlock()
	n, oobn, err := c.c.WriteMsgUnix(b[:], rights, nil)
	if err != nil {
		return fmt.Errorf("dataplane: send fd %d: %w", id, err)
	}
	if n != len(b) || oobn != len(rights) {
		return fmt.Errorf("dataplane: send fd %d: short write", id)
	}
	return nil
}

// recv reads one (id, file) message.
func (c *FdConn) recv() (uint64, *os.File, error) {
	var b [8]byte
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.c.ReadMsgUnix(b[:], oob)
	if err != nil {
		return 0, nil, err
	}
	if n != len(b) {
		return 0, nil, fmt.Errorf("dataplane: short fd message (%d bytes)", n)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return 0, nil, fmt.Errorf("dataplane: fd message without rights: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return 0, nil, fmt.Errorf("dataplane: fd message with %d descriptors: %v", len(fds), err)
	}
	unix.CloseOnExec(fds[0])
	id := binary.BigEndian.Uint64(b[:])
	return id, os.NewFile(uintptr(fds[0]), fmt.Sprintf("tarn-fd-%d", id)), nil
}
