package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
)

// TestMain lets the test binary stand in for `tarn plugin serve codec
// reedsolomon`, so the codec paths run against a real plugin process
// without building bin/tarn.
func TestMain(m *testing.M) {
	if slices.Equal(os.Args[1:], []string{"plugin", "serve", "codec", codecreedsolomon.Name}) {
		codecreedsolomon.Serve()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPipelineCeiling(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rates []float64
		want  float64
	}{
		{"three equal stages", []float64{300, 300, 300}, 100},
		{"one stage", []float64{42}, 42},
		{"aes hash rs", []float64{6000, 3000, 30000}, 1 / (1.0/6000 + 1.0/3000 + 1.0/30000)},
		{"a stage not measured", []float64{6000, 0, 30000}, 0},
		{"a broken figure", []float64{6000, math.NaN()}, 0},
		{"no stages", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pipelineCeiling(tc.rates...); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("pipelineCeiling(%v) = %v, want %v", tc.rates, got, tc.want)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	r := &Report{}
	r.add(Figure{Key: "c", Value: 200, Unit: "MB/s"})
	r.add(Figure{Key: "zero", Value: 0, Unit: "MB/s"})
	for _, tc := range []struct {
		name, ceil string
		unit       string
		wantRatio  float64
	}{
		{"measured ceiling", "c", "MB/s", 0.25},
		{"unknown ceiling", "nope", "MB/s", 0},
		{"zero ceiling", "zero", "MB/s", 0},
		{"other unit", "c", "files/s", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := r.compare(Figure{Key: "f", Value: 50, Unit: tc.unit}, tc.ceil)
			if f.Ratio != tc.wantRatio {
				t.Fatalf("ratio = %v, want %v", f.Ratio, tc.wantRatio)
			}
			if (f.Ceiling != "") != (tc.wantRatio != 0) {
				t.Fatalf("ceiling = %q with ratio %v", f.Ceiling, f.Ratio)
			}
		})
	}
}

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{{6912.4, "6912"}, {100, "100"}, {45.06, "45.1"}, {0.7181, "0.72"}, {0, "0.00"}} {
		if got := formatValue(tc.v); got != tc.want {
			t.Errorf("formatValue(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// TestReportOutput checks that the table shows each figure with its
// ceiling and ratio, and that the JSON file reads back the same.
func TestReportOutput(t *testing.T) {
	r := &Report{Hash: "BLAKE3", NumCPU: 2, LoadBefore: "1 1 1", LoadAfter: "2 2 2"}
	r.add(Figure{Key: "ceiling.pipeline.1core", Value: 400, Unit: "MB/s"})
	r.add(r.compare(Figure{Key: "e2e.cli.put.256MiB", Value: 100, Unit: "MB/s", Note: "a note"}, "ceiling.pipeline.1core"))
	r.Skipped = []string{"end to end (-skip)"}
	var out bytes.Buffer
	if err := r.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"figure", "ratio",
		"e2e.cli.put.256MiB", "ceiling.pipeline.1core", "0.250",
		"hash of tarn's data path: BLAKE3", "e2e.cli.put.256MiB: a note", "skipped: end to end",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	path := filepath.Join(t.TempDir(), "sub", "results.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Figures) != 2 || back.Figures[1].Ratio != 0.25 || back.Figures[1].Ceiling != "ceiling.pipeline.1core" {
		t.Fatalf("results read back as %+v", back.Figures)
	}
}

func TestWriteJSONBadPath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := (&Report{}).WriteJSON(filepath.Join(file, "results.json"))
	if err == nil || !strings.Contains(err.Error(), "write results") {
		t.Fatalf("WriteJSON under a file: %v, want a write results error", err)
	}
}

// TestCeilings runs every ceiling briefly: each gives a positive rate, the
// TLS link is TLS 1.3, and the pipeline ceiling is below each stage.
func TestCeilings(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a few seconds")
	}
	r := &Report{}
	if err := measureCeilings(context.Background(), r, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	addPipelineCeilings(r, "rs35")
	var keys []string
	for _, f := range r.Figures {
		keys = append(keys, f.Key)
		if !(f.Value > 0) || f.Unit != "MB/s" {
			t.Errorf("%s = %v %s, want a positive MB/s", f.Key, f.Value, f.Unit)
		}
	}
	for _, k := range []string{"aes", "sha256", "blake3", "rs35", "rs310", "pipeline"} {
		for _, s := range []string{".1core", ".allcores"} {
			if !slices.Contains(keys, "ceiling."+k+s) {
				t.Errorf("no figure ceiling.%s%s in %v", k, s, keys)
			}
		}
	}
	tl, _ := r.find("ceiling.tls")
	if !strings.HasPrefix(tl.Note, "cipher suite TLS_") {
		t.Errorf("tls note %q names no TLS 1.3 suite", tl.Note)
	}
	p, _ := r.find("ceiling.pipeline.1core")
	for _, k := range []string{"aes", "blake3", "rs35"} {
		if f, _ := r.find("ceiling." + k + ".1core"); p.Value >= f.Value {
			t.Errorf("pipeline %v >= its stage %s %v", p.Value, k, f.Value)
		}
	}
}

func TestRatesCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := rate(ctx, time.Second, 1, aesWork); err == nil {
		t.Fatal("rate on a cancelled context succeeded")
	}
}

// TestCodecPaths runs the codec figures against real plugin processes (this
// test binary serving the codec) and checks that each path's bytes were
// compared and each plugin path has its ratio.
func TestCodecPaths(t *testing.T) {
	if testing.Short() {
		t.Skip("starts plugin processes")
	}
	r := &Report{}
	if err := measureCodec(context.Background(), r, os.Args[0], 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"encode", "decode"} {
		for _, p := range []string{"inprocess", "shm", "grpc"} {
			f, ok := r.find("codec." + op + "." + p)
			if !ok || !(f.Value > 0) {
				t.Errorf("codec.%s.%s = %+v, want a positive figure", op, p, f)
				continue
			}
			if p != "inprocess" && !(f.Ratio > 0) {
				t.Errorf("codec.%s.%s has no ratio to in process", op, p)
			}
		}
	}
}

func TestCodecCheckCatchesWrongBytes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		decode bool
	}{{"blocks not written", false}, {"segment not written", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newCodecSet(2, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.check("fresh"); err != nil {
				t.Fatalf("fresh set: %v", err)
			}
			s.scramble(tc.decode)
			if err := s.check("scrambled"); err == nil {
				t.Fatal("check passed on scrambled bytes")
			}
		})
	}
}

func TestStartCodecBadBinary(t *testing.T) {
	_, _, err := startCodec("/bin/false", true)
	if err == nil {
		t.Fatal("a binary that is no plugin started")
	}
}

func TestRuns(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pid  int
		bin  string
		want bool
	}{
		{"itself", os.Getpid(), os.Args[0], true},
		{"child", cmd.Process.Pid, sleep, true},
		{"other binary", cmd.Process.Pid, os.Args[0], false},
		{"no such process", 1 << 30, sleep, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := runs(tc.pid, tc.bin); got != tc.want {
				t.Fatalf("runs(%d, %s) = %v, want %v", tc.pid, tc.bin, got, tc.want)
			}
		})
	}
}

func TestPeakWatch(t *testing.T) {
	if kib := rssKiB(os.Getpid(), "VmRSS"); kib <= 0 {
		t.Fatalf("own VmRSS = %d KiB", kib)
	}
	if kib := rssKiB(1<<30, "VmRSS"); kib != 0 {
		t.Fatalf("VmRSS of no process = %d", kib)
	}
	w := watchPeak(os.Getpid())
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i)
	}
	time.Sleep(50 * time.Millisecond)
	peak, how := w.end()
	if peak < 64 {
		t.Fatalf("peak %.1f MiB (%s) after touching 64 MiB", peak, how)
	}
	_ = big[len(big)-1]
}

func TestSizeName(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{256 << 20, "256MiB"}, {1 << 30, "1GiB"}, {3 << 29, "1536MiB"}} {
		if got := sizeName(tc.n); got != tc.want {
			t.Errorf("sizeName(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestEndToEnd runs the end-to-end part, small, on a real dev grid when
// TARN_BIN names a tarn binary, and checks that no grid process outlives it.
func TestEndToEnd(t *testing.T) {
	bin := os.Getenv("TARN_BIN")
	if bin == "" || testing.Short() {
		t.Skip("set TARN_BIN to a tarn binary to run a dev grid")
	}
	tmp := t.TempDir()
	r := &Report{}
	var pids []int
	measureCeilings(context.Background(), r, 20*time.Millisecond)
	err := measureE2Ehook(context.Background(), r, bin, tmp, e2eOptions{
		bigFile: 8 << 20, smallFiles: 10, apiWorkers: 4, giant: 32 << 20,
	}, func(g *devGrid) {
		pids = append(pids, g.cmd.Process.Pid)
		for _, n := range g.ep.Nodes {
			pids = append(pids, n.Pid)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) < 7 {
		t.Fatalf("grid had %d processes, want tarn dev, an introducer, 5 storage nodes and a client", len(pids))
	}
	for _, pid := range pids {
		if runs(pid, bin) {
			t.Errorf("grid process %d still runs", pid)
		}
	}
	for _, k := range []string{"e2e.cli.put.8MiB", "e2e.cli.get.8MiB", "e2e.cli.put.small", "e2e.api.get.small", "e2e.rss.client.put.32MiB", "e2e.rss.client.get.32MiB", "e2e.cpu.put.8MiB", "e2e.cpu.client.get.8MiB", "e2e.webdav.put.8MiB", "e2e.webdav.get.8MiB", "e2e.sftp.put.8MiB", "e2e.sftp.get.8MiB",
		"e2e.cp.put.small", "e2e.cp.get.small", "e2e.webdav.put.small", "e2e.webdav.get.small", "e2e.sftp.put.small", "e2e.sftp.get.small", "e2e.webdav.put.small.replay", "e2e.webdav.get.small.replay", "e2e.verify.small"} {
		f, ok := r.find(k)
		if !ok || !(f.Value > 0) {
			t.Errorf("%s = %+v, want a positive figure", k, f)
		}
	}
	// The other SFTP clients, when their tools are installed (.ci/run
	// installs them): each figure positive, the headline read against the
	// CLI.
	var more, cpuKeys []string
	if ok, _ := haveOpenSSH(); ok {
		more = append(more, "e2e.sftp.openssh.put.8MiB", "e2e.sftp.openssh.get.8MiB", "e2e.sftp.openssh-gcm.get.8MiB",
			"e2e.cpu.sftp.openssh.clientproc.put.8MiB", "e2e.sftp.issue8.put.8MiB", "e2e.sftp.issue8.get.8MiB",
			"e2e.sftp.openssh.put.small", "e2e.sftp.openssh.get.small")
		cpuKeys = append(cpuKeys, "e2e.cpu.sftp.openssh.put.small")
		if f, _ := r.find("e2e.sftp.issue8.get.8MiB"); f.Ceiling != "e2e.cli.get.8MiB" || !(f.Ratio > 0) {
			t.Errorf("the headline SFTP get is not read against the CLI's: %+v", f)
		}
	}
	if _, err := exec.LookPath("rclone"); err == nil {
		more = append(more, "e2e.sftp.rclone.put.8MiB", "e2e.sftp.rclone255.get.8MiB", "e2e.cpu.sftp.rclone255.node.put.8MiB",
			"e2e.sftp.put.small.t16", "e2e.sftp.get.small.t16")
		cpuKeys = append(cpuKeys, "e2e.cpu.sftp.put.small", "e2e.cpu.sftp.put.small.t16", "e2e.cpu.webdav.put.small")
	}
	// 10 small files may cost the grid less than its 10 ms ticks show.
	for _, k := range cpuKeys {
		if f, ok := r.find(k); !ok || f.Value < 0 || f.Unit != "CPU ms/file" {
			t.Errorf("%s = %+v, want CPU ms per file", k, f)
		}
	}
	if f, _ := r.find("e2e.cpu.sftp.pkgsftp255.put.8MiB"); f.Ceiling != "e2e.cpu.put.8MiB" || !(f.Ratio > 0) {
		t.Errorf("an SFTP put's CPU per byte is not read against the CLI's: %+v", f)
	}
	for _, k := range append(more, "e2e.sftp.pkgsftp255.put.8MiB", "e2e.sftp.pkgsftp255.get.8MiB", "e2e.cpu.sftp.pkgsftp32.get.8MiB",
		"e2e.cpu.sftp.pkgsftp255.clientproc.put.8MiB", "e2e.cpu.sftp.pkgsftp255.node.get.8MiB") {
		f, ok := r.find(k)
		if !ok || !(f.Value > 0) {
			t.Errorf("%s = %+v, want a positive figure", k, f)
		}
	}
	if f, _ := r.find("e2e.cli.put.8MiB"); !(f.Ratio > 0) {
		t.Errorf("put has no ratio to the pipeline ceiling: %+v", f)
	}
	for k, ref := range map[string]string{"e2e.sftp.put.small": "ref.tahoe.sftp.put.small", "e2e.webdav.get.small": "ref.tahoe.get.small", "e2e.verify.small": "ref.tahoe.verify"} {
		if f, _ := r.find(k); f.Ceiling != ref || !(f.Ratio > 0) {
			t.Errorf("%s is not compared with %s: %+v", k, ref, f)
		}
	}
}

func TestRunRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    options
		want string
	}{
		{"unknown part", options{skip: "ceilings,nope"}, "-skip nope"},
		{"no binary", options{skip: "ceilings", tarn: filepath.Join(t.TempDir(), "tarn")}, "tarn binary"},
		{"binary without version", options{skip: "ceilings", tarn: "/bin/false"}, "version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(context.Background(), tc.o, os.Stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestGridThatDies checks that a tarn dev that exits at once is reported
// with its output, not waited on.
func TestGridThatDies(t *testing.T) {
	script := filepath.Join(t.TempDir(), "tarn")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho grid broke >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err := startGrid(context.Background(), script, t.TempDir(), 5)
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "grid broke") {
		t.Fatalf("startGrid: %v, want an exit error with the output", err)
	}
	if time.Since(t0) > 10*time.Second {
		t.Fatalf("took %v to notice", time.Since(t0))
	}
}

func TestStatusKiB(t *testing.T) {
	const status = "Name:\ttarn\nVmPeak:\t 2000 kB\nVmHWM:\t    85700 kB\nVmRSS:\t   25812 kB\nThreads:\t9\n"
	for _, tc := range []struct {
		name, text, field string
		want              int64
	}{
		{"hwm", status, "VmHWM", 85700},
		{"rss", status, "VmRSS", 25812},
		{"missing", status, "VmSwap", 0},
		{"prefix of another field", status, "Vm", 0},
		{"not in kB", status, "Threads", 0},
		{"negative", "VmRSS:\t-5 kB\n", "VmRSS", 0},
		{"garbage", "VmRSS:\tlots kB\n", "VmRSS", 0},
		{"empty", "", "VmRSS", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statusKiB(strings.NewReader(tc.text), tc.field); got != tc.want {
				t.Fatalf("statusKiB(%q) = %d, want %d", tc.field, got, tc.want)
			}
		})
	}
}

// FuzzStatusKiB: any text gives a size >= 0 and never panics; a well-formed
// line gives its number back.
func FuzzStatusKiB(f *testing.F) {
	f.Add("VmHWM:\t    85700 kB\n", int64(85700))
	f.Add("Name:\tx\nVmHWM: 1 kB", int64(3))
	f.Fuzz(func(t *testing.T, text string, n int64) {
		if got := statusKiB(strings.NewReader(text), "VmHWM"); got < 0 {
			t.Fatalf("negative size %d", got)
		}
		if n < 0 {
			n = -n
		}
		if n < 0 {
			return
		}
		line := fmt.Sprintf("VmHWM:\t%d kB\n", n)
		if got := statusKiB(strings.NewReader(line+text), "VmHWM"); got != n {
			t.Fatalf("statusKiB(%q) = %d, want %d", line, got, n)
		}
	})
}

func TestBaseline(t *testing.T) {
	dir := t.TempDir()
	old := &Report{}
	old.add(Figure{Key: "e2e.cli.put.256MiB", Value: 50, Unit: "MB/s"})
	path := filepath.Join(dir, "old.json")
	if err := old.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	base, err := readBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &Report{}
	r.add(Figure{Key: "e2e.cli.put.256MiB", Value: 100, Unit: "MB/s"})
	r.add(Figure{Key: "e2e.cli.get.256MiB", Value: 70, Unit: "MB/s"})
	var out bytes.Buffer
	if err := r.WriteTable(&out, base...); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.Contains(lines[0], "x before") {
		t.Fatalf("no baseline columns: %q", lines[0])
	}
	if f := strings.Fields(lines[1]); f[len(f)-2] != "50.0" || f[len(f)-1] != "2.00" {
		t.Fatalf("put line %q: want before 50.0 and x before 2.00", lines[1])
	}
	if f := strings.Fields(lines[2]); f[len(f)-1] != "-" {
		t.Fatalf("get line %q: want no change shown", lines[2])
	}

	for _, tc := range []struct{ name, content string }{
		{"not json", "figure value\n"},
		{"no figures", "{}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			os.WriteFile(p, []byte(tc.content), 0o644)
			if _, err := readBaseline(p); err == nil || !strings.Contains(err.Error(), "baseline") {
				t.Fatalf("readBaseline: %v, want a baseline error", err)
			}
		})
	}
	if _, err := readBaseline(filepath.Join(dir, "none")); err == nil {
		t.Fatal("readBaseline of a missing file succeeded")
	}
}

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		ok         bool
	}{
		{"plain", "1234 (tarn) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0", 3250 * time.Millisecond, true},
		{"name with spaces and parens", "99 (a) b (c)) R 1 2 3 4 5 6 7 8 9 10 7 3 0 0", 100 * time.Millisecond, true},
		{"short", "1 (x) S 1 2 3", 0, false},
		{"no name", "1 x S 1 2 3 4 5 6 7 8 9 10 11 12 13", 0, false},
		{"not numbers", "1 (x) S 1 2 3 4 5 6 7 8 9 10 u s 0", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseStatCPU(tc.stat)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("parseStatCPU = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add("1234 (tarn) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0")
	f.Add("1 ()) S")
	f.Fuzz(func(t *testing.T, stat string) {
		if d, ok := parseStatCPU(stat); d < 0 || (!ok && d != 0) {
			t.Fatalf("parseStatCPU(%q) = %v, %v", stat, d, ok)
		}
	})
}

// TestTreeCPU burns CPU in a child process and finds it through the tree.
func TestTreeCPU(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !slices.Contains(children(os.Getpid()), cmd.Process.Pid) {
		t.Fatalf("children of the test do not list its child %d", cmd.Process.Pid)
	}
	deadline := time.Now().Add(20 * time.Second)
	for treeCPU(os.Getpid())-mustCPU(t, os.Getpid()) < 100*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatal("the child's CPU time never showed in the tree")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustCPU(t *testing.T, pid int) time.Duration {
	d, ok := procCPU(pid)
	if !ok {
		t.Fatalf("no CPU time for %d", pid)
	}
	return d
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		name string
		ds   []time.Duration
		want time.Duration
	}{
		{"one", []time.Duration{5}, 5},
		{"odd, unsorted, with a stall", []time.Duration{3, 1000, 2}, 3},
		{"even", []time.Duration{4, 1, 3, 2}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := median(tc.ds); got != tc.want {
				t.Fatalf("median = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCheckSmallFiles: what comes back must be n of the files put, each
// with its bytes.
func TestCheckSmallFiles(t *testing.T) {
	want := map[string][]byte{"a": []byte("one"), "b": []byte("two"), "c": []byte("three")}
	for _, tc := range []struct {
		name  string
		files map[string]string
		n     int
		ok    bool
	}{
		{"all back", map[string]string{"a": "one", "b": "two", "c": "three"}, 3, true},
		{"the ones that arrived", map[string]string{"a": "one", "c": "three"}, 2, true},
		{"one missing", map[string]string{"a": "one", "c": "three"}, 3, false},
		{"other bytes", map[string]string{"a": "one", "b": "tw0"}, 2, false},
		{"never put", map[string]string{"a": "one", "z": "two"}, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := checkSmallFiles(dir, want, tc.n); (err == nil) != tc.ok {
				t.Fatalf("checkSmallFiles: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
