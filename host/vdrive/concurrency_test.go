package vdrive_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/vdrive"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	transporttcp "github.com/tarnfs/tarn/plugins/transport-tcp"
)

const perWriter = 200

// checkShared asserts that /shared holds exactly prefix-000.. for each
// writer prefix, perWriter each.
func checkShared(t *testing.T, d *vdrive.Drive, prefixes ...string) {
	t.Helper()
	got := names(t, d, "/shared")
	if len(got) != len(prefixes)*perWriter {
		t.Fatalf("/shared lists %d entries, want %d", len(got), len(prefixes)*perWriter)
	}
	for i, w := range prefixes {
		for j := 0; j < perWriter; j++ {
			if want := fmt.Sprintf("%s-%03d", w, j); got[i*perWriter+j] != want {
				t.Fatalf("entry %d is %q, want %q", i*perWriter+j, got[i*perWriter+j], want)
			}
		}
	}
}

// addEntries links perWriter literal files named prefix-NNN into /shared,
// one directory change each.
func addEntries(ctx context.Context, d *vdrive.Drive, prefix string) error {
	for i := 0; i < perWriter; i++ {
		p := fmt.Sprintf("/shared/%s-%03d", prefix, i)
		if err := d.Link(ctx, p, litCap(p)); err != nil {
			return err
		}
	}
	return nil
}

// TestConcurrentWriters: two clients (each its own grid client and node
// identity) add 200 distinct entries each to one directory at the same
// time; all 400 are there afterwards, and the slot's test-and-set did
// refuse stale writes on the way.
func TestConcurrentWriters(t *testing.T) {
	if testing.Short() {
		t.Skip("400 directory writes")
	}
	g := newGrid(t)
	ca, cb := newClient(t, g), newClient(t, g)
	ctx := ctxFor(t, 5*time.Minute)
	root, err := vdrive.NewRoot(ctx, vdrive.GridStore(ca))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := vdrive.New(vdrive.GridStore(ca), root.String())
	b, _ := vdrive.New(vdrive.GridStore(cb), root.String())
	if err := a.Mkdir(ctx, "/shared"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	start := time.Now()
	for i, d := range []*vdrive.Drive{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = addEntries(ctx, d, []string{"a", "b"}[i])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	conflicts := ca.MutableStats().Conflicts + cb.MutableStats().Conflicts
	t.Logf("%d concurrent links in %v, %d stale writes refused and retried", 2*perWriter, time.Since(start), conflicts)
	checkShared(t, a, "a", "b")
	checkShared(t, b, "a", "b")
	if conflicts == 0 {
		t.Log("no write conflicted: the writers did not overlap this run")
	}
}

// childEnv carries a writer process's orders.
const childEnv = "TARN_VDRIVE_WRITER"

type childOrders struct {
	Servers []grid.Server
	Secret  string
	Root    string
	Prefix  string
}

func TestMain(m *testing.M) {
	if s := os.Getenv(childEnv); s != "" {
		os.Exit(runChild(s))
	}
	os.Exit(m.Run())
}

// runChild is a separate client process: its own identity, grid client
// and drive, adding perWriter entries.
func runChild(orders string) int {
	var o childOrders
	if err := json.Unmarshal([]byte(orders), &o); err != nil {
		fmt.Fprintln(os.Stderr, "writer orders:", err)
		return 2
	}
	dir, err := os.MkdirTemp("", "vdrive-writer-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	id, err := identity.Create(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cert, err := id.TLSCertificate()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	secret, _ := hex.DecodeString(o.Secret)
	c, err := grid.New(grid.Config{Transport: transporttcp.New(), Cert: cert, GridSecret: secret,
		Codec: codecreedsolomon.New(), Servers: grid.StaticServers(o.Servers), K: 3, H: 4, N: 5,
		TempDir: dir, ServerTimeout: 5 * time.Second, Logger: hclog.NewNullLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer c.Close()
	d, err := vdrive.New(vdrive.GridStore(c), o.Root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := addEntries(ctx, d, o.Prefix); err != nil {
		fmt.Fprintln(os.Stderr, "writer", o.Prefix+":", err)
		return 1
	}
	fmt.Printf("conflicts %d\n", c.MutableStats().Conflicts)
	return 0
}

// TestConcurrentWriterProcesses: two separate client processes each add
// 200 distinct entries to the same directory at the same time; afterwards
// it lists exactly 400.
func TestConcurrentWriterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("two writer processes")
	}
	g := newGrid(t)
	d := newDrive(t, g)
	ctx := ctxFor(t, 5*time.Minute)
	if err := d.Mkdir(ctx, "/shared"); err != nil {
		t.Fatal(err)
	}
	var procs []*exec.Cmd
	var outs []*strings.Builder
	for _, prefix := range []string{"p", "q"} {
		orders, _ := json.Marshal(childOrders{Servers: g.Source(), Secret: hex.EncodeToString(g.Secret), Root: d.RootCap(), Prefix: prefix})
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(orders))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		procs, outs = append(procs, cmd), append(outs, out)
	}
	for i, p := range procs {
		if err := p.Wait(); err != nil {
			t.Fatalf("writer %d: %v: %s", i, err, outs[i])
		}
		t.Logf("writer %d: %s", i, strings.TrimSpace(outs[i].String()))
	}
	checkShared(t, d, "p", "q")
}
