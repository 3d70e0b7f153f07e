package sftp

import (
	"bytes"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingFile is a grid file that counts its direct reads and streams
// (WriteTo) its bytes slowly, as a grid would.
type countingFile struct {
	data      []byte
	reads     atomic.Int64 // ReadAt calls
	readBytes atomic.Int64
	streamed  atomic.Int64 // bytes WriteTo wrote
}

func (f *countingFile) Size() int64 { return int64(len(f.data)) }

func (f *countingFile) ReadAt(p []byte, off int64) (int, error) {
	f.reads.Add(1)
	n := copy(p, f.data[off:])
	f.readBytes.Add(int64(n))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *countingFile) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for n < int64(len(f.data)) {
		time.Sleep(time.Millisecond) // the grid's decode: clients run ahead
		k, err := w.Write(f.data[n:min(int64(len(f.data)), n+256<<10)])
		n += int64(k)
		f.streamed.Add(int64(k))
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestReadsFarAheadWaitForStream: a client with 64 reads of 255 KiB in
// flight (OpenSSH's sftp, rclone --sftp-chunk-size 255k: ~16 MiB ahead)
// reading a 48 MiB file from 0, handled as the session does (readNow in
// order; reads the stream is fetching to one queue answering in order;
// the rest to the grid), gets every byte right from one pass of the
// stream and reads nothing from the grid directly. Before readReach,
// reads more than readWindow blocks ahead of the stream went to the grid
// (178 of them here, 1.11x the file read; 1.25-1.77x on a real grid).
func TestReadsFarAheadWaitForStream(t *testing.T) {
	const (
		size     = 48 << 20
		chunk    = 255 << 10
		inFlight = 64
	)
	f := &countingFile{data: pseudo(81, size)}
	h := newReadHandle(context.Background(), f, "/big.bin")
	defer h.Close()

	slots := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	var bad atomic.Int64
	check := func(off int64, got []byte) {
		want := f.data[off:min(size, off+chunk)]
		if !bytes.Equal(got, want) {
			bad.Add(1)
		}
	}
	answer := func(off int64) {
		defer wg.Done()
		defer func() { <-slots }()
		p := make([]byte, chunk)
		n, err := h.ReadAt(p, off)
		if err != nil && err != io.EOF {
			t.Errorf("read at %d: %v", off, err)
		}
		check(off, p[:n])
	}
	queue := make(chan int64, inFlight)
	go func() {
		for off := range queue {
			answer(off)
		}
	}()
	for off := int64(0); off < size; off += chunk {
		slots <- struct{}{}
		wg.Add(1)
		st, _ := h.readNow(off, chunk, func(a, b []byte) error {
			check(off, append(append([]byte(nil), a...), b...))
			return nil
		})
		switch st {
		case readReady:
			<-slots
			wg.Done()
		case readStream:
			queue <- off
		default:
			go answer(off)
		}
	}
	wg.Wait()
	close(queue)
	if bad.Load() != 0 {
		t.Fatalf("%d reads got wrong bytes", bad.Load())
	}
	total := float64(f.streamed.Load()+f.readBytes.Load()) / size
	t.Logf("grid reads %d (%d bytes), streamed %d: %.2fx the file", f.reads.Load(), f.readBytes.Load(), f.streamed.Load(), total)
	if f.reads.Load() != 0 || total > 1.01 {
		t.Fatalf("%d direct grid reads, %.2fx the file read: want one pass", f.reads.Load(), total)
	}
}
