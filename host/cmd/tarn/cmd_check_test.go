package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/aliases"
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/checker"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/node"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	"github.com/tarnfs/tarn/sdk/storage"
)

// checkNode serves the real local API (files, vdrive, check routes) over
// a 5-server test grid and writes a node folder the CLI finds it by.
func checkNode(t *testing.T) (dir string, g *testgrid.Grid, gc *grid.Client) {
	t.Helper()
	g = testgrid.New(t, 5, &testgrid.Options{Server: func(_ int, cfg *storageserver.Config) {
		cfg.ValidateSlotWrite = mutable.ValidateSlotWrite
	}})
	cert := g.ClientCert()
	lease := make([]byte, 32)
	rand.Read(lease)
	gc, err := grid.New(grid.Config{Transport: g.Transport, Cert: cert, GridSecret: g.Secret, Codec: codecreedsolomon.New(),
		Servers: g.Source(), K: 3, H: 4, N: 5, SegmentSize: 64 << 10, LeaseSecret: lease, TempDir: t.TempDir(),
		ServerTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gc.Close() })
	ck, err := checker.New(checker.Config{Transport: g.Transport, Cert: cert, GridSecret: g.Secret, Servers: g.Source(),
		Codec: codecreedsolomon.New(), LeaseSecret: lease, H: 4, Grid: gc, ServerTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	srv, err := api.Start(api.Config{Listen: "127.0.0.1:0", Token: "secret-token", Files: apiFiles{gc},
		Store: vdrive.GridStore(gc), Checker: ck})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dir = t.TempDir()
	tok := filepath.Join(dir, "api.token")
	os.WriteFile(tok, []byte("secret-token\n"), 0o600)
	b, _ := json.Marshal(node.Info{Pid: os.Getpid(), Roles: []string{"client"}, APIURL: srv.URL(), TokenFile: tok})
	os.WriteFile(filepath.Join(dir, node.InfoFile), b, 0o644)
	return dir, g, gc
}

type apiFiles struct{ c *grid.Client }

func (f apiFiles) Upload(ctx context.Context, r io.Reader, size int64) (string, error) {
	c, err := f.c.Upload(ctx, r, size, nil)
	if err != nil {
		return "", err
	}
	return c.String(), nil
}

func (f apiFiles) Open(ctx context.Context, c cap.Cap) (api.File, error) { return f.c.Open(ctx, c) }

func TestCheckCommands(t *testing.T) {
	bin := buildTarn(t)
	dir, g, gc := checkNode(t)
	ctx := context.Background()
	st := vdrive.GridStore(gc)
	root, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := vdrive.New(st, root.String())
	data := make([]byte, 200<<10)
	rand.Read(data)
	if err := d.MkdirAll(ctx, "/docs"); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "/docs/f.bin", bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
	if err := aliases.Add(aliases.File(dir), "home", root.String()); err != nil {
		t.Fatal(err)
	}
	info, _ := d.Stat(ctx, "/docs/f.bin")
	fc, _ := cap.Parse(info.ReadCap())
	v := fc.(cap.CHK).Verify()
	// Damage: flip a block byte of share 0, delete share 1.
	holders := g.Holders(v.StorageIndex)
	ref0 := storage.Ref{Index: v.StorageIndex, Num: 0}
	b0, _ := g.Servers[holders[0][0]].Backend.Share(ref0)
	g.Servers[holders[0][0]].Backend.Corrupt(ref0, int64(len(b0)-5), 1)
	g.Servers[holders[1][0]].Backend.DeleteShare(storage.Ref{Index: v.StorageIndex, Num: 1})

	node := []string{"--node", dir}
	steps := []struct {
		name string
		args []string
		code int
		want []string // substrings of stdout
	}{
		{"check by verify cap lists shares", []string{"check", v.String()}, 1,
			[]string{": unhealthy", "4 found, 4 good (listed)", "missing: 1"}},
		{"verify by alias path names the corrupt share", []string{"check", "--verify", "home:docs/f.bin"}, 1,
			[]string{"home:docs/f.bin: unhealthy", "corrupt: share 0 on " + g.Servers[holders[0][0]].NodeID, "removed by its server", "missing: 0 1"}},
		{"deep-check sees one unhealthy file", []string{"deep-check", "--verify", "home:"}, 1,
			[]string{"unhealthy     home:docs/f.bin", "3 objects (2 directories, 1 files): 2 healthy, 1 unhealthy, 0 repaired, 0 unrecoverable"}},
		{"repair", []string{"check", "--repair", "--add-lease", "home:docs/f.bin"}, 0,
			[]string{": repaired", "repair: rebuilt shares 0 1", "after repair: 5 good", "leases renewed on 3 servers"}},
		{"deep-check of every alias is clean", []string{"deep-check", "--verify", "--add-lease"}, 0,
			[]string{"healthy       home:docs/f.bin", "3 healthy, 0 unhealthy"}},
		{"a local path is refused", []string{"check", "./nope"}, 1, nil},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := run(t, bin, nil, append(s.args, node...)...)
			if r.code != s.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, s.code, r.stdout, r.stderr)
			}
			for _, w := range s.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			if r.code != 0 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("error is not one line: %q", r.stderr)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		r := run(t, bin, nil, append([]string{"check", "--json", "--verify", v.String()}, node...)...)
		var rep checker.Report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
			t.Fatalf("exit %d, %v:\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		if rep.Outcome != checker.Healthy || rep.Good != 5 || rep.Needed != 3 || !rep.Verified {
			t.Fatalf("json report %+v", rep)
		}
	})
}

func TestCheckLabel(t *testing.T) {
	const c = "tarn:chk:aaaaaaaaaaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb:3:5:1000"
	cases := []struct {
		name string
		arg  aliases.Arg
		want string
	}{
		{"bare cap", aliases.Arg{Root: c, Path: "/"}, "tarn:chk:aaaaaaaaaaa…"},
		{"dir cap and path", aliases.Arg{Root: "tarn:dir:xxxxxxxxxxxxxxxxxxxxxxxx", Path: "/a/b"}, "tarn:dir:xxxxxxxxxxx…:/a/b"},
		{"alias root", aliases.Arg{Alias: "docs", Root: c, Path: "/"}, "docs:"},
		{"alias path", aliases.Arg{Alias: "docs", Root: c, Path: "/a"}, "docs:a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkLabel(tc.arg); got != tc.want {
				t.Errorf("checkLabel = %q, want %q", got, tc.want)
			}
		})
	}
}
