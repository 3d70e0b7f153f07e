package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/node"
)

// cutFile serves its first half, then fails as a download does when the
// servers holding the rest go away.
type cutFile struct{ data []byte }

func (f cutFile) Size() int64 { return int64(len(f.data)) }
func (f cutFile) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(f.data).ReadAt(p, off)
}
func (f cutFile) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(f.data[:len(f.data)/2])
	if err != nil {
		return int64(n), err
	}
	return int64(n), errors.New("segment 2: chk: not enough good shares: 1 found, 3 needed")
}

type cutFiles struct{}

func (cutFiles) Upload(context.Context, io.Reader, int64) (string, error) {
	return "", errors.New("read only")
}
func (cutFiles) Open(context.Context, cap.Cap) (api.File, error) {
	return cutFile{data: bytes.Repeat([]byte("tarn"), 1<<16)}, nil
}

// TestGetCutShort: a download that fails after its first bytes makes
// tarn get say why (the node's Tarn-Error trailer), exit 1, and leave no
// OUT file behind.
func TestGetCutShort(t *testing.T) {
	bin := buildTarn(t)
	srv, err := api.Start(api.Config{Listen: "127.0.0.1:0", Token: "tok", Files: cutFiles{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	tok := filepath.Join(dir, "api.token")
	os.WriteFile(tok, []byte("tok\n"), 0o600)
	b, _ := json.Marshal(node.Info{Pid: os.Getpid(), Roles: []string{"client"}, APIURL: srv.URL(), TokenFile: tok})
	os.WriteFile(filepath.Join(dir, node.InfoFile), b, 0o644)

	out := filepath.Join(t.TempDir(), "out.bin")
	r := run(t, bin, nil, "get", "-q", "--node", dir, cap.Literal{Data: []byte("x")}.String(), out)
	want := "download ended early after 131072 of 262144 bytes: segment 2: chk: not enough good shares: 1 found, 3 needed"
	if r.code != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "log says why") {
		t.Errorf("exit %d, stderr %q: want the node's reason %q", r.code, r.stderr, want)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OUT exists after a failed get: %v", err)
	}
}
