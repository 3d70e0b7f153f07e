//go:build !unix

package dataplane

import (
	"errors"
	"testing"
)

// Where there is no data plane, each constructor says so with an error
// wrapping errors.ErrUnsupported, which pluginkit.Start takes as "do not
// offer it".
func TestUnsupportedHere(t *testing.T) {
	if _, err := NewArena("tarn-test", 1<<20); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("NewArena: %v, want ErrUnsupported", err)
	}
	if _, _, err := NewFdPair(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("NewFdPair: %v, want ErrUnsupported", err)
	}
}
