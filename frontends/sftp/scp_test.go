package sftp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// scpSession runs "scp ARGS" as an exec request.
func scpSession(t *testing.T, e *env, user, pw, cmd string) (*ssh.Session, io.WriteCloser, *bufio.Reader, *bytes.Buffer) {
	conn, err := e.dial(user, pw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s, err := conn.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	out, _ := s.StdoutPipe()
	var stderr bytes.Buffer
	s.Stderr = &stderr
	if err := s.Start(cmd); err != nil {
		t.Fatal(err)
	}
	return s, in, bufio.NewReader(out), &stderr
}

func expectAck(t *testing.T, r *bufio.Reader) {
	t.Helper()
	b, err := r.ReadByte()
	if err != nil || b != 0 {
		rest, _ := r.ReadString('\n')
		t.Fatalf("want ack, got %d %q (%v)", b, rest, err)
	}
}

// TestSCPSinkAbort: a legacy upload cut off mid-file links nothing.
func TestSCPSinkAbort(t *testing.T) {
	e := newEnv(t, envOptions{})
	s, in, out, _ := scpSession(t, e, "alice", alicePW, "scp -t /cut.bin")
	expectAck(t, out)
	io.WriteString(in, "C0644 100000 cut.bin\n")
	expectAck(t, out)
	in.Write(pseudo(1, 50000))
	in.Close()
	s.Wait()
	time.Sleep(100 * time.Millisecond)
	if _, err := e.drive("alice").Stat(ctxT(t), "/cut.bin"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat after a cut upload: %v", err)
	}
}

// TestSCPProtocol: files into a folder, a refused name, a directory tree,
// a read-only refusal, and a download with times.
func TestSCPProtocol(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.drive("alice")
	if err := d.Mkdir(ctxT(t), "/in"); err != nil {
		t.Fatal(err)
	}
	s, in, out, _ := scpSession(t, e, "alice", alicePW, "scp -r -p -d -t -- '/in'")
	expectAck(t, out)
	for _, l := range []string{"T1600000000 0 1600000000 0\n", "C0600 5 a.txt\n"} {
		io.WriteString(in, l)
		expectAck(t, out)
	}
	io.WriteString(in, "hello\x00")
	expectAck(t, out)
	for _, l := range []string{"D0755 0 sub\n", "C0644 0 empty\n"} {
		io.WriteString(in, l)
		expectAck(t, out)
	}
	io.WriteString(in, "\x00")
	expectAck(t, out)
	io.WriteString(in, "E\n")
	expectAck(t, out)
	// A bad name is a fatal protocol error.
	io.WriteString(in, "C0644 1 ../evil\n")
	if b, _ := out.ReadByte(); b != 2 {
		t.Fatalf("bad name answered %d, want 2 (fatal)", b)
	}
	in.Close()
	if err := s.Wait(); err == nil {
		t.Fatal("scp with a fatal error exited 0")
	}
	if got, _ := e.get(d, "/in/a.txt"); string(got) != "hello" {
		t.Fatalf("a.txt: %q", got)
	}
	st, err := d.Stat(ctxT(t), "/in/a.txt")
	if err != nil || st.Mode() != 0o600 || st.ModTime().Unix() != 1600000000 {
		t.Fatalf("a.txt stat: %v %v %v", st.Mode(), st.ModTime(), err)
	}
	if _, err := d.Stat(ctxT(t), "/in/sub/empty"); err != nil {
		t.Fatalf("sub/empty: %v", err)
	}

	// Read-only account: refused before anything is read.
	s, in, out, _ = scpSession(t, e, "bob", bobPW, "scp -t /x")
	if b, _ := out.ReadByte(); b != 2 {
		t.Fatalf("read-only sink answered %d, want 2", b)
	}
	msg, _ := out.ReadString('\n')
	if !strings.Contains(msg, "permission denied") {
		t.Fatalf("read-only message %q", msg)
	}
	in.Close()
	if err := s.Wait(); err == nil {
		t.Fatal("read-only scp exited 0")
	}

	// Source with -p: T, C, data.
	s, in, out, _ = scpSession(t, e, "alice", alicePW, "scp -p -f /in/a.txt")
	in.Write([]byte{0})
	line, _ := out.ReadString('\n')
	if line != "T1600000000 0 1600000000 0\n" {
		t.Fatalf("T line %q", line)
	}
	in.Write([]byte{0})
	line, _ = out.ReadString('\n')
	if line != "C0600 5 a.txt\n" {
		t.Fatalf("C line %q", line)
	}
	in.Write([]byte{0})
	data := make([]byte, 6)
	if _, err := io.ReadFull(out, data); err != nil || string(data) != "hello\x00" {
		t.Fatalf("data %q %v", data, err)
	}
	in.Write([]byte{0})
	in.Close()
	if err := s.Wait(); err != nil {
		t.Fatalf("scp -f exit: %v", err)
	}
}
