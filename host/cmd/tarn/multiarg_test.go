//go:build unix

package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestMultiArgGoesOn: mkdir, rm and cat with several paths go on past one
// that fails, as rm and cat do, printing one line for each failure and
// exiting 1; the first failure used to stop the rest, so "tarn rm a
// missing b" kept b without saying so.
func TestMultiArgGoesOn(t *testing.T) {
	bin := buildTarn(t)
	dir, d := homeNode(t)
	ctx := context.Background()
	for _, f := range []struct{ path, data string }{{"/x", "X"}, {"/y", "Y"}} {
		if err := d.Put(ctx, f.path, strings.NewReader(f.data), int64(len(f.data)), nil); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		args   []string
		stdout string
		stderr []string
	}{
		{"cat", []string{"cat", "home:x", "home:missing", "home:y", "home:gone"}, "XY",
			[]string{"tarn: cat home:missing: no such file or directory", "tarn: cat home:gone: no such file or directory"}},
		{"mkdir", []string{"mkdir", "home:d1", "home:d1", "home:d2"}, "",
			[]string{"tarn: mkdir home:d1: already exists"}},
		{"rm", []string{"rm", "home:x", "home:missing", "home:y", "home:d1", "home:d2"}, "",
			[]string{"tarn: rm home:missing: no such file or directory"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runFor(t, 2*time.Minute, bin, append(tc.args, "--node", dir)...)
			if r.code != 1 || r.stdout != tc.stdout || r.stderr != strings.Join(tc.stderr, "\n")+"\n" {
				t.Fatalf("exit %d\nstdout %q (want %q)\nstderr %q\nwant   %q", r.code, r.stdout, tc.stdout, r.stderr, tc.stderr)
			}
		})
	}
	// rm went on: every path but the missing one is gone.
	es, err := d.ReadDir(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 0 {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Fatalf("rm left %v", names)
	}
}
