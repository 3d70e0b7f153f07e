// Package rpcerr carries a plugin contract's sentinel errors across the
// gRPC boundary: the plugin side turns an error into a status with the
// sentinel's code and name, the host side rebuilds an error with the
// plugin's text that unwraps to the same sentinel. The storage and
// transport contracts share it; each gives its own table and detail
// message.
package rpcerr

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// Sentinel is one sentinel error, its gRPC code and the name carried in
// the status detail. The detail decides on the way back; the code alone is
// a fallback for a plugin that sends none.
type Sentinel struct {
	Err  error
	Code codes.Code
	Name string
}

// Table is a contract's sentinels and how its status detail is made and
// read.
type Table struct {
	Sentinels []Sentinel
	// Detail makes the status detail naming a sentinel.
	Detail func(name string) protoadapt.MessageV1
	// Name reads a sentinel's name from a status detail, if d is one of
	// this contract's.
	Name func(d any) (string, bool)
	// Codes maps further codes to errors on the way back (e.g. Unavailable
	// to "plugin gone"), before the sentinels' codes are tried.
	Codes map[codes.Code]func(msg string) error
	// Prefix starts the text of an error that matched no sentinel.
	Prefix string
}

// ToStatus turns a plugin's error into a status error that keeps the
// message and names the sentinel it wraps, if any.
func (t *Table) ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	for _, s := range t.Sentinels {
		if errors.Is(err, s.Err) {
			st := status.New(s.Code, err.Error())
			if d, derr := st.WithDetails(t.Detail(s.Name)); derr == nil {
				st = d
			}
			return st.Err()
		}
	}
	return status.Error(codes.Unknown, err.Error())
}

// Remote is an error that came back over RPC: its text is the plugin's,
// and it unwraps to the sentinel it stood for.
type Remote struct {
	Msg string
	Err error
}

func (e *Remote) Error() string { return e.Msg }
func (e *Remote) Unwrap() error { return e.Err }

// FromStatus rebuilds the sentinel of a status error made by ToStatus.
// Errors that are not statuses pass through.
func (t *Table) FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if name, ok := t.Name(d); ok {
			for _, s := range t.Sentinels {
				if s.Name == name {
					return &Remote{st.Message(), s.Err}
				}
			}
		}
	}
	switch st.Code() {
	case codes.Canceled:
		return &Remote{st.Message(), context.Canceled}
	case codes.DeadlineExceeded:
		return &Remote{st.Message(), context.DeadlineExceeded}
	}
	if f := t.Codes[st.Code()]; f != nil {
		return f(st.Message())
	}
	for _, s := range t.Sentinels {
		if s.Code == st.Code() {
			return &Remote{st.Message(), s.Err}
		}
	}
	return &Remote{t.Prefix + st.Message(), err}
}
