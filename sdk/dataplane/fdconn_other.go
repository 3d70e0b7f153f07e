//go:build !unix

package dataplane

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// errNoFdChan says why there is no fd channel: SCM_RIGHTS exists only on
// unix sockets of Unix systems.
var errNoFdChan = fmt.Errorf("dataplane: no descriptor passing on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// NewFdPair fails: this system cannot pass descriptors between processes.
func NewFdPair() (*FdConn, *os.File, error) { return nil, nil, errNoFdChan }

// FdConnFromFile fails: this system cannot pass descriptors between
// processes. The file is consumed.
func FdConnFromFile(f *os.File) (*FdConn, error) {
	f.Close()
	return nil, errNoFdChan
}

// Send fails: there is no FdConn on this system.
func (c *FdConn) Send(id uint64, f *os.File) error { return errNoFdChan }

func (c *FdConn) recv() (uint64, *os.File, error) { return 0, nil, errNoFdChan }
