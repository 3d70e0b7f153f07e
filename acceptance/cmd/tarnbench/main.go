// Command tarnbench is the harness behind `make bench`: in one run it
// measures this machine's ceilings in process (AES-256-CTR, SHA-256,
// BLAKE3, Reed-Solomon, loopback TCP and TLS), the codec plugin's paths
// (in process, shared memory, gRPC fallback), and tarn end to end on a
// fresh `tarn dev` grid, and prints each figure beside the ceiling it is
// read against. The same table goes to a JSON file so runs can be compared.
//
// A figure that comes out low never fails the run; wrong bytes or an error
// do (exit status 1). See docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type options struct {
	tarn    string
	out     string
	quick   bool
	big     bool
	d       time.Duration
	files   int
	workers int
	skip    string // comma-separated parts to skip: ceilings, codec, e2e
	base    string // an earlier results file to compare with
	front   time.Duration
}

func main() {
	var o options
	def := os.Getenv("TARN_BIN")
	if def == "" {
		def = "bin/tarn"
	}
	flag.StringVar(&o.tarn, "tarn", def, "the tarn binary (default $TARN_BIN, then bin/tarn)")
	flag.StringVar(&o.out, "out", "bench/results.json", "where to write the results as JSON")
	flag.BoolVar(&o.quick, "quick", false, "shorter ceilings, 200 small files, no 1 GiB transfer")
	flag.BoolVar(&o.big, "big", true, "measure the client's peak RSS during a 1 GiB put and get")
	flag.DurationVar(&o.d, "time", 1500*time.Millisecond, "how long each ceiling and codec figure is measured")
	flag.IntVar(&o.files, "files", 1000, "how many 4 KiB files to put and get")
	flag.IntVar(&o.workers, "api-workers", 8, "requests in flight for the API small-file figure")
	flag.StringVar(&o.base, "baseline", "", "an earlier results JSON: show its values and the change beside this run's")
	flag.DurationVar(&o.front, "front-time", 60*time.Second, "stop each WebDAV and SFTP small-file upload after this long (0: never) and rate the files that arrived")
	flag.StringVar(&o.skip, "skip", "", "comma-separated parts not to run: ceilings, codec, e2e")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: tarnbench [flags]\n\nMeasures this machine's ceilings and tarn against them; see docs/benchmarks.md.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "tarnbench: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if o.quick {
		o.big = false
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["time"] {
			o.d = 500 * time.Millisecond
		}
		if !set["files"] {
			o.files = 200
		}
	}
	var baseline []Figure
	if o.base != "" {
		var err error
		if baseline, err = readBaseline(o.base); err != nil {
			fmt.Fprintf(os.Stderr, "tarnbench: %v\n", err)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := run(ctx, o, os.Stderr)
	if r != nil {
		r.WriteTable(os.Stdout, baseline...)
		if werr := r.WriteJSON(o.out); werr != nil {
			fmt.Fprintf(os.Stderr, "tarnbench: %v\n", werr)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "tarnbench: results in %s\n", o.out)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tarnbench: %v\n", err)
		os.Exit(1)
	}
}

// run measures every part not skipped, in order, and returns what it
// measured even when a part fails (with that part's error).
func run(ctx context.Context, o options, log *os.File) (*Report, error) {
	skip := map[string]bool{}
	for _, s := range strings.Split(o.skip, ",") {
		if s = strings.TrimSpace(s); s != "" {
			switch s {
			case "ceilings", "codec", "e2e":
				skip[s] = true
			default:
				return nil, fmt.Errorf("-skip %s: want ceilings, codec or e2e", s)
			}
		}
	}
	host, _ := os.Hostname()
	r := &Report{
		Started: time.Now().UTC(), Host: host, GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(),
		LoadBefore: loadAvg(),
		Hash:       "BLAKE3 (github.com/zeebo/blake3, derive-key mode; host/tagged)",
	}
	defer func() {
		r.LoadAfter = loadAvg()
		r.Took = time.Since(r.Started).Seconds()
	}()
	needTarn := !skip["codec"] || !skip["e2e"]
	if needTarn {
		if _, err := os.Stat(o.tarn); err != nil {
			return r, fmt.Errorf("tarn binary: %w (build it with `make build`, or give -tarn or TARN_BIN)", err)
		}
		v, err := exec.CommandContext(ctx, o.tarn, "version").Output()
		if err != nil {
			return r, fmt.Errorf("%s version: %w", o.tarn, err)
		}
		r.Tarn = strings.TrimSpace(string(v))
	}
	step := func(what string) { fmt.Fprintf(log, "tarnbench: %s (load %s)\n", what, loadAvg()) }

	if skip["ceilings"] {
		r.Skipped = append(r.Skipped, "ceilings (-skip)")
	} else {
		step("ceilings")
		if err := measureCeilings(ctx, r, o.d); err != nil {
			return r, err
		}
	}
	if skip["codec"] {
		r.Skipped = append(r.Skipped, "codec plugin paths (-skip)")
	} else {
		step("codec plugin paths")
		if err := measureCodec(ctx, r, o.tarn, o.d); err != nil {
			return r, err
		}
	}
	if skip["e2e"] {
		r.Skipped = append(r.Skipped, "end to end (-skip)")
		addPipelineCeilings(r, "rs35")
		return r, nil
	}
	step("end to end on a tarn dev grid")
	tmp, err := os.MkdirTemp("", "tarnbench-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(tmp)
	eo := e2eOptions{bigFile: 256 << 20, smallFiles: o.files, apiWorkers: max(1, o.workers), frontLimit: o.front}
	if o.big {
		eo.giant = 1 << 30
	} else {
		r.Skipped = append(r.Skipped, "1 GiB peak-RSS transfer (-quick or -big=false)")
	}
	err = measureE2E(ctx, r, o.tarn, tmp, eo)
	if _, ok := r.find("ceiling.pipeline.1core"); !ok {
		addPipelineCeilings(r, "rs35")
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return r, errors.New("interrupted")
		}
		return r, fmt.Errorf("end to end: %w", err)
	}
	return r, nil
}
