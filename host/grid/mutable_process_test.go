package grid_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/identity"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	transporttcp "github.com/tarnfs/tarn/plugins/transport-tcp"
)

// TestMutableTwoProcesses: two separate client processes (this test
// binary run again as TestMutableHelperProcess, each with its own node
// identity, connections and memory) add 100 lines each to one mutable file
// at the same time; afterwards it holds exactly the 200 lines.
func TestMutableTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	g := mutGrid(t, 5)
	c := mutClient(t, g)
	w := create(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const items = 100
	names := []string{"p", "q"}
	cmds := make([]*exec.Cmd, len(names))
	outs := make([]*strings.Builder, len(names))
	for i, name := range names {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestMutableHelperProcess$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(),
			"TARN_MUT_HELPER=1",
			"TARN_MUT_SERVERS="+strings.Join(g.Addrs(), ","),
			"TARN_MUT_SECRET="+hex.EncodeToString(g.Secret),
			"TARN_MUT_CAP="+w.String(),
			"TARN_MUT_NAME="+name,
			"TARN_MUT_ITEMS="+strconv.Itoa(items),
		)
		outs[i] = &strings.Builder{}
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("client process %s: %v\n%s", names[i], err, outs[i])
		}
	}
	if t.Failed() {
		return
	}
	got, seq, err := mutClient(t, g).ReadMutable(mctx(t), w.ReadCap())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, name := range names {
		for i := 0; i < items; i++ {
			want = append(want, fmt.Sprintf("%s-%03d", name, i))
		}
	}
	if ls := slices.Sorted(slices.Values(lines(got))); !slices.Equal(ls, want) {
		t.Fatalf("file holds %d lines, want the %d added", len(ls), len(want))
	}
	for i := range names {
		for _, l := range strings.Split(outs[i].String(), "\n") {
			if strings.Contains(l, "helper:") {
				t.Log(strings.TrimSpace(l))
			}
		}
	}
	t.Logf("version %d", seq)
}

// TestMutableHelperProcess is one client process of TestMutableTwoProcesses.
func TestMutableHelperProcess(t *testing.T) {
	if os.Getenv("TARN_MUT_HELPER") != "1" {
		t.Skip("a client process of TestMutableTwoProcesses")
	}
	secret, err := hex.DecodeString(os.Getenv("TARN_MUT_SECRET"))
	if err != nil {
		t.Fatal(err)
	}
	var servers grid.StaticServers
	for _, a := range strings.Split(os.Getenv("TARN_MUT_SERVERS"), ",") {
		servers = append(servers, grid.Server{Addr: a})
	}
	id, err := identity.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := id.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := grid.New(grid.Config{Transport: transporttcp.New(), Cert: cert, GridSecret: secret,
		Codec: codecreedsolomon.New(), Servers: servers, K: 3, H: 4, N: 5, TempDir: t.TempDir(),
		ServerTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cp, err := cap.Parse(os.Getenv("TARN_MUT_CAP"))
	if err != nil {
		t.Fatal(err)
	}
	w, ok := cp.(cap.MutableWrite)
	if !ok {
		t.Fatalf("cap %s is not a mutable write cap", cp)
	}
	name := os.Getenv("TARN_MUT_NAME")
	items, _ := strconv.Atoi(os.Getenv("TARN_MUT_ITEMS"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	for i := 0; i < items; i++ {
		if _, err := c.Modify(ctx, w, addLine(fmt.Sprintf("%s-%03d", name, i))); err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
	}
	st := c.MutableStats()
	fmt.Printf("helper: process %s added %d lines in %v: conflicts %d, retries %d\n", name, items, time.Since(start).Round(time.Millisecond), st.Conflicts, st.Retries)
}
