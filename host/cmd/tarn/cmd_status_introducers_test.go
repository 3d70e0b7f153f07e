package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/api"
)

// TestPrintIntroducerLinks: the text status has a line per introducer
// link saying connected, refused (with why) or unreachable (with the
// error), and since when; cached servers are counted.
func TestPrintIntroducerLinks(t *testing.T) {
	since := time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC)
	at := since.Local().Format("15:04:05")
	url := "tarn://abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst@tcp:10.0.0.1:3458"
	short := "tarn://abcdefgh…@tcp:10.0.0.1:3458"
	for _, tc := range []struct {
		name      string
		st        api.Status
		want, not []string
	}{
		{
			name: "unreachable",
			st: api.Status{Roles: []string{"client"}, Shares: api.Shares{K: 1, H: 1, N: 1}, IntroducerLinks: []api.IntroducerLink{
				{URL: url, Role: "subscriber", Since: since, LastError: "introducer: dial tcp:10.0.0.1:3458: connection refused"},
			}},
			want: []string{"storage servers: 0 known, 0 connected\n", "introducer " + short + " (subscriber): not connected since " + at + ": introducer: dial tcp:10.0.0.1:3458: connection refused"},
		},
		{
			name: "refused",
			st: api.Status{Roles: []string{"storage"}, IntroducerLinks: []api.IntroducerLink{
				{URL: url, Role: "publisher", Since: since, Refused: true, LastError: "introducer refused this node: not a member of this grid (grid secret differs)"},
			}},
			want: []string{"introducer " + short + " (publisher): REFUSED since " + at + ": introducer refused this node: not a member of this grid (grid secret differs)"},
		},
		{
			name: "connected, servers from the cache",
			st: api.Status{Roles: []string{"client"}, Shares: api.Shares{K: 1, H: 1, N: 1}, Known: 2, Conn: 2,
				Servers:         []api.ServerStatus{{NodeID: "v1-a", Cached: true, Connected: true}, {NodeID: "v1-b", Connected: true}},
				IntroducerLinks: []api.IntroducerLink{{URL: url, Role: "subscriber", Since: since, Connected: true}}},
			want: []string{"2 known, 2 connected (1 from the cached list", "introducer " + short + " (subscriber): connected since " + at + "\n"},
			not:  []string{"not connected", "REFUSED"},
		},
	} {
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
