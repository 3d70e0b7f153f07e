//go:build !linux

package api

import (
	"context"
	"os"
)

// fdServer is Linux only (abstract sockets, SO_PEERCRED): elsewhere the
// API takes bodies only.
type fdServer struct{}

func (s *Server) startFd() {}

func (f *fdServer) close() {}

func (c *Client) putFd(ctx context.Context, f *os.File, progress func(int64)) (string, error) {
	return "", errNoFdPath
}
