package api_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/api"
)

// TestPageIntroducerLinks: the status page lists each introducer link
// with its state (connected, refused, not connected), since when and its
// last error, and marks servers known from the cache.
func TestPageIntroducerLinks(t *testing.T) {
	since := time.Date(2026, 11, 27, 13, 4, 5, 0, time.UTC)
	s, err := api.Start(api.Config{Listen: "127.0.0.1:0", Token: "t",
		Status: func(context.Context) api.Status {
			return api.Status{Name: "c", Roles: []string{"client"}, Shares: api.Shares{K: 1, H: 1, N: 1},
				Servers: []api.ServerStatus{{NodeID: "v1-a", Nickname: "s1", Cached: true, Connected: true, LastSeen: time.Now()}},
				IntroducerLinks: []api.IntroducerLink{
					{URL: "tarn://aaaa@tcp:10.0.0.1:3458", Role: "subscriber", Since: since, LastError: "introducer: dial tcp:10.0.0.1:3458: connect: connection refused"},
					{URL: "tarn://bbbb@tcp:10.0.0.2:3458", Role: "subscriber", Since: since, Refused: true, LastError: "introducer refused this node: not a member of this grid (grid secret differs)"},
					{URL: "tarn://cccc@tcp:10.0.0.3:3458", Role: "subscriber", Since: since, Connected: true},
				}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	resp, err := http.Get(s.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	for _, want := range []string{
		`<h2>Introducers</h2>`,
		`class="bad">not connected</td><td>13:04:05</td><td>introducer: dial tcp:10.0.0.1:3458: connect: connection refused</td>`,
		`class="bad">refused</td><td>13:04:05</td><td>introducer refused this node: not a member of this grid (grid secret differs)</td>`,
		`class="ok">connected</td><td>13:04:05</td><td></td>`,
		` (cached)</td>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Count(page, `<tr class="introducer-link">`) != 3 {
		t.Errorf("want 3 introducer rows:\n%s", page)
	}
}
