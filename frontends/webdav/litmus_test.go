package webdav

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// suiteLine matches litmus's per-suite summary, e.g.
// "<- summary for `locks': of 41 tests run: 41 passed, 0 failed. 100.0%".
var suiteLine = regexp.MustCompile("summary for `([a-z]+)': of (\\d+) tests run: (\\d+) passed, (\\d+) failed")

// TestLitmus runs the litmus WebDAV suite against the handler over a test
// grid, when litmus is installed; every suite must pass whole.
func TestLitmus(t *testing.T) {
	bin, err := exec.LookPath("litmus")
	if err != nil {
		t.Skip("litmus is not installed")
	}
	if testing.Short() {
		t.Skip("short")
	}
	e := newEnv(t, envOpts{quota: func(context.Context) (Quota, error) { return Quota{Available: 1 << 40, Used: 1 << 20}, nil }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-k", e.url, "alice", alicePW)
	cmd.Dir = t.TempDir() // litmus writes debug.log and child.log there
	out, _ := cmd.CombinedOutput()
	t.Logf("litmus output:\n%s", out)
	m := suiteLine.FindAllStringSubmatch(string(out), -1)
	if len(m) < 5 {
		t.Fatalf("found %d suite summaries, want 5", len(m))
	}
	if n := strings.Count(string(out), "WARNING:"); n > 0 {
		t.Errorf("litmus issued %d warnings", n)
	}
	for _, s := range m {
		failed, _ := strconv.Atoi(s[4])
		t.Logf("litmus %-9s %s run, %s passed, %s failed", s[1], s[2], s[3], s[4])
		if failed != 0 {
			t.Errorf("litmus suite %s: %d failed", s[1], failed)
		}
	}
}
