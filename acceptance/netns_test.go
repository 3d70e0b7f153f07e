//go:build acceptance

package acceptance

// A grid of separate network hosts on one machine: each node runs in its
// own Linux network namespace, with its own address on a bridge that lives
// in a "switch" namespace, so nothing of the test touches the machine's own
// network. Nodes are made only with `tarn init --profile ROLE` and edits of
// the TOML profile that an operator would make, and run with
// `ip netns exec NS tarn run DIR`; the CLI runs inside the client's
// namespace, where the client's API (on that namespace's loopback) is.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// netLab is a set of network namespaces joined by a bridge.
type netLab struct {
	prefix string // unique per run: "tn" + 6 hex digits
	net    string // "10.A.B." of the hosts' /24
	sw     string // the switch namespace, holding the bridge
	hosts  map[string]*netHost
}

// netHost is one namespace with one address on the bridge.
type netHost struct {
	Name string // role name in the test ("storage-1")
	NS   string // namespace name
	IP   string // its address on the bridge
	peer string // the veth end on the bridge (in the switch namespace)
}

// ipCmd runs `ip ARGS` and returns its combined output.
func ipCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// newNetLab makes the switch namespace and its bridge, or skips the test
// when this machine cannot make network namespaces (not root, no iproute2)
// — unless TARN_REQUIRE_NETNS is set (CI), where that is a failure.
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	var r [4]byte
	rand.Read(r[:])
	l := &netLab{
		prefix: "tn" + hex.EncodeToString(r[:3]),
		// Every address lives only inside the lab's namespaces, so a
		// clash with the machine's own networks does no harm.
		net:   fmt.Sprintf("10.%d.%d.", 64+int(r[3])%128, r[0]),
		hosts: map[string]*netHost{},
	}
	l.sw = l.prefix + "-switch"
	if _, err := exec.LookPath("ip"); err != nil {
		netnsUnavailable(t, "no ip command (Debian's iproute2): "+err.Error())
	}
	if _, err := ipCmd("netns", "add", l.sw); err != nil {
		netnsUnavailable(t, err.Error())
	}
	// Deleting a namespace deletes its interfaces and, with them, the
	// veth pairs. Registered first, so it runs after the processes stop.
	t.Cleanup(func() {
		for _, h := range l.hosts {
			if _, err := ipCmd("netns", "del", h.NS); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
		if _, err := ipCmd("netns", "del", l.sw); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	for _, args := range [][]string{
		{"-n", l.sw, "link", "add", "br0", "type", "bridge"},
		{"-n", l.sw, "link", "set", "br0", "up"},
	} {
		if _, err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func netnsUnavailable(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("TARN_REQUIRE_NETNS") != "" {
		t.Fatalf("network namespaces are needed (TARN_REQUIRE_NETNS is set): %s", why)
	}
	t.Skipf("cannot make network namespaces here (root and iproute2 needed): %s", why)
}

// addHost makes a namespace with loopback up and one veth link to the
// bridge, at address NET.last/24.
func (l *netLab) addHost(t *testing.T, name string, last int) *netHost {
	t.Helper()
	h := &netHost{
		Name: name,
		NS:   fmt.Sprintf("%s-%s", l.prefix, name),
		IP:   fmt.Sprintf("%s%d", l.net, last),
		peer: fmt.Sprintf("v%s%d", l.prefix[2:], last), // at most 15 bytes
	}
	if _, err := ipCmd("netns", "add", h.NS); err != nil {
		t.Fatal(err)
	}
	l.hosts[name] = h
	for _, args := range [][]string{
		{"-n", h.NS, "link", "set", "lo", "up"},
		// Both ends are made inside namespaces: no name is ever taken in
		// the machine's own namespace.
		{"-n", l.sw, "link", "add", h.peer, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
		{"-n", l.sw, "link", "set", h.peer, "master", "br0"},
		{"-n", l.sw, "link", "set", h.peer, "up"},
		{"-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"-n", h.NS, "link", "set", "eth0", "up"},
	} {
		if _, err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// unplug deletes the host's link to the bridge: the host and its processes
// stay, but nothing reaches them any more (no reset, no ICMP: packets to it
// are lost, as when a machine's cable is pulled).
func (l *netLab) unplug(t *testing.T, h *netHost) {
	t.Helper()
	if _, err := ipCmd("-n", l.sw, "link", "del", h.peer); err != nil {
		t.Fatal(err)
	}
}

// reach checks that from can open a TCP connection to port on to's
// address (bash's /dev/tcp: no ping on a minimal Debian).
func (l *netLab) reach(from, to *netHost, port int) error {
	_, err := ipCmd("netns", "exec", from.NS, "timeout", "3", "bash", "-c",
		fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", to.IP, port))
	return err
}

// startNetnsProc starts `ip netns exec NS tarn ARGS` (ip execs tarn in
// place, so the pid is tarn's), stopped when owner ends.
func startNetnsProc(t, owner testing.TB, ns, name, logPath string, args ...string) *Proc {
	t.Helper()
	return launch(t, owner, name, logPath, []string{"ip", "netns", "exec", ns}, args)
}

// nsTarn runs one CLI command inside namespace ns, as tarn() does outside.
func nsTarn(t testing.TB, ns string, o CLI, args ...string) Result {
	t.Helper()
	return runCLI(o, []string{"ip", "netns", "exec", ns}, args)
}

// nsStatus is `tarn status --json` of the client, run in its namespace.
func nsStatus(t testing.TB, ns string, n *Node) (Status, Result) {
	t.Helper()
	r := nsTarn(t, ns, CLI{Timeout: 40 * time.Second}, "status", "--json", "--node", n.Dir)
	var st Status
	if r.Code == 0 {
		if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
			t.Errorf("tarn status --json: %v\n%s", err, r.Stdout)
		}
	}
	return st, r
}

func readNodeInfo(t testing.TB, n *Node) NodeInfo {
	t.Helper()
	var info NodeInfo
	b, err := os.ReadFile(filepath.Join(n.Dir, "node.json"))
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	if err != nil {
		t.Fatalf("%s: node.json: %v", n.Name, err)
	}
	return info
}

// checkProfile runs `tarn config check` on n, which must pass, and with
// quiet without a warning.
func checkProfile(t *testing.T, n *Node, quiet bool) {
	t.Helper()
	r := tarn(t, CLI{}, "config", "check", n.Dir)
	if r.Code != 0 {
		t.Fatalf("config check of %s: %v", n.Name, r)
	}
	if out := r.Stdout + r.Stderr; quiet && strings.Contains(out, "warning") {
		t.Errorf("config check of %s warns about a profile made as docs/multi-host.md says:\n%s", n.Name, out)
	}
}

// TestNetnsGrid: an introducer, five storage hosts and a client host, each
// in its own network namespace with its own address, configured only
// through `tarn init` profiles; a file goes up and comes back, two storage
// hosts lose their links, and the file still comes back from the other
// three (K=3 of N=5).
func TestNetnsGrid(t *testing.T) {
	lab := newNetLab(t)
	g := &Grid{Dir: t.TempDir(), owner: t}
	t.Cleanup(func() {
		if t.Failed() {
			g.dumpLogs(t)
		}
	})
	run := func(h *netHost, n *Node) NodeInfo {
		t.Helper()
		n.proc = startNetnsProc(t, t, h.NS, n.Name, filepath.Join(n.Dir, "run.log"), "run", n.Dir)
		return g.waitNodeJSON(t, n)
	}
	start := time.Now()

	// The steps of docs/multi-host.md. The introducer keeps the
	// template's listen address (every interface) and announces its own.
	ih := lab.addHost(t, "introducer", 1)
	intro := g.initNode(t, "introducer", "introducer", func(p string) string {
		p = setTOML(p, "grid", "name", `"acme"`)
		return setTOML(p, "introducer", "announce", fmt.Sprintf(`["tcp:%s:3458"]`, ih.IP))
	})
	checkProfile(t, intro, true)
	info := run(ih, intro)
	if !strings.Contains(info.IntroducerURL, "@tcp:"+ih.IP+":3458") {
		t.Fatalf("the introducer's node URL %q does not name its address %s:3458", info.IntroducerURL, ih.IP)
	}
	g.Introducer = info.IntroducerURL
	// The grid secret travels as a file, as an operator copies it to each
	// machine; `tarn init --grid-secret` copies it into the node.
	g.GridSecret = filepath.Join(g.Dir, "grid.secret.copy")
	if b, err := os.ReadFile(filepath.Join(intro.Dir, "private", "grid.secret")); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(g.GridSecret, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// Storage hosts keep the template's listen address and announce
	// their own, but the last listens on its own address and announces
	// nothing: its node URL must carry the listen address.
	var storageHosts []*netHost
	var storage []*Node
	for i := range 5 {
		name := fmt.Sprintf("storage-%d", i+1)
		h := lab.addHost(t, name, 11+i)
		last := i == 4
		n := g.initNode(t, "storage", name, func(p string) string {
			p = setTOML(p, "grid", "name", `"acme"`)
			if last {
				p = setTOML(p, "storage", "listen", fmt.Sprintf(`["tcp:%s:3457"]`, h.IP))
			} else {
				p = setTOML(p, "storage", "announce", fmt.Sprintf(`["tcp:%s:3457"]`, h.IP))
			}
			return setTOML(p, "storage", "reserved_space", `"0"`)
		})
		checkProfile(t, n, !last)
		storageHosts = append(storageHosts, h)
		storage = append(storage, n)
	}
	for i, n := range storage {
		n.proc = startNetnsProc(t, t, storageHosts[i].NS, n.Name, filepath.Join(n.Dir, "run.log"), "run", n.Dir)
	}
	for i, n := range storage {
		si := g.waitNodeJSON(t, n)
		if !strings.Contains(si.StorageURL, "@tcp:"+storageHosts[i].IP+":3457") {
			t.Errorf("%s announces %q, not its address %s:3457", n.Name, si.StorageURL, storageHosts[i].IP)
		}
	}

	// The client: 3-of-5 with every share on its own server, its API on
	// its namespace's loopback (the template's default).
	ch := lab.addHost(t, "client", 100)
	client := g.initNode(t, "client", "client", func(p string) string {
		p = setTOML(p, "grid", "name", `"acme"`)
		p = setTOML(p, "client.shares", "k", "3")
		p = setTOML(p, "client.shares", "h", "5")
		return setTOML(p, "client.shares", "n", "5")
	})
	g.Client = client
	checkProfile(t, client, true)
	run(ch, client)
	if err := lab.reach(ch, ih, 3458); err != nil {
		t.Fatalf("the client host cannot reach the introducer: %v", err)
	}
	for _, h := range storageHosts {
		if err := lab.reach(ch, h, 3457); err != nil {
			t.Fatalf("the client host cannot reach %s: %v", h.Name, err)
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, r := nsStatus(t, ch.NS, client)
		if r.Code == 0 && st.Known == 5 && st.Conn == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client does not see 5 storage servers after 90s: %+v\n%v", st, r)
		}
		time.Sleep(250 * time.Millisecond)
	}
	figure(t, "grid of 7 namespaces (introducer, 5 storage, client) up in %v", time.Since(start).Round(time.Millisecond))

	// The CLI outside the client's namespace cannot reach its API: the
	// client host is a machine of its own.
	if r := tarn(t, CLI{Timeout: 30 * time.Second}, "status", "--node", client.Dir); r.Code == 0 {
		t.Errorf("tarn status from outside the client's namespace reached its API: %v", r)
	}

	const size = 8 << 20
	const seed = 1000
	want := genHash(seed, size)
	r := nsTarn(t, ch.NS, CLI{Stdin: newGen(seed, size), Timeout: 5 * time.Minute}, "put", "-q", "--node", client.Dir, "-")
	c := strings.TrimSpace(r.Stdout)
	if r.Code != 0 || !strings.HasPrefix(c, "tarn:") {
		t.Fatalf("put: %v", r)
	}
	figure(t, "put of %d MiB across namespaces: %v, %.1f MiB/s", size>>20, r.Took.Round(time.Millisecond), mbps(size, r.Took))
	si := storageIndex(t, c)
	for _, n := range storage {
		if got := len(g.shares(n, si)); got != 1 {
			t.Errorf("%s holds %d shares of the file, want 1 (k=3 h=5 n=5)", n.Name, got)
		}
	}

	get := func(what string) {
		t.Helper()
		hw := newHashWriter()
		r := nsTarn(t, ch.NS, CLI{Stdout: hw, Timeout: 5 * time.Minute}, "get", "-q", "--node", client.Dir, c, "-")
		if r.Code != 0 {
			t.Fatalf("get %s: %v", what, r)
		}
		if hw.n != size || hw.Sum() != want {
			t.Fatalf("get %s: %d bytes, sha256 %s; want %d bytes, %s", what, hw.n, hw.Sum(), size, want)
		}
		figure(t, "get of %d MiB %s: %v, %.1f MiB/s", size>>20, what, r.Took.Round(time.Millisecond), mbps(size, r.Took))
	}
	get("with 5 hosts")

	// Two storage hosts lose their links. Their processes run on, but
	// nothing reaches them: the client finds out only by timing out.
	before, _ := nsStatus(t, ch.NS, client)
	failedBefore, _ := before.GridStats["ServersFailed"].(float64)
	lost := []*netHost{storageHosts[1], storageHosts[3]}
	for _, h := range lost {
		lab.unplug(t, h)
	}
	unplugged := time.Now()
	if err := lab.reach(ch, lost[0], 3457); err == nil {
		t.Fatalf("the client host still reaches %s after its link was deleted", lost[0].Name)
	}

	// Watch the client's status while the get runs: when does it count
	// the dead servers as failed, and when does its server list say so.
	type notice struct{ failed, disconnected time.Duration }
	watchDone := make(chan notice, 1)
	stopWatch := make(chan struct{})
	go func() {
		var nt notice
		for {
			st, r := nsStatus(t, ch.NS, client)
			if r.Code == 0 {
				f, _ := st.GridStats["ServersFailed"].(float64)
				if nt.failed == 0 && f >= failedBefore+float64(len(lost)) {
					nt.failed = time.Since(unplugged)
				}
				if nt.disconnected == 0 && st.Conn <= 5-len(lost) {
					nt.disconnected = time.Since(unplugged)
				}
			}
			if nt.failed != 0 && nt.disconnected != 0 {
				watchDone <- nt
				return
			}
			select {
			case <-stopWatch:
				watchDone <- nt
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	get("with 2 of 5 hosts unplugged")
	// An upload needs all 5 servers (h=5): it must fail, naming what it
	// found, once the client gives up on the unplugged ones.
	r = nsTarn(t, ch.NS, CLI{Stdin: newGen(seed+1, 1<<20), Timeout: 5 * time.Minute}, "put", "-q", "--node", client.Dir, "-")
	if r.Code == 0 {
		t.Errorf("put with h=5 and 2 of 5 storage hosts unplugged succeeded: %v", r)
	} else {
		figure(t, "put needing 5 servers with 2 unplugged failed after %v: %s", r.Took.Round(time.Millisecond), lastLine(r.Stderr))
		if strings.Count(strings.TrimSpace(r.Stderr), "\n") > 0 || strings.Contains(r.Stderr, "panic") {
			t.Errorf("the failed put's error is not one clear line:\n%s", r.Stderr)
		}
	}
	// Give the status a while longer to catch up, then report.
	wait := 60 * time.Second
	if s := os.Getenv("TARN_NETNS_NOTICE_WAIT"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			wait = d
		}
	}
	var nt notice
	select {
	case nt = <-watchDone:
	case <-time.After(max(0, wait-time.Since(unplugged))):
		close(stopWatch)
		nt = <-watchDone
	}
	if nt.failed != 0 {
		figure(t, "client counted the 2 unplugged servers as failed %v after the unplug", nt.failed.Round(time.Millisecond))
	} else {
		figure(t, "client did not count the 2 unplugged servers as failed within %v", wait)
	}
	if nt.disconnected != 0 {
		figure(t, "client status showed the 2 unplugged servers disconnected %v after the unplug", nt.disconnected.Round(time.Millisecond))
	} else {
		st, _ := nsStatus(t, ch.NS, client)
		figure(t, "client status still showed %d of 5 servers connected %v after 2 were unplugged", st.Conn, time.Since(unplugged).Round(time.Second))
	}

	// A second get, now that the client has met the dead servers once.
	get("again with 2 of 5 hosts unplugged")
}
