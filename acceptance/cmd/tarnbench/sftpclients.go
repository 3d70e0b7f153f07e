package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// The SFTP big-file figures run the clients people use, each at its own
// defaults and at the settings its documentation recommends for a server
// like this one, so that the "through SFTP" is not one harness's
// client. Every client puts its own 256 MiB (the grid keys files
// convergently) and gets it back; what came back is compared with what
// was put, after the clock stops.
//
// What each costs: CPU time of every grid process (nodes and plugins,
// from /proc) and of the client process (for the external clients their
// rusage at exit, which counts the children they waited for: sshpass,
// sftp and ssh; for pkg/sftp inside this harness its own /proc/self/stat,
// the harness doing nothing else meanwhile).

// sftpMaxData is the largest read or write the server advertises in its
// limits@openssh.com answer (frontends/sftp maxData): 255 KiB, as OpenSSH's
// own server. OpenSSH's sftp (8.7+) asks for it and uses it by itself;
// pkg/sftp needs MaxPacketUnchecked, rclone `--sftp-chunk-size 255k`,
// which rclone's documentation recommends for OpenSSH servers.
const sftpMaxData = 255 << 10

// transferTimeout bounds one external client's put or get of the big file:
// a hung client fails the run instead of stopping it.
const transferTimeout = 5 * time.Minute

// sftpBigClient is one SFTP client of the big-file figures.
type sftpBigClient struct {
	id   string // key part: e2e.sftp.ID.put.256MiB ("" for the legacy keys)
	cpu  string // key part of its CPU figures: e2e.cpu.sftp.CPU.put.256MiB
	name string // what the table says
	seed byte   // of its file's bytes
	// xfer puts local to remote (op "put") or gets remote to local (op
	// "get"), and returns how long it took and the CPU time of the client.
	xfer func(ctx context.Context, op, local, remote string) (took, cpu time.Duration, err error)
	// timing says what took covers, for the note.
	timing string
}

// sftpHeadline is the client whose figures are issue 8's "through SFTP"
// (e2e.sftp.issue8.*): OpenSSH's sftp with its defaults, the client most
// people run (every Linux, macOS and Windows 10+ has it), which negotiates
// 255 KiB requests with this server by itself (docs/benchmarks.md,
// "SFTP clients").
const sftpHeadline = "openssh"

// sftpBigClients lists the clients to run against ep, the ones whose tools
// are missing left out (with a note in r).
func sftpBigClients(r *Report, ep sftpEndpoint, tmp string) []sftpBigClient {
	cs := []sftpBigClient{
		{id: "", cpu: "pkgsftp32", name: "pkg/sftp, 32 KiB requests", seed: seedSFTPBig,
			xfer: pkgSFTP(ep, 32<<10), timing: pkgTiming},
		{id: "pkgsftp255", cpu: "pkgsftp255", name: "pkg/sftp, 255 KiB requests (MaxPacketUnchecked, the server's limits)", seed: 20,
			xfer: pkgSFTP(ep, sftpMaxData), timing: pkgTiming},
	}
	if ok, why := haveOpenSSH(); !ok {
		r.Notes = append(r.Notes, "sftp: "+why+"; its big-file figures skipped")
	} else {
		cs = append(cs,
			sftpBigClient{id: "openssh", cpu: "openssh", name: "OpenSSH sftp, its defaults (aes128-ctr + hmac-sha2-256-etm here)", seed: 21,
				xfer: openSSHSFTP(ep, tmp, ""), timing: "process start to exit (login included)"},
			sftpBigClient{id: "openssh-gcm", cpu: "openssh-gcm", name: "OpenSSH sftp -c aes128-gcm@openssh.com", seed: 22,
				xfer: openSSHSFTP(ep, tmp, "aes128-gcm@openssh.com"), timing: "process start to exit (login included)"})
	}
	if _, err := exec.LookPath("rclone"); err != nil {
		r.Notes = append(r.Notes, "sftp: rclone not found; its big-file figures skipped")
	} else {
		cs = append(cs,
			sftpBigClient{id: "rclone", cpu: "rclone", name: "rclone sftp backend, its defaults (32 KiB chunks)", seed: 23,
				xfer: rcloneSFTP(ep, tmp, ""), timing: "process start to exit (login included)"},
			sftpBigClient{id: "rclone255", cpu: "rclone255", name: "rclone sftp backend, --sftp-chunk-size 255k", seed: 24,
				xfer: rcloneSFTP(ep, tmp, "255k"), timing: "process start to exit (login included)"})
	}
	return cs
}

// pkgTiming is what the in-process client's figures time.
const pkgTiming = "put: create to close; get: open to last byte; login outside the clock"

// sftpEndpoint is the SFTP frontend of endpoints.json.
type sftpEndpoint struct{ Addr, User, Password string }

// sftpBig puts size bytes through the client's SFTP frontend with each
// client and gets them back, checking the bytes.
func sftpBig(ctx context.Context, r *Report, g *devGrid, tmp string, size int64) error {
	if g.front.SFTP == nil {
		r.Notes = append(r.Notes, "sftp: endpoints.json names no sftp frontend; figures skipped")
		return nil
	}
	ep := sftpEndpoint{Addr: g.front.SFTP.Addr, User: g.front.SFTP.User, Password: g.front.SFTP.Password}
	for _, c := range sftpBigClients(r, ep, tmp) {
		if err := sftpBigOne(ctx, r, g, tmp, size, c); err != nil {
			return err
		}
	}
	return nil
}

// sftpBigOne puts and gets one client's file and adds its figures.
func sftpBigOne(ctx context.Context, r *Report, g *devGrid, tmp string, size int64, c sftpBigClient) error {
	name := sizeName(size)
	what := "sftp (" + c.name + ")"
	in, want, err := frontFile(tmp, "sftp.in", size, c.seed)
	if err != nil {
		return fmt.Errorf("%s put: %w", what, err)
	}
	in.Close()
	defer os.Remove(in.Name())
	remote := "/tarnbench-sftp-" + name + ".bin"
	if c.id != "" {
		remote = "/tarnbench-sftp-" + c.id + "-" + name + ".bin"
	}
	outPath := filepath.Join(tmp, "sftp.out")
	defer os.Remove(outPath)

	var took, client [2]time.Duration
	var grid [3]cpuUse
	grid[0] = g.cpuSnapshot()
	for i, op := range []string{"put", "get"} {
		local := in.Name()
		if op == "get" {
			local = outPath
		}
		took[i], client[i], err = c.xfer(ctx, op, local, remote)
		if err != nil {
			return fmt.Errorf("%s %s of the %s file: %w", what, op, name, err)
		}
		grid[i+1] = g.cpuSnapshot()
	}
	if err := checkBack(outPath, size, want, what+" get of the "+name+" file"); err != nil {
		return err
	}
	for i, op := range []string{"put", "get"} {
		f := Figure{Key: "e2e.sftp." + op + "." + name, Name: "SFTP " + op + " " + name + ", " + c.name, Value: mbps(size, took[i]), Unit: "MB/s", Note: c.timing}
		if c.id == "" {
			addVsPipeline(r, f) // the keys and ceilings of the earlier runs
		} else {
			f.Key = "e2e.sftp." + c.id + "." + op + "." + name
			r.add(r.compare(f, "e2e.cli."+op+"."+name))
		}
		use := cpuUse{grid: grid[i+1].grid - grid[i].grid, client: grid[i+1].client - grid[i].client}
		addSFTPCPU(r, c, op, name, size, use, client[i])
		if c.id == sftpHeadline {
			f.Key = "e2e.sftp.issue8." + op + "." + name
			f.Name = "SFTP " + op + " " + name + ", issue 8's figure: " + c.name
			f.Note = "the same transfer as e2e.sftp." + c.id + "." + op + "." + name + "; ratio to the CLI (issue 8: within 25%, ≥ 0.75)"
			r.add(r.compare(f, "e2e.cli."+op+"."+name))
		}
	}
	return nil
}

// addSFTPCPU adds the CPU per byte of one SFTP transfer: of every process
// (grid and client), of the client node with its plugins, and of the
// client process alone.
func addSFTPCPU(r *Report, c sftpBigClient, op, name string, size int64, use cpuUse, client time.Duration) {
	key := "e2e.cpu.sftp." + c.cpu
	what := "SFTP " + op + " " + name + ", " + c.name
	all := Figure{Key: key + "." + op + "." + name, Name: "CPU per byte, all processes (grid and SFTP client), " + what, Value: nsPerByte(use.grid+client, size), Unit: "CPU ns/B",
		Note: fmt.Sprintf("client node and plugins %.2f, storage nodes and introducer %.2f, the SFTP client process %.2f ns/B",
			nsPerByte(use.client, size), nsPerByte(use.grid-use.client, size), nsPerByte(client, size))}
	r.add(vsCLICost(r, all, "e2e.cpu."+op+"."+name))
	r.add(Figure{Key: key + ".node." + op + "." + name, Name: "CPU per byte, client node and its plugins, " + what, Value: nsPerByte(use.client, size), Unit: "CPU ns/B"})
	r.add(Figure{Key: key + ".clientproc." + op + "." + name, Name: "CPU per byte, the SFTP client process, " + what, Value: nsPerByte(client, size), Unit: "CPU ns/B"})
}

// vsCLICost reads an SFTP transfer's CPU per byte against the CLI's
// (key cli): the ratio is CLI cost / SFTP cost, as addCPU's. When every
// process shares the same cores and CPU bounds both, as on this 2-core
// machine, it is the SFTP rate's ratio to the CLI's that the machine
// allows, whatever the load: wall-clock rates swing with other work,
// CPU per byte hardly.
func vsCLICost(r *Report, f Figure, cli string) Figure {
	c, ok := r.find(cli)
	if !ok || c.Value <= 0 || f.Value <= 0 {
		return f
	}
	f.Ceiling, f.CeilingValue, f.Ratio = c.Key, c.Value, c.Value/f.Value
	return f
}

// pkgSFTP is the client inside the harness: github.com/pkg/sftp over
// golang.org/x/crypto/ssh (aes128-gcm, its first cipher), password auth,
// packet bytes per read and write request, 64 requests in flight.
func pkgSFTP(ep sftpEndpoint, packet int) func(ctx context.Context, op, local, remote string) (time.Duration, time.Duration, error) {
	return func(ctx context.Context, op, local, remote string) (time.Duration, time.Duration, error) {
		cfg := &ssh.ClientConfig{
			User: ep.User,
			Auth: []ssh.AuthMethod{ssh.Password(ep.Password)},
			// The server is the dev grid's own client node on loopback,
			// started by this run with a host key made a moment ago: there
			// is no known key to pin, and no one between the two ends to
			// guard against.
			HostKeyCallback: ssh.InsecureIgnoreHostKey(),
			Timeout:         30 * time.Second,
		}
		conn, err := ssh.Dial("tcp", ep.Addr, cfg)
		if err != nil {
			return 0, 0, fmt.Errorf("dial %s: %w", ep.Addr, err)
		}
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		c, err := sftp.NewClient(conn, sftp.UseConcurrentWrites(true), sftp.MaxPacketUnchecked(packet))
		if err != nil {
			return 0, 0, fmt.Errorf("session on %s: %w", ep.Addr, err)
		}
		defer c.Close()
		if op == "put" {
			in, err := os.Open(local)
			if err != nil {
				return 0, 0, err
			}
			defer in.Close()
			st, err := in.Stat()
			if err != nil {
				return 0, 0, err
			}
			cpu0, t0 := selfCPU(), time.Now()
			f, err := c.Create(remote)
			if err != nil {
				return 0, 0, fmt.Errorf("create %s: %w", remote, err)
			}
			// pkg/sftp's ReadFrom pipelines its writes (64 in flight, as
			// OpenSSH's sftp and rclone do) only when it can tell the
			// reader's size, from an *io.LimitedReader among others; a
			// bare reader made it send one write per round trip, a client
			// no real tool is.
			if _, err := f.ReadFrom(&io.LimitedReader{R: in, N: st.Size()}); err != nil {
				f.Close()
				return 0, 0, fmt.Errorf("write %s: %w", remote, err)
			}
			if err := f.Close(); err != nil {
				return 0, 0, fmt.Errorf("close %s: %w", remote, err)
			}
			return time.Since(t0), selfCPU() - cpu0, nil
		}
		out, err := os.Create(local)
		if err != nil {
			return 0, 0, err
		}
		defer out.Close()
		cpu0, t0 := selfCPU(), time.Now()
		f, err := c.Open(remote)
		if err != nil {
			return 0, 0, fmt.Errorf("open %s: %w", remote, err)
		}
		_, err = f.WriteTo(out)
		f.Close()
		took, cpu := time.Since(t0), selfCPU()-cpu0
		if err != nil {
			return 0, 0, fmt.Errorf("read %s: %w", remote, err)
		}
		return took, cpu, out.Close()
	}
}

// sftpSSHOpts let OpenSSH's sftp log in to a server whose host key was
// made seconds ago by this run (nothing to pin), without touching the
// user's known_hosts.
var sftpSSHOpts = []string{"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"}

// openSSHSFTP is OpenSSH's sftp moving one file in batch mode; cipher,
// when set, is passed as `-c`.
func openSSHSFTP(ep sftpEndpoint, tmp, cipher string) func(ctx context.Context, op, local, remote string) (time.Duration, time.Duration, error) {
	return func(ctx context.Context, op, local, remote string) (time.Duration, time.Duration, error) {
		line := fmt.Sprintf("put %s %s\n", sftpQuote(local), sftpQuote(remote))
		if op == "get" {
			line = fmt.Sprintf("get %s %s\n", sftpQuote(remote), sftpQuote(local))
		}
		return openSSHBatch(ctx, ep, tmp, cipher, line)
	}
}

// haveOpenSSH says whether OpenSSH's sftp and sshpass (it logs in with
// the dev grid's password through it) are installed, and if not, why.
func haveOpenSSH() (bool, string) {
	if _, err := exec.LookPath("sftp"); err != nil {
		return false, "OpenSSH's sftp not found"
	}
	if _, err := exec.LookPath("sshpass"); err != nil {
		return false, "sshpass not found (OpenSSH's sftp logs in with the dev grid's password through it)"
	}
	return true, ""
}

// openSSHBatch runs OpenSSH's sftp with batch as its batch file (`-b`),
// logging in with the password through sshpass; cipher, when set, is
// passed as `-c`. It returns how long sftp ran and its CPU time.
func openSSHBatch(ctx context.Context, ep sftpEndpoint, tmp, cipher, batch string) (time.Duration, time.Duration, error) {
	host, port, err := net.SplitHostPort(ep.Addr)
	if err != nil {
		return 0, 0, fmt.Errorf("sftp address %q: %w", ep.Addr, err)
	}
	bf, err := os.CreateTemp(tmp, "sftp-batch-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(bf.Name())
	_, err = bf.WriteString(batch)
	if cerr := bf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, 0, err
	}
	// BatchMode=no: -b turns it on, and it forbids the password prompt
	// sshpass answers. -e: the password comes from SSHPASS, not argv.
	args := append([]string{"-e", "sftp", "-o", "BatchMode=no", "-b", bf.Name()}, sftpSSHOpts...)
	if cipher != "" {
		args = append(args, "-c", cipher)
	}
	args = append(args, "-P", port, ep.User+"@"+host)
	return runClient(ctx, []string{"SSHPASS=" + ep.Password}, "sshpass", args...)
}

// sftpQuote quotes a path for an sftp batch line.
func sftpQuote(p string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
}

// rcloneSFTP is rclone's sftp backend (`rclone copyto`) with a private,
// empty config and the remote in its environment; chunk, when set, is
// --sftp-chunk-size.
func rcloneSFTP(ep sftpEndpoint, tmp, chunk string) func(ctx context.Context, op, local, remote string) (time.Duration, time.Duration, error) {
	return func(ctx context.Context, op, local, remote string) (time.Duration, time.Duration, error) {
		rc, err := newRclone(tmp)
		if err != nil {
			return 0, 0, err
		}
		if err := rc.sftpRemote(ctx, ep); err != nil {
			return 0, 0, err
		}
		src, dst := local, ":sftp:"+remote
		if op == "get" {
			src, dst = dst, src
		}
		args := []string{"copyto", src, dst, "--config", rc.conf, "--retries", "1", "--low-level-retries", "1", "-q"}
		if chunk != "" {
			args = append(args, "--sftp-chunk-size", chunk)
		}
		return runClient(ctx, rc.env, rc.bin, args...)
	}
}

// sftpRemote sets rc's environment to the SFTP frontend at ep: password
// auth, no shell commands (the server runs none), no hash check, no
// modification times set.
func (rc *rclone) sftpRemote(ctx context.Context, ep sftpEndpoint) error {
	host, port, err := net.SplitHostPort(ep.Addr)
	if err != nil {
		return fmt.Errorf("sftp address %q: %w", ep.Addr, err)
	}
	pass, err := rc.obscure(ctx, ep.Password)
	if err != nil {
		return err
	}
	rc.env = []string{"RCLONE_SFTP_HOST=" + host, "RCLONE_SFTP_PORT=" + port,
		"RCLONE_SFTP_USER=" + ep.User, "RCLONE_SFTP_PASS=" + pass,
		"RCLONE_SFTP_SHELL_TYPE=none", "RCLONE_SFTP_DISABLE_HASHCHECK=true", "RCLONE_SFTP_SET_MODTIME=false"}
	return nil
}

// runClient runs an external client to its exit and returns how long it
// ran and its CPU time (its rusage, which counts the children it waited
// for), failing with its last output lines.
func runClient(ctx context.Context, env []string, name string, args ...string) (time.Duration, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	took := time.Since(t0)
	if err != nil {
		if ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return 0, 0, fmt.Errorf("%s did not finish within %s", name, transferTimeout)
			}
			return 0, 0, ctx.Err()
		}
		msg := strings.TrimSpace(out.String())
		if len(msg) > 1500 {
			msg = "..." + msg[len(msg)-1500:]
		}
		return 0, 0, fmt.Errorf("%s: %w: %s", name, err, msg)
	}
	return took, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// smallOpenSSHDir is the grid folder OpenSSH's `put -r` fills.
const smallOpenSSHDir = "tarnbench-small-openssh"

// smallFilesOpenSSH copies a local folder of n 4 KiB files to the SFTP
// frontend with one OpenSSH `sftp` and `put -r`, and back with `get -r`,
// each process start to exit. sftp moves one file at a time (its 64
// requests in flight are within a file), so this is the rate of a user's
// plain `put -r`, not of a tuned bulk copy.
func smallFilesOpenSSH(ctx context.Context, r *Report, g *devGrid, tmp string, n int) error {
	if g.front.SFTP == nil {
		return nil // noted by the big-file figures
	}
	if ok, why := haveOpenSSH(); !ok {
		r.Notes = append(r.Notes, "sftp: "+why+"; OpenSSH small-file figures skipped")
		return nil
	}
	ep := sftpEndpoint{Addr: g.front.SFTP.Addr, User: g.front.SFTP.User, Password: g.front.SFTP.Password}
	// put -r into "/" makes /NAME of the local folder's NAME.
	up := filepath.Join(tmp, smallOpenSSHDir)
	down := filepath.Join(tmp, "small-openssh-down")
	defer os.RemoveAll(up)
	defer os.RemoveAll(down)
	want, err := writeSmallFiles(up, n, 11)
	if err != nil {
		return err
	}
	cpu0 := g.cpuSnapshot()
	put, _, err := openSSHBatch(ctx, ep, tmp, "", fmt.Sprintf("put -r %s /\n", sftpQuote(up)))
	if err != nil {
		return fmt.Errorf("OpenSSH sftp put -r of small files: %w", err)
	}
	cpu1 := g.cpuSnapshot()
	// get -r into a path that does not exist makes it the folder's copy.
	get, _, err := openSSHBatch(ctx, ep, tmp, "", fmt.Sprintf("get -r %s %s\n", sftpQuote("/"+smallOpenSSHDir), sftpQuote(down)))
	if err != nil {
		return fmt.Errorf("OpenSSH sftp get -r of small files: %w", err)
	}
	if err := checkSmallFiles(down, want, n); err != nil {
		return fmt.Errorf("OpenSSH sftp small files: %w", err)
	}
	note := fmt.Sprintf("one OpenSSH sftp (batch mode, its defaults) with put -r of a local folder to /%s, one with get -r back; process start to exit, one file at a time", smallOpenSSHDir)
	r.add(r.compare(Figure{Key: "e2e.sftp.openssh.put.small", Name: fmt.Sprintf("SFTP put, %d files of 4 KiB, OpenSSH sftp put -r", n), Value: float64(n) / put.Seconds(), Unit: "files/s", Note: note}, "ref.tahoe.sftp.put.small"))
	r.add(r.compare(Figure{Key: "e2e.sftp.openssh.get.small", Name: fmt.Sprintf("SFTP get, %d files of 4 KiB, OpenSSH sftp get -r", n), Value: float64(n) / get.Seconds(), Unit: "files/s", Note: note}, "ref.tahoe.get.small"))
	addSmallCPU(r, "e2e.cpu.sftp.openssh.put.small", "SFTP put with OpenSSH sftp put -r", n, cpu1.grid-cpu0.grid)
	return nil
}
