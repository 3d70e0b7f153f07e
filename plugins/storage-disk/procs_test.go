//go:build unix

package storagedisk

import (
	"bytes"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage"
)

func TestServeProcs(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"unset", nil, 1},
		{"set by the operator", map[string]string{"GOMAXPROCS": "4"}, 0},
		{"set empty", map[string]string{"GOMAXPROCS": ""}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := serveProcs(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if got != tc.want {
				t.Fatalf("serveProcs = %d, want %d", got, tc.want)
			}
		})
	}
}

// lockedBuffer collects the plugin's stderr as its host logs it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPluginProcs: a served disk plugin runs with one P unless GOMAXPROCS
// is set in its environment. The runtime's own scheduler trace
// (GODEBUG=schedtrace), which the host logs from the plugin's stderr, says
// how many Ps the running process has.
func TestPluginProcs(t *testing.T) {
	sched := regexp.MustCompile(`SCHED \d+ms: gomaxprocs=(\d+)`)
	for _, tc := range []struct {
		name  string
		procs string // GOMAXPROCS in the environment; "" for none
		want  string
	}{
		{"default", "", "1"},
		{"operator's GOMAXPROCS", "3", "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// go-plugin adds the host's environment to the plugin's, so
			// the test's own environment is the plugin's.
			t.Setenv("GOMAXPROCS", tc.procs)
			if tc.procs == "" {
				os.Unsetenv("GOMAXPROCS")
			}
			t.Setenv("GODEBUG", "schedtrace=20")
			out := &lockedBuffer{}
			cmd := pluginCmd()
			p, err := pluginkit.Start(pluginkit.StartOptions{
				Kind: pluginkit.KindStorage, Version: storage.ProtocolVersion, Name: "disk", Cmd: cmd,
				Logger:    hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Trace, Output: out}),
				NewPlugin: storage.NewHostPlugin,
			})
			if err != nil {
				t.Fatalf("start disk plugin: %v", err)
			}
			t.Cleanup(p.Kill)
			// The first trace lines may come before Serve sets the Ps:
			// wait for a few, then read the last.
			deadline := time.Now().Add(10 * time.Second)
			for {
				m := sched.FindAllStringSubmatch(out.String(), -1)
				if len(m) >= 5 {
					if got := m[len(m)-1][1]; got != tc.want {
						t.Fatalf("plugin runs with gomaxprocs=%s, want %s", got, tc.want)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("no scheduler trace from the plugin after 10 s; its stderr: %q", out.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
