package node

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestLogDurations: a duration field is the same text in JSON and text
// lines ("1.5s", not 1500000000 nanoseconds), through Named and With
// loggers too.
func TestLogDurations(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  func(l hclog.Logger)
		key  string
		want string
	}{
		{"warn", func(l hclog.Logger) { l.Warn("retrying", "in", 1500*time.Millisecond) }, "in", "1.5s"},
		{"named", func(l hclog.Logger) { l.Named("grid").Info("done", "after", 1234567*time.Microsecond) }, "after", "1.235s"},
		{"with", func(l hclog.Logger) { l.With("every", 30*time.Second).Info("x") }, "every", "30s"},
		{"small", func(l hclog.Logger) { l.Log(hclog.Info, "x", "took", 250*time.Microsecond) }, "took", "0.250ms"},
		{"not a value", func(l hclog.Logger) { l.Info("x", "n", 3, "in", time.Minute) }, "in", "1m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, jsonFormat := range []bool{true, false} {
				var b bytes.Buffer
				l := withDurations(hclog.New(&hclog.LoggerOptions{Output: &b, JSONFormat: jsonFormat, Level: hclog.Trace}))
				tc.log(l)
				if jsonFormat {
					var m map[string]any
					if err := json.Unmarshal(b.Bytes(), &m); err != nil {
						t.Fatal(err)
					}
					if m[tc.key] != tc.want {
						t.Fatalf("json %s = %v, want %q: %s", tc.key, m[tc.key], tc.want, b.String())
					}
				} else if !strings.Contains(b.String(), tc.key+"="+tc.want) {
					t.Fatalf("text line %q lacks %s=%s", b.String(), tc.key, tc.want)
				}
			}
		})
	}
	if l := withDurations(withDurations(hclog.NewNullLogger())); l.(durLogger).Logger == nil {
		t.Fatal("wrapped twice")
	}
	if _, ok := withDurations(withDurations(hclog.NewNullLogger())).(durLogger).Logger.(durLogger); ok {
		t.Fatal("wrapped twice")
	}
}
