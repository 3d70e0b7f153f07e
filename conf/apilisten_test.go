package conf

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAPIListen: every node gets an API address: node.api_listen, else the
// deprecated client.api_listen on a client (which warns), else the role's
// default, so the introducer, storage and client of one machine differ.
func TestAPIListen(t *testing.T) {
	cases := []struct {
		name, text string
		want       string
		warn       string // a warning about client.api_listen containing this; "" none
		err        string
	}{
		{"client default", "[client]\nenabled = true\n", DefaultAPIListen, "", ""},
		{"storage default", "[storage]\nenabled = true\n", DefaultStorageAPIListen, "", ""},
		{"introducer default", "[introducer]\nenabled = true\n", DefaultIntroducerAPIListen, "", ""},
		{"all roles: the client's", "[introducer]\nenabled = true\n[storage]\nenabled = true\n[client]\nenabled = true\n", DefaultAPIListen, "", ""},
		{"node key", "[node]\napi_listen = \"127.0.0.1:9000\"\n[storage]\nenabled = true\n", "127.0.0.1:9000", "", ""},
		{"deprecated alias", "[client]\nenabled = true\napi_listen = \"127.0.0.1:9001\"\n", "127.0.0.1:9001", "deprecated", ""},
		{"alias overrides the node key", "[node]\napi_listen = \"127.0.0.1:9000\"\n[client]\nenabled = true\napi_listen = \"127.0.0.1:9001\"\n", "127.0.0.1:9001", "overrides", ""},
		{"alias ignored without the client", "[storage]\nenabled = true\n[client]\napi_listen = \"127.0.0.1:9001\"\n", DefaultStorageAPIListen, "ignored", ""},
		{"bad node key", "[node]\napi_listen = \"localhost\"\n[storage]\nenabled = true\n", "", "", "node.api_listen: bad address"},
		{"bad log format", "[node]\nlog_format = \"xml\"\n[storage]\nenabled = true\n", "", "", `node.log_format: "xml" is not one of text, json`},
		{"api and webdav on one port", "[node]\napi_listen = \"127.0.0.1:8080\"\n[client]\nenabled = true\n" +
			"[[accounts]]\nname = \"me\"\npassword_hash = \"$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\"\nroot_cap_file = \"root.cap\"\n[[webdav]]\n",
			"", "", "already used by node.api_listen"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(filepath.Join(t.TempDir(), FileName), []byte(tc.text))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.APIListen(); got != tc.want {
				t.Errorf("APIListen() = %q, want %q", got, tc.want)
			}
			var warned string
			for _, w := range p.Warnings() {
				if w.Key == "client.api_listen" {
					warned = w.Msg
				}
			}
			if (tc.warn == "") != (warned == "") || !strings.Contains(warned, tc.warn) {
				t.Errorf("warning %q, want one containing %q", warned, tc.warn)
			}
		})
	}
}

// TestTemplatePorts: the profiles tarn init writes for the three roles
// give three different API addresses, so one machine can run them all.
func TestTemplatePorts(t *testing.T) {
	seen := map[string]string{}
	for _, role := range []string{"introducer", "storage", "client"} {
		text, err := Commented(Template{Role: role, Name: role})
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse("/nodes/"+role+"/tarn.toml", text)
		if err != nil {
			t.Fatal(err)
		}
		if p.Line("node.api_listen") == 0 {
			t.Errorf("%s profile does not set node.api_listen", role)
		}
		if prev, ok := seen[p.APIListen()]; ok {
			t.Errorf("%s and %s profiles share the API address %s", prev, role, p.APIListen())
		}
		seen[p.APIListen()] = role
	}
}
