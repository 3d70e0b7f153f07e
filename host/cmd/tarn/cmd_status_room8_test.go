package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/introducer"
)

// TestPrintStatusFreeSpaceUnknown: tarn status shows the free space of a
// server that cannot read its own (it announces the largest figure) or
// was never announced (static) as "unknown", not 4.0 EiB or 0 B; a
// figure, a full server's 0 among them, as the figure.
func TestPrintStatusFreeSpaceUnknown(t *testing.T) {
	live := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name string
		s    api.ServerStatus
		want string
	}{
		{"announced unknown", api.ServerStatus{FreeSpace: introducer.FreeSpaceUnknown, ExpiresAt: live}, "unknown"},
		{"static, never announced", api.ServerStatus{Static: true}, "unknown"},
		{"announced", api.ServerStatus{FreeSpace: 5 << 30, ExpiresAt: live}, "5.0 GiB"},
		{"announced full", api.ServerStatus{FreeSpace: 0, ExpiresAt: live}, "0 B"},
		{"static and announced", api.ServerStatus{Static: true, FreeSpace: 3 << 20, ExpiresAt: live}, "3.0 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.NodeID, tc.s.Nickname, tc.s.Connected = "v1-abc", "s1", true
			var b bytes.Buffer
			printStatus(&b, &api.Status{Roles: []string{"client"}, Shares: api.Shares{K: 1, H: 1, N: 1}, Known: 1, Servers: []api.ServerStatus{tc.s}})
			var row string
			for _, l := range strings.Split(b.String(), "\n") {
				if strings.Contains(l, "v1-abc") {
					row = l
				}
			}
			if row == "" {
				t.Fatalf("no server row:\n%s", b.String())
			}
			if !regexp.MustCompile(`v1-abc\s+`+regexp.QuoteMeta(tc.want)+`\s\s`).MatchString(row) || strings.Contains(row, "EiB") {
				t.Errorf("server row %q, want free space %q", row, tc.want)
			}
		})
	}
}
