//go:build unix

package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as a plugin process: with envChild set it maps
// the arena it inherited as fd 3, reverses the region named in the
// environment in place, and hands back over the fd channel (fd 4) the read
// end of a pipe carrying childGreeting.
const (
	envChild      = "TARN_DATAPLANE_TEST_CHILD"
	childGreeting = "hello from the plugin side"
	childFdID     = 42
)

func TestMain(m *testing.M) {
	if v := os.Getenv(envChild); v != "" {
		if err := child(v); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func child(region string) error {
	var off, n int
	if _, err := fmt.Sscanf(region, "%d+%d", &off, &n); err != nil {
		return fmt.Errorf("region %q: %w", region, err)
	}
	a, err := OpenArena(os.NewFile(3, "arena"))
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := a.Slice(off, n)
	if err != nil {
		return err
	}
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	c, err := FdConnFromFile(os.NewFile(4, "fdchan"))
	if err != nil {
		return err
	}
	defer c.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	if _, err := w.WriteString(childGreeting); err != nil {
		return err
	}
	w.Close()
	defer r.Close()
	return c.Send(childFdID, r)
}

// arenaMakers are the two ways an arena's file is made on Unix: memfd on
// Linux (else the temp file again, as macOS and the BSDs do), and the
// unlinked temp file, tested here on every Unix.
func arenaMakers(t *testing.T) []struct {
	name string
	make func(size int) (*Arena, error)
} {
	dir := t.TempDir()
	return []struct {
		name string
		make func(size int) (*Arena, error)
	}{
		{"NewArena", func(size int) (*Arena, error) { return NewArena("tarn-test", size) }},
		{"temp file", func(size int) (*Arena, error) {
			f, err := newTempArenaFile(dir, "tarn-test/codec", size)
			if err != nil {
				return nil, err
			}
			return mapArena(f, size)
		}},
	}
}

// A real second process maps the arena, changes bytes the host then sees,
// and passes a descriptor back that the host's Mailbox delivers by id.
func TestArenaAndFdChannelWithChildProcess(t *testing.T) {
	for _, tc := range arenaMakers(t) {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.make(1 << 20)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			rg, err := a.Alloc(10000)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, len(rg.Bytes))
			for i := range rg.Bytes {
				rg.Bytes[i] = byte(i * 7)
				want[len(want)-1-i] = byte(i * 7)
			}
			conn, end, err := NewFdPair()
			if err != nil {
				t.Fatal(err)
			}
			mb := NewMailbox(conn)
			t.Cleanup(func() { mb.Close() })

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d+%d", envChild, rg.Off, len(rg.Bytes)))
			cmd.ExtraFiles = []*os.File{a.File(), end}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			end.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-done
			})

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			f, err := mb.Take(ctx, childFdID)
			if err != nil {
				t.Fatalf("take fd %d: %v", childFdID, err)
			}
			got, err := io.ReadAll(f)
			f.Close()
			if err != nil || string(got) != childGreeting {
				t.Fatalf("handed pipe reads %q, %v; want %q", got, err, childGreeting)
			}
			select {
			case err := <-done:
				done <- err
				if err != nil {
					t.Fatalf("child: %v", err)
				}
			case <-ctx.Done():
				t.Fatal("child did not exit")
			}
			if !bytes.Equal(rg.Bytes, want) {
				t.Fatalf("the child's change to the arena is not seen by the host")
			}
			a.Free(rg)
		})
	}
}

// The temp-file arena leaves nothing in its directory, is filled out to its
// size (no sparse file that could fault on a full disk), and a second
// mapping of the same file shares its bytes.
func TestTempArenaFile(t *testing.T) {
	dir := t.TempDir()
	const size = 3 * pageSize
	f, err := newTempArenaFile(dir, "tarn-storage-../../x", size)
	if err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("temp dir holds %v (%v), want nothing: the arena file must be unlinked", ents, err)
	}
	st, err := f.Stat()
	if err != nil || st.Size() != size {
		t.Fatalf("arena file: %v, %v; want %d bytes", st, err, size)
	}
	if blocks, ok := allocatedBytes(st); ok && blocks < size {
		t.Errorf("arena file has %d bytes allocated of %d: it is sparse", blocks, size)
	}
	dup, err := dupFile(f)
	if err != nil {
		t.Fatal(err)
	}
	a, err := mapArena(f, size)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenArena(dup)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	copy(a.mem[pageSize:], "shared")
	if got, _ := b.Slice(pageSize, 6); string(got) != "shared" {
		t.Fatalf("second mapping reads %q, want %q", got, "shared")
	}
}

// A directory the file cannot be made in is one error line, not a panic.
func TestTempArenaFileErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, dir string }{
		{"missing directory", filepath.Join(t.TempDir(), "no", "such")},
		{"directory is a file", file},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := newTempArenaFile(tc.dir, "tarn-codec-rs", pageSize)
			if err == nil {
				f.Close()
				t.Fatalf("arena file in %s: no error", tc.dir)
			}
			if !strings.HasPrefix(err.Error(), "dataplane: arena file: ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line starting \"dataplane: arena file: \"", err)
			}
		})
	}
}

func TestTempPattern(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "tarn-codec-reedsolomon", "tarn-codec-reedsolomon-*"},
		{"separators", "tarn-storage-a/b\\c", "tarn-storage-a_b_c-*"},
		{"dots kept", "tarn-x-v1.2", "tarn-x-v1.2-*"},
		{"long", string(bytes.Repeat([]byte("a"), 100)), string(bytes.Repeat([]byte("a"), 64)) + "-*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tempPattern(tc.in); got != tc.want {
				t.Fatalf("tempPattern(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestOpenArenaRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		size int64
	}{{"empty", 0}, {"not page sized", pageSize + 1}} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(dir, tc.name))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(tc.size); err != nil {
				t.Fatal(err)
			}
			if a, err := OpenArena(f); err == nil {
				a.Close()
				t.Fatalf("OpenArena of a %d-byte file: no error", tc.size)
			}
			f.Close()
		})
	}
}

// The free list hands out page-rounded regions, reuses and coalesces freed
// ones, and refuses what does not fit.
func TestArenaAllocFree(t *testing.T) {
	a, err := NewArena("tarn-test", 4*pageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	r1, err := a.Alloc(1)
	if err != nil || r1.Off != 0 || len(r1.Bytes) != 1 {
		t.Fatalf("alloc 1: %+v, %v", r1.Off, err)
	}
	r2, err := a.Alloc(2 * pageSize)
	if err != nil || r2.Off != pageSize {
		t.Fatalf("alloc 2 pages: off %d, %v; want %d", r2.Off, err, pageSize)
	}
	if _, err := a.Alloc(2 * pageSize); !errors.Is(err, ErrArenaFull) {
		t.Fatalf("alloc past the end: %v, want ErrArenaFull", err)
	}
	if off, ok := a.Offset(r2.Bytes[10:20]); !ok || off != pageSize+10 {
		t.Fatalf("Offset inside: %d, %v", off, ok)
	}
	if _, ok := a.Offset(make([]byte, 10)); ok {
		t.Fatal("Offset of a buffer outside the arena reports inside")
	}
	if _, err := a.Slice(3*pageSize, pageSize+1); err == nil {
		t.Fatal("Slice past the end: no error")
	}
	a.Free(r1)
	a.Free(r2)
	r3, err := a.Alloc(4 * pageSize)
	if err != nil || r3.Off != 0 {
		t.Fatalf("alloc of the whole arena after frees: off %d, %v (free list not coalesced)", r3.Off, err)
	}
	a.Free(r3)
}

// allocatedBytes is what the file system holds for st (st_blocks).
func allocatedBytes(st os.FileInfo) (int64, bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int64(sys.Blocks) * 512, true
}

func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
