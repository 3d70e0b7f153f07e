package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/api"
)

// TestPrintStatusOperatorLines: the text status says why a server is not
// connected, how much space is reserved, and when a storage server is
// full; a healthy one gets neither line.
func TestPrintStatusOperatorLines(t *testing.T) {
	failed := time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		st        api.Status
		want, not []string
	}{
		{
			name: "server with a pinned key that does not match",
			st: api.Status{Roles: []string{"client"}, Shares: api.Shares{K: 1, H: 1, N: 1}, Known: 1, Servers: []api.ServerStatus{
				{NodeID: "v1-a", Nickname: "s1", Static: true, LastFailure: failed, LastError: "tls handshake: server key does not match the pinned key hash"},
				{NodeID: "v1-b", Nickname: "s2", Connected: true},
			}},
			want: []string{"s1: not connected since " + failed.Local().Format("15:04:05") + ": tls handshake: server key does not match"},
			not:  []string{"s2: not connected"},
		},
		{
			name: "two servers with one name",
			st: api.Status{Roles: []string{"client"}, Shares: api.Shares{K: 1, H: 1, N: 1}, Known: 3, Servers: []api.ServerStatus{
				{NodeID: "v1-a", Nickname: "storage", Connected: true},
				{NodeID: "v1-b", Nickname: "s2", Connected: true},
				{NodeID: "v1-c", Nickname: "storage", Connected: true},
			}},
			want: []string{`  note: 2 servers are named "storage" (v1-a, v1-c): give each storage node its own node.name`},
			not:  []string{`named "s2"`},
		},
		{
			name: "storage below its reserved space",
			st:   api.Status{Roles: []string{"storage"}, Storage: &api.StorageStatus{SpaceTotal: 100 << 30, SpaceFree: 1 << 30, Reserved: 2 << 30}},
			want: []string{"(2.0 GiB reserved)", "storage: FULL: free space is at or below storage.reserved_space"},
		},
		{
			name: "storage with room",
			st:   api.Status{Roles: []string{"storage"}, Storage: &api.StorageStatus{SpaceTotal: 100 << 30, SpaceFree: 50 << 30, Reserved: 1 << 30}},
			want: []string{"50.0 GiB free of 100.0 GiB (1.0 GiB reserved)"},
			not:  []string{"FULL"},
		},
		{
			name: "shares held, not just sealed since start",
			st:   api.Status{Roles: []string{"storage"}, Storage: &api.StorageStatus{SpaceTotal: 100 << 30, SharesHeld: 1200, BytesHeld: 3 << 20, SharesSealed: 7}},
			want: []string{"1200 shares held (3.0 MiB), 7 shares sealed since start"},
			not:  []string{"counting", "not counted"},
		},
		{
			name: "shares held while the start count runs",
			st:   api.Status{Roles: []string{"storage"}, Storage: &api.StorageStatus{SpaceTotal: 100 << 30, SharesHeld: 12, BytesHeld: 1 << 20, HeldCounting: true}},
			want: []string{"counting… 12 shares held so far (1.0 MiB)"},
		},
		{
			name: "shares held not countable",
			st:   api.Status{Roles: []string{"storage"}, Storage: &api.StorageStatus{SpaceTotal: 100 << 30, SharesHeld: 2, HeldError: "count shares held: unsupported operation"}},
			want: []string{"2 shares held", "storage: shares held not counted: count shares held: unsupported operation"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printStatus(&b, &tc.st)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("status lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tc.not {
				if strings.Contains(b.String(), w) {
					t.Errorf("status has %q:\n%s", w, b.String())
				}
			}
		})
	}
}
