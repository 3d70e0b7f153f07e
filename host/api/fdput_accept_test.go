//go:build linux

package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/api"
)

// TestFdAcceptSurvivesEMFILE: the node out of descriptors for a moment
// (accept fails with EMFILE, the connection stays queued) keeps taking
// uploads by descriptor once descriptors are free again: the queued
// request is answered, and a later `tarn put` gets its cap. The accept
// loop used to end at the first such error while the socket stayed
// bound, so every later fd put connected, sent its file and waited for
// an answer that never came.
func TestFdAcceptSurvivesEMFILE(t *testing.T) {
	s, _, cl := newServer(t)
	reg := writeFile(t, t.TempDir(), "reg", []byte("hello, descriptors"))
	addr := &net.UnixAddr{Name: "@" + api.FdSocketName(s.URL()), Net: "unixpacket"}

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(openFds(t) + 16)
	if low.Cur >= lim.Cur {
		t.Skipf("descriptor limit %d too low to lower", lim.Cur)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Error(err)
			}
		}
	}
	defer restore()
	// Take every descriptor but one, which the dial takes: the node's
	// accept then finds none.
	var fill []*os.File
	defer func() {
		for _, f := range fill {
			f.Close()
		}
	}()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		fill = append(fill, f)
	}
	fill[len(fill)-1].Close()
	fill = fill[:len(fill)-1]
	first, err := net.DialUnix("unixpacket", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	time.Sleep(300 * time.Millisecond) // the accept loop meets EMFILE
	for _, f := range fill {
		f.Close()
	}
	fill = nil
	restore()

	// The connection queued during the shortage is served.
	if _, _, err := first.WriteMsgUnix([]byte("tarn-fd-put 1\nsekrit\n"), syscall.UnixRights(int(reg.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	first.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64<<10)
	for {
		n, err := first.Read(buf)
		if err != nil {
			t.Fatalf("the request queued while descriptors ran out got no answer: %v", err)
		}
		var a struct {
			Cap, Error string
			Done       bool
		}
		if err := json.Unmarshal(buf[:n], &a); err != nil {
			t.Fatal(err)
		}
		if a.Done {
			if a.Cap == "" {
				t.Fatalf("the queued request: no cap (error %q)", a.Error)
			}
			break
		}
	}
	// And a later upload by descriptor gets its cap.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cl.PutFile(ctx, reg, nil)
	if err != nil {
		t.Fatalf("upload by descriptor after the shortage: %v", err)
	}
	if c == "" {
		t.Fatal("no cap")
	}
}
