//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestCpFromPipe: tarn cp of a pipe (tarn cp <(cmd) home:x, /dev/stdin)
// stores what the pipe carried. Stat gives a pipe 0 bytes: cp stored an
// empty file and exited 0; replacing an existing file opened the pipe a
// second time.
func TestCpFromPipe(t *testing.T) {
	bin := buildTarn(t)
	dir, _ := homeNode(t)
	ctx := context.Background()
	c, err := apiClient(dir)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20+17)
	rand.Read(big)
	for _, tc := range []struct {
		name string
		data []byte
		dst  string
	}{
		{"small, new name", []byte("hello pipe\n"), "home:p"},
		{"the same name again", []byte("replaced\n"), "home:p"},
		{"several segments", big, "home:big"},
		{"empty", nil, "home:empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "cp", "-q", "--node", dir, "/dev/fd/3", tc.dst)
			cmd.ExtraFiles = []*os.File{r}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			r.Close()
			go func() {
				w.Write(tc.data)
				w.Close()
			}()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("tarn cp: %v: %s", err, stderr.String())
				}
			case <-time.After(2 * time.Minute):
				cmd.Process.Kill()
				t.Fatal("tarn cp of a pipe did not end")
			}
			a, err := parseArg(dir, tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			body, _, err := c.Read(ctx, a.Root, a.Path, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(body)
			body.Close()
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("%s holds %d bytes (%v), want the pipe's %d", tc.dst, len(got), err, len(tc.data))
			}
		})
	}
}
