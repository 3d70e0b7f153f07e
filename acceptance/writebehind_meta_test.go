//go:build acceptance

package acceptance

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/tarnfs/tarn/host/accounts"
)

// TestWriteBehindKill9SetMeta: files uploaded over SFTP as rclone does
// (OPEN, WRITE, CLOSE, SETSTAT of the mtime, STAT) are answered once
// their links, and then their mtimes, are journaled on the client node's
// disk. The node is killed with SIGKILL right after the last SETSTAT's
// answer; after `tarn run` again every file is in its folder with the
// mtime the SETSTAT was answered OK for, as another node sees it. With a
// 10 s delay every link is still pending at the kill; with 100 ms
// (the node's default) the folder changes run while the SETSTATs come,
// so some take links already in flight (vdrive Behind.setMeta), and the
// kill may fall between a change making a link and the next making its
// mtime (the replay makes the mtime then).
func TestWriteBehindKill9SetMeta(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay string
	}{
		{name: "pending", delay: "10s"},
		{name: "in flight", delay: "100ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGrid(t, GridOptions{})
			n, addr, user, pass := startSFTPNode(t, g, tc.delay)
			root := sftpRootCap(t, n)

			c := sftpDial(t, addr, user, pass)
			if err := c.Mkdir("/wb"); err != nil {
				t.Fatal(err)
			}
			const files = 40
			mtime := func(i int) time.Time { return time.Unix(1500000000+int64(i)*3600, 0).UTC() }
			for i := range files {
				p := fmt.Sprintf("/wb/f%02d.bin", i)
				if _, err := c.Stat("/wb"); err != nil {
					t.Fatal(err)
				}
				f, err := c.Create(p)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write(genBytes(uint64(2000+i), 4096)); err != nil {
					t.Fatal(err)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				if err := c.Chtimes(p, mtime(i), mtime(i)); err != nil {
					t.Fatalf("setstat %s: %v", p, err)
				}
				in, err := c.Stat(p)
				if err != nil || !in.ModTime().Equal(mtime(i)) {
					t.Fatalf("stat %s after setstat: %v %v", p, in, err)
				}
			}
			g.kill(t, n)
			c.Close()

			g.restart(t, n)
			deadline := time.Now().Add(90 * time.Second)
			var seen map[string]lsEntry
			for {
				var r Result
				seen, r = lsEntries(t, g.Client, root+"/wb")
				var wrong []string
				for i := range files {
					name := fmt.Sprintf("f%02d.bin", i)
					if e, in := seen[name]; !in {
						wrong = append(wrong, name+" missing")
					} else if !e.Mtime.Equal(mtime(i)) {
						wrong = append(wrong, fmt.Sprintf("%s mtime %s, want %s", name, e.Mtime, mtime(i)))
					}
				}
				if r.Code == 0 && len(seen) == files && len(wrong) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("90 s after the restart another node lists %d entries in wb (%v), want %d files with their mtimes: %s",
						len(seen), r, files, strings.Join(wrong, "; "))
				}
				time.Sleep(500 * time.Millisecond)
			}
			for i := range files {
				e := seen[fmt.Sprintf("f%02d.bin", i)]
				if h, size, r := g.getHash(t, g.Client, e.ReadCap); r.Code != 0 || size != 4096 || h != genHash(uint64(2000+i), 4096) {
					t.Fatalf("f%02d.bin: %d bytes back (%v), not the ones put", i, size, r)
				}
			}
			if log := g.logText(n); strings.Contains(log, "could not be made") {
				t.Fatalf("the node logged a failed link:\n%s", tail(log, 4000))
			}
		})
	}
}

// startSFTPNode adds a client node running SFTP for one account (its
// root made at start) with client.link_write_behind = delay.
func startSFTPNode(t *testing.T, g *Grid, delay string) (n *Node, addr, user, pass string) {
	t.Helper()
	n = g.addClient(t, "sftpclient", GridOptions{NoRun: true, Edit: func(p string) string {
		return setTOML(p, "client", "link_write_behind", fmt.Sprintf("%q", delay))
	}})
	prof := filepath.Join(n.Dir, "tarn.toml")
	base, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	user, pass = "alice", "alice-"+randHex(8)
	h, err := accounts.HashPassword(pass)
	if err != nil {
		t.Fatal(err)
	}
	addr = freePort(t)
	var b strings.Builder
	b.Write(base)
	fmt.Fprintf(&b, "\n[[sftp]]\nlisten = %q\naccounts = [%q]\nhost_keys = [\"private/ssh_host_ed25519_key\"]\n", addr, user)
	fmt.Fprintf(&b, "\n[[accounts]]\nname = %q\npassword_hash = %q\nroot_cap_file = %q\n", user, h, filepath.Join(n.Dir, "private", "sftp-root.cap"))
	if err := os.WriteFile(prof, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	g.runNode(t, n)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if conn, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			conn.Close()
			return n, addr, user, pass
		}
		if time.Now().After(deadline) {
			t.Fatalf("SFTP at %s does not answer:\n%s", addr, tail(g.logText(n), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sftpRootCap is the root cap the node made for the SFTP account.
func sftpRootCap(t *testing.T, n *Node) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(n.Dir, "private", "sftp-root.cap"))
		if err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SFTP root cap: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sftpDial logs in with a password (pkg/sftp's client, as rclone's).
func sftpDial(t *testing.T, addr, user, pass string) *sftp.Client {
	t.Helper()
	conn, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.Password(pass)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh to %s: %v", addr, err)
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c
}

type lsEntry struct {
	Name    string    `json:"name"`
	ReadCap string    `json:"read_cap"`
	Mtime   time.Time `json:"mtime"`
}

// lsEntries is `tarn ls --json` of path through n, by name.
func lsEntries(t testing.TB, n *Node, path string) (map[string]lsEntry, Result) {
	t.Helper()
	r := tarn(t, CLI{Timeout: 2 * time.Minute}, "ls", "--json", "--node", n.Dir, path)
	out := map[string]lsEntry{}
	if r.Code == 0 {
		var es []lsEntry
		if err := json.Unmarshal([]byte(r.Stdout), &es); err != nil {
			t.Fatalf("ls --json %s: %v\n%s", path, err, r.Stdout)
		}
		for _, e := range es {
			out[e.Name] = e
		}
	}
	return out, r
}
