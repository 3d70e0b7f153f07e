package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tarnfs/tarn/frontends/webdav/davreplay"
)

// The small-file figures through WebDAV and SFTP use rclone, a real
// desktop-class client (installed by .ci/run), with its default
// concurrency: 4 transfers and 8 checkers. rclone copies a local folder of
// 4 KiB files to a new folder of the frontend, then copies that folder back
// to a fresh local one; every file is compared with what was put.
const (
	rcloneTransfers = 4
	rcloneCheckers  = 8
	// rcloneManyTransfers is the count docs/sftp.md recommends for many
	// small files through SFTP (the grid's cost per file falls with more
	// files in flight); measured beside the default.
	rcloneManyTransfers = 16
)

// Tahoe-LAFS 1.18 on a machine like this one (issue 8; FIELD-NOTES): the
// reference the small-file and verify figures are read against. They are
// quoted, not measured in this run; their keys start with "ref.".
var tahoeRefs = []Figure{
	{Key: "ref.tahoe.cli.put.small", Name: "Tahoe-LAFS 1.18 CLI, 1,000 files of 4 KiB up", Value: 20, Unit: "files/s"},
	{Key: "ref.tahoe.sftp.put.small", Name: "Tahoe-LAFS 1.18 SFTP, 1,000 files of 4 KiB up", Value: 3, Unit: "files/s"},
	{Key: "ref.tahoe.get.small", Name: "Tahoe-LAFS 1.18, 1,000 files of 4 KiB down", Value: 56, Unit: "files/s"},
	{Key: "ref.tahoe.verify", Name: "Tahoe-LAFS 1.18 deep-check --verify --repair of 1,002 objects", Value: 9, Unit: "objects/s"},
}

// addTahoeRefs adds the quoted Tahoe-LAFS figures once.
func addTahoeRefs(r *Report) {
	if _, ok := r.find(tahoeRefs[0].Key); ok {
		return
	}
	for _, f := range tahoeRefs {
		f.Note = "quoted from issue 8 (Tahoe-LAFS 1.18, 2 cores, loopback grid of 5 storage nodes, 3-of-5), not measured in this run"
		r.add(f)
	}
}

// smallDirs are the grid folders the frontend small-file figures fill.
const (
	smallWebDAVDir = "tarnbench-small-webdav"
	smallSFTPDir   = "tarnbench-small-sftp"
)

// rclone runs one rclone command with a private, empty config and the
// remote's settings in its environment.
type rclone struct {
	bin  string
	conf string
	env  []string
}

func newRclone(tmp string) (*rclone, error) {
	bin, err := exec.LookPath("rclone")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(tmp, "rclone.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		return nil, err
	}
	return &rclone{bin: bin, conf: conf}, nil
}

// obscure returns password in rclone's obscured form, as its config wants.
func (rc *rclone) obscure(ctx context.Context, password string) (string, error) {
	cmd := exec.CommandContext(ctx, rc.bin, "obscure", "-")
	cmd.Stdin = strings.NewReader(password)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("rclone obscure: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// copy runs `rclone copy SRC DST` with transfers files in flight and fails with rclone's last lines.
// With limit > 0 rclone starts no transfer after limit and lets those
// under way finish (--max-duration, --cutoff-mode soft); it then exits
// non-zero, which copy does not count as a failure: the caller counts
// what arrived.
func (rc *rclone) copy(ctx context.Context, src, dst string, transfers int, limit time.Duration) error {
	args := []string{"copy", src, dst,
		"--config", rc.conf, "--transfers", fmt.Sprint(transfers), "--checkers", fmt.Sprint(rcloneCheckers),
		// One try: a failure must fail the run, not be hidden in a retry
		// that only shows as a lower rate.
		"--retries", "1", "--low-level-retries", "1", "-q"}
	if limit > 0 {
		args = append(args, "--max-duration", limit.String(), "--cutoff-mode", "soft")
	}
	t0 := time.Now()
	err := rc.run(ctx, args...)
	if err != nil && limit > 0 && time.Since(t0) >= limit && ctx.Err() == nil {
		return nil // stopped by --max-duration
	}
	return err
}

// count returns how many files the remote folder holds.
func (rc *rclone) count(ctx context.Context, remote string) (int, error) {
	cmd := exec.CommandContext(ctx, rc.bin, "lsf", remote, "--files-only", "--config", rc.conf, "-q")
	cmd.Env = append(os.Environ(), rc.env...)
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("rclone lsf %s: %w", remote, err)
	}
	return len(strings.Fields(string(out))), nil
}

// run runs rclone with args and fails with its last lines.
func (rc *rclone) run(ctx context.Context, args ...string) error {
	src, dst := args[1], args[2]
	cmd := exec.CommandContext(ctx, rc.bin, args...)
	cmd.Env = append(os.Environ(), rc.env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Stdout = &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := strings.TrimSpace(errb.String())
		if len(msg) > 1500 {
			msg = "..." + msg[len(msg)-1500:]
		}
		return fmt.Errorf("rclone copy %s %s: %w: %s", src, dst, err, msg)
	}
	return nil
}

// writeSmallFiles writes n distinct 4 KiB files (seeded by seed) to dir
// and returns their contents by name.
func writeSmallFiles(dir string, n int, seed byte) (map[string][]byte, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := rand.NewChaCha8([32]byte{seed, 's'})
	out := make(map[string][]byte, n)
	for i := range n {
		b := make([]byte, 4096)
		r.Read(b)
		name := fmt.Sprintf("f%04d", i)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, err
		}
		out[name] = b
	}
	return out, nil
}

// checkSmallFiles fails unless dir holds exactly n files, each one of
// want with its bytes.
func checkSmallFiles(dir string, want map[string][]byte, n int) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) != n {
		return fmt.Errorf("%d files came back, %d were put", len(ents), n)
	}
	for _, e := range ents {
		w, ok := want[e.Name()]
		if !ok {
			return fmt.Errorf("file %s came back, and was never put", e.Name())
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		if !bytes.Equal(b, w) {
			return fmt.Errorf("file %s came back with other bytes than were put", e.Name())
		}
	}
	return nil
}

// smallFilesFrontends measures n 4 KiB files through `tarn cp -r`, then
// through WebDAV and SFTP with rclone (each upload stopped after limit,
// when it is > 0), then with rclone's WebDAV requests unpaced, and
// deep-checks with --verify the folder cp filled; then SFTP with rclone
// at 16 transfers and with OpenSSH's sftp.
// Frontends endpoints.json does not name are skipped with a note; so are
// the rclone figures when rclone is not installed.
func smallFilesFrontends(ctx context.Context, r *Report, g *devGrid, tmp string, n int, limit time.Duration) error {
	addTahoeRefs(r)
	if err := smallFilesCp(ctx, r, g, tmp, n); err != nil {
		return err
	}
	rc, err := newRclone(tmp)
	if err != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("rclone not found (%v): WebDAV and SFTP small-file figures skipped", err))
	} else {
		for _, via := range []string{"webdav", "sftp"} {
			if err := smallFilesVia(ctx, r, g, rc, tmp, n, via, rcloneTransfers, limit); err != nil {
				return err
			}
		}
	}
	if err := smallFilesReplay(ctx, r, g, n); err != nil {
		return err
	}
	if err := deepVerify(ctx, r, g, smallCpDir, n); err != nil {
		return err
	}
	// The other SFTP clients last, so that the figures above see the grid
	// as in earlier runs: rclone at the --transfers 16 docs/sftp.md
	// recommends, and OpenSSH's put -r.
	if rc != nil {
		if err := smallFilesVia(ctx, r, g, rc, tmp, n, "sftp", rcloneManyTransfers, limit); err != nil {
			return err
		}
	}
	return smallFilesOpenSSH(ctx, r, g, tmp, n)
}

// smallCpDir is the grid folder `tarn cp -r` fills (and deep-check reads).
const smallCpDir = "tarnbench-small-cp"

// smallFilesCp copies a local folder of n 4 KiB files into the grid's root
// directory with one `tarn cp -r`, and back into a fresh local folder.
func smallFilesCp(ctx context.Context, r *Report, g *devGrid, tmp string, n int) error {
	if g.ep.RootCap == "" {
		r.Notes = append(r.Notes, "cp -r: endpoints.json names no root directory; cp and verify figures skipped")
		return nil
	}
	up := filepath.Join(tmp, smallCpDir)
	down := filepath.Join(tmp, "small-cp-down")
	defer os.RemoveAll(up)
	defer os.RemoveAll(down)
	want, err := writeSmallFiles(up, n, 9)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := g.cli(ctx, nil, nil, "cp", "-r", up, g.ep.RootCap+"/"); err != nil {
		return fmt.Errorf("small files up: %w", err)
	}
	put := time.Since(t0)
	t1 := time.Now()
	if _, err := g.cli(ctx, nil, nil, "cp", "-r", g.ep.RootCap+"/"+smallCpDir, down); err != nil {
		return fmt.Errorf("small files down: %w", err)
	}
	get := time.Since(t1)
	if err := checkSmallFiles(down, want, n); err != nil {
		return fmt.Errorf("tarn cp -r of small files: %w", err)
	}
	note := fmt.Sprintf("one tarn cp -r of a local folder to /%s and one back", smallCpDir)
	r.add(r.compare(Figure{Key: "e2e.cp.put.small", Name: fmt.Sprintf("tarn cp -r up, %d files of 4 KiB", n), Value: float64(n) / put.Seconds(), Unit: "files/s", Note: note}, "ref.tahoe.cli.put.small"))
	r.add(r.compare(Figure{Key: "e2e.cp.get.small", Name: fmt.Sprintf("tarn cp -r down, %d files of 4 KiB", n), Value: float64(n) / get.Seconds(), Unit: "files/s", Note: note}, "ref.tahoe.get.small"))
	return nil
}

// smallFilesVia measures one frontend ("webdav" or "sftp") with rclone
// moving transfers files at a time. At rclone's default (4) the keys are
// e2e.VIA.{put,get}.small; at another count they end in ".tN" and the
// files (other bytes) go to a folder of their own.
func smallFilesVia(ctx context.Context, r *Report, g *devGrid, rc *rclone, tmp string, n int, via string, transfers int, limit time.Duration) error {
	var remote, folder, label string
	var seed byte
	switch via {
	case "webdav":
		ep := g.front.WebDAV
		if ep == nil {
			r.Notes = append(r.Notes, "webdav: no webdav frontend; small-file figures skipped")
			return nil
		}
		pass, err := rc.obscure(ctx, ep.Password)
		if err != nil {
			return err
		}
		rc.env = []string{"RCLONE_WEBDAV_URL=" + ep.URL, "RCLONE_WEBDAV_VENDOR=other",
			"RCLONE_WEBDAV_USER=" + ep.User, "RCLONE_WEBDAV_PASS=" + pass}
		remote, folder, label, seed = ":webdav:"+smallWebDAVDir, smallWebDAVDir, "WebDAV", 5
	case "sftp":
		ep := g.front.SFTP
		if ep == nil {
			r.Notes = append(r.Notes, "sftp: no sftp frontend; small-file figures skipped")
			return nil
		}
		// No shell on the server: rclone must not try to run md5sum there.
		if err := rc.sftpRemote(ctx, sftpEndpoint{Addr: ep.Addr, User: ep.User, Password: ep.Password}); err != nil {
			return err
		}
		remote, folder, label, seed = ":sftp:"+smallSFTPDir, smallSFTPDir, "SFTP", 8
	default:
		return fmt.Errorf("small files through %q: no such frontend", via)
	}
	suffix := ""
	if transfers != rcloneTransfers {
		suffix = fmt.Sprintf(".t%d", transfers)
		folder += fmt.Sprintf("-t%d", transfers)
		remote += fmt.Sprintf("-t%d", transfers)
		seed += 100
	}
	up := filepath.Join(tmp, "small-"+via+suffix+"-up")
	down := filepath.Join(tmp, "small-"+via+suffix+"-down")
	defer os.RemoveAll(up)
	defer os.RemoveAll(down)
	want, err := writeSmallFiles(up, n, seed)
	if err != nil {
		return err
	}
	cpu0, t0 := g.cpuSnapshot(), time.Now()
	if err := rc.copy(ctx, up, remote, transfers, limit); err != nil {
		return fmt.Errorf("%s small files up: %w", label, err)
	}
	put := time.Since(t0)
	cpu1 := g.cpuSnapshot()
	got, err := rc.count(ctx, remote)
	if err != nil {
		return fmt.Errorf("%s small files: %w", label, err)
	}
	if got == 0 || got > n {
		return fmt.Errorf("%s small files: %d of %d files arrived", label, got, n)
	}
	t1 := time.Now()
	if err := rc.copy(ctx, remote, down, transfers, 0); err != nil {
		return fmt.Errorf("%s small files down: %w", label, err)
	}
	get := time.Since(t1)
	if err := checkSmallFiles(down, want, got); err != nil {
		return fmt.Errorf("%s small files: %w", label, err)
	}
	note := fmt.Sprintf("rclone copy of a folder to /%s and back (rclone %s backend, %d transfers, %d checkers); includes rclone's start and listing", folder, via, transfers, rcloneCheckers)
	if got < n {
		note += fmt.Sprintf("; the upload was stopped after %s (-front-time) with %d of %d files in, and both rates are over those %d", limit, got, n, got)
	}
	upRef := "ref.tahoe.cli.put.small"
	if via == "sftp" {
		upRef = "ref.tahoe.sftp.put.small"
	}
	r.add(r.compare(Figure{Key: "e2e." + via + ".put.small" + suffix, Name: fmt.Sprintf("%s put, %d files of 4 KiB, rclone %d transfers", label, got, transfers), Value: float64(got) / put.Seconds(), Unit: "files/s", Note: note}, upRef))
	r.add(r.compare(Figure{Key: "e2e." + via + ".get.small" + suffix, Name: fmt.Sprintf("%s get, %d files of 4 KiB, rclone %d transfers", label, got, transfers), Value: float64(got) / get.Seconds(), Unit: "files/s", Note: note}, "ref.tahoe.get.small"))
	addSmallCPU(r, "e2e.cpu."+via+".put.small"+suffix, fmt.Sprintf("%s put with rclone at %d transfers", label, transfers), got, cpu1.grid-cpu0.grid)
	return nil
}

// addSmallCPU adds the grid's CPU time per file of a small-file upload:
// every node and its plugins, from /proc (10 ms ticks), client tool not
// counted. Steadier than files/s on a loaded machine.
func addSmallCPU(r *Report, key, what string, files int, grid time.Duration) {
	if files <= 0 {
		return
	}
	r.add(Figure{Key: key, Name: "grid CPU per 4 KiB file, " + what, Value: float64(grid.Microseconds()) / 1e3 / float64(files), Unit: "CPU ms/file",
		Note: "every node and its plugins (client node, storage nodes, introducer), not the client tool"})
}

// smallReplayDir is the grid folder the WebDAV replay fills.
const smallReplayDir = "tarnbench-small-davreplay"

// smallFilesReplay sends the WebDAV requests rclone 1.60 sends per file
// (package davreplay), 4 files in flight as rclone's transfers, without
// rclone's pacer: rclone's webdav backend starts one request per 10 ms at
// most, so its own figures cannot pass 100 requests/s (≈ 33 files/s up,
// 3 requests a file; 100 down) against any server. This one measures what
// the server does with the same requests.
func smallFilesReplay(ctx context.Context, r *Report, g *devGrid, n int) error {
	ep := g.front.WebDAV
	if ep == nil {
		return nil // noted by smallFilesVia
	}
	want := smallFileSet(n, 6)
	cfg := davreplay.Config{URL: ep.URL, User: ep.User, Password: ep.Password, Folder: smallReplayDir, Workers: rcloneTransfers}
	put, err := davreplay.Up(ctx, cfg, want)
	if err != nil {
		return fmt.Errorf("WebDAV replay of small files up: %w", err)
	}
	get, err := davreplay.Down(ctx, cfg, want)
	if err != nil {
		return fmt.Errorf("WebDAV replay of small files down: %w", err)
	}
	note := fmt.Sprintf("rclone 1.60's WebDAV requests per file (up: MKCOL of the folder, PUT, PROPFIND; down: GET, bytes checked), %d in flight, without rclone's 10 ms pacer (package davreplay), to /%s", rcloneTransfers, smallReplayDir)
	r.add(r.compare(Figure{Key: "e2e.webdav.put.small.replay", Name: fmt.Sprintf("WebDAV put, rclone's requests unpaced, %d files of 4 KiB", n), Value: float64(n) / put.Seconds(), Unit: "files/s", Note: note}, "ref.tahoe.cli.put.small"))
	r.add(r.compare(Figure{Key: "e2e.webdav.get.small.replay", Name: fmt.Sprintf("WebDAV get, rclone's requests unpaced, %d files of 4 KiB", n), Value: float64(n) / get.Seconds(), Unit: "files/s", Note: note}, "ref.tahoe.get.small"))
	return nil
}

// smallFileSet is n distinct 4 KiB files (seeded by seed) in memory.
func smallFileSet(n int, seed byte) []davreplay.File {
	rnd := rand.NewChaCha8([32]byte{seed, 's'})
	out := make([]davreplay.File, n)
	for i := range out {
		b := make([]byte, 4096)
		rnd.Read(b)
		out[i] = davreplay.File{Name: fmt.Sprintf("f%04d", i), Data: b}
	}
	return out
}

// deepVerify runs `tarn deep-check --verify --json` over the grid folder
// of n small files and records objects per second: every share of every
// file is read and checked.
func deepVerify(ctx context.Context, r *Report, g *devGrid, folder string, n int) error {
	if _, ok := r.find("e2e.cp.put.small"); !ok {
		return nil // no folder to check (noted by smallFilesCp)
	}
	target := g.ep.RootCap + "/" + folder
	t0 := time.Now()
	out, err := g.run(ctx, nil, nil, "deep-check", "--verify", "--json", target)
	took := time.Since(t0)
	if err != nil {
		return err
	}
	var sum *deepSummary
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var line struct {
			Summary *deepSummary `json:"summary"`
			Error   string       `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("deep-check --json: line %q: %w", sc.Text(), err)
		}
		if line.Error != "" {
			return fmt.Errorf("deep-check: %s", line.Error)
		}
		if line.Summary != nil {
			sum = line.Summary
		}
	}
	if sum == nil {
		return errors.New("deep-check --json printed no summary")
	}
	if sum.Files != n || sum.Healthy != sum.Objects {
		return fmt.Errorf("deep-check --verify of %s: %d files (want %d), %d of %d objects healthy", folder, sum.Files, n, sum.Healthy, sum.Objects)
	}
	r.add(r.compare(Figure{Key: "e2e.verify.small", Name: fmt.Sprintf("deep-check --verify, %d objects", sum.Objects), Value: float64(sum.Objects) / took.Seconds(), Unit: "objects/s",
		Note: fmt.Sprintf("tarn deep-check --verify of /%s (%d files of 4 KiB and its directory), process start to exit; every share read and checked", folder, sum.Files)}, "ref.tahoe.verify"))
	return nil
}

type deepSummary struct {
	Objects int `json:"objects"`
	Files   int `json:"files"`
	Healthy int `json:"healthy"`
}
