package filelock

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Two opens of one file: the second cannot take the lock while the first
// holds it, takes it once the first is closed, and Lock waits for it.
func TestLockExcludesOtherOpens(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	open := func() *os.File {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	a, b := open(), open()
	if err := TryLock(a); err != nil {
		t.Fatalf("first TryLock: %v", err)
	}
	if err := TryLock(b); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("second TryLock while held: %v, want ErrWouldBlock", err)
	}
	got := make(chan error, 1)
	go func() { got <- Lock(b) }()
	select {
	case err := <-got:
		t.Fatalf("Lock returned %v while the lock was held", err)
	case <-time.After(100 * time.Millisecond):
	}
	a.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Lock after the holder closed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Lock still waits after the holder closed its file")
	}
	if err := TryLock(open()); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("TryLock while Lock's holder has it: %v, want ErrWouldBlock", err)
	}
}
