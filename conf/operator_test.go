package conf

import (
	"errors"
	"strings"
	"testing"
)

// TestParseEdges: what operators' editors and habits put in a profile.
// A byte-order mark (Windows Notepad) loads; an address the built-in tcp
// transport cannot serve is refused at check time, not at start, while an
// external transport reads its own schemes.
func TestParseEdges(t *testing.T) {
	const storage = "[storage]\nenabled = true\nlisten = [\"tcp:127.0.0.1:3457\"]\nannounce = [\"tcp:s1.example.net:3457\"]\n"
	tests := []struct {
		name string
		text string
		want string // "" loads; else in the error
	}{
		{"bom", "\ufeff" + storage, ""},
		{"bom, error lines kept", "\ufeff[storage]\nenabled = true\nreserved = 1\n", "FILE:3: storage.reserved: unknown key"},
		{"crlf", strings.ReplaceAll(storage, "\n", "\r\n"), ""},
		{"udp listen, built-in tcp", "[storage]\nenabled = true\nlisten = [\"udp:127.0.0.1:3457\"]\n",
			`FILE:3: storage.listen[0]: address "udp:127.0.0.1:3457": no transport serves "udp:"`},
		{"udp listen, external transport", "[storage]\nenabled = true\nlisten = [\"udp:127.0.0.1:3457\"]\n[plugins.transport]\nname = \"\"\npath = \"/opt/udp-transport\"\n", ""},
		{"introducer url with one tcp address", storage + "[grid]\nintroducers = [\"tarn://khvtxks67zgjy2mf6n5y27cvyz346zj2yul5zvsjirszj65l4gya@quic:i:1,tcp:i:3458\"]\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("FILE", []byte(tc.text))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !p.Storage.Enabled {
					t.Fatal("storage not enabled: the first table was lost")
				}
				return
			}
			var list ErrorList
			if !errors.As(err, &list) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
