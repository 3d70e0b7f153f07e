package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestConfigCheckProbesPorts: `tarn config check` of a node that is not
// running warns, at the key's line, about each address the node could not
// bind now (it failed only at start, and docs said config check could not
// see it); a running node's own ports are not probed; free ports and
// port 0 give no warning; the exit status stays 0 (the profile is right).
func TestConfigCheckProbesPorts(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	busy := held.Addr().String()
	held2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held2.Close() })
	busy2 := held2.Addr().String()
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	nonLocal := "192.0.2.1:3457" // TEST-NET-1: never an address of this machine
	if l, err := net.Listen("tcp", nonLocal); err == nil {
		l.Close()
		nonLocal = "" // net.ipv4.ip_nonlocal_bind is on here
	}

	saved := initFlags
	t.Cleanup(func() { initFlags = saved })
	initFlags.profile, initFlags.name = "storage", "s"
	initFlags.introducers = []string{"tarn://khvtxks67zgjy2mf6n5y27cvyz346zj2yul5zvsjirszj65l4gya@tcp:intro.example.net:3458"}
	tests := []struct {
		name, api, storage string
		running            bool
		warn               []string // each a line of standard error; none when empty
	}{
		{"storage port in use", "127.0.0.1:0", busy, false,
			[]string{`:\d+: storage\.listen\[0\]: ` + regexp.QuoteMeta(busy) + `: in use by another process \(another node of this machine\? .*\): the node would fail at start$`}},
		{"api port in use", busy, "127.0.0.1:0", false,
			[]string{`:\d+: node\.api_listen: ` + regexp.QuoteMeta(busy) + `: in use by another process`}},
		{"both in use", busy, busy2, false, []string{`node\.api_listen: `, `storage\.listen\[0\]: `}},
		{"not an address of this machine", "127.0.0.1:0", nonLocal, false,
			[]string{`storage\.listen\[0\]: 192\.0\.2\.1:3457: not an address of this machine`}},
		{"running node: its own ports", busy, busy2, true, nil},
		{"free ports", free(), free(), false, nil},
		{"port 0", "127.0.0.1:0", "127.0.0.1:0", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.storage == "" {
				t.Skip("this machine binds non-local addresses")
			}
			dir := filepath.Join(t.TempDir(), "s")
			if err := runInit(io.Discard, dir); err != nil {
				t.Fatal(err)
			}
			prof := filepath.Join(dir, "tarn.toml")
			text, err := os.ReadFile(prof)
			if err != nil {
				t.Fatal(err)
			}
			s := regexp.MustCompile(`(?m)^api_listen = .*$`).ReplaceAllString(string(text), fmt.Sprintf("api_listen = %q", tc.api))
			s = strings.Replace(s, `listen = ["tcp:0.0.0.0:3457"]`, fmt.Sprintf(`listen = ["tcp:%s"]`, tc.storage), 1)
			s = regexp.MustCompile(`(?m)^announce = \[\]$`).ReplaceAllString(s, `announce = ["tcp:s.example.net:3457"]`)
			if err := os.WriteFile(prof, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.running {
				// node.json names a live process: this test's.
				info := fmt.Sprintf(`{"node_id":"v1-x","pid":%d}`, os.Getpid())
				if err := os.WriteFile(filepath.Join(dir, "node.json"), []byte(info), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var out, errOut bytes.Buffer
			if err := runConfigCheck(&out, &errOut, dir); err != nil {
				t.Fatalf("config check: %v\n%s", err, errOut.String())
			}
			if !strings.Contains(out.String(), ": ok (roles: storage)") {
				t.Fatalf("stdout %q", out.String())
			}
			lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
			if errOut.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tc.warn) {
				t.Fatalf("%d warnings, want %d:\n%s", len(lines), len(tc.warn), errOut.String())
			}
			for i, w := range tc.warn {
				if !strings.HasPrefix(lines[i], "warning: "+prof+":") || !regexp.MustCompile(w).MatchString(lines[i]) {
					t.Errorf("warning %d:\n  %s\nwant one matching\n  %s", i, lines[i], w)
				}
			}
		})
	}
}
