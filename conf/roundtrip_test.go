package conf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestEncodeRoundTrip: a loaded profile written back with the toml encoder
// (as a command that edits a profile would) loads to the same profile.
func TestEncodeRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("examples/*.toml")
	grid, _ := filepath.Glob("examples/grid/*.toml")
	for _, f := range append(files, grid...) {
		t.Run(f, func(t *testing.T) {
			p, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := p.Encode(&b); err != nil {
				t.Fatal(err)
			}
			q, err := Parse(p.File, b.Bytes())
			if err != nil {
				t.Fatalf("re-parse:\n%v\n%s", err, b.String())
			}
			p.lines, q.lines = nil, nil
			if !reflect.DeepEqual(p, q) {
				t.Fatalf("round trip differs:\n%+v\n%+v", p, q)
			}

		})
	}
}

func TestNewValidateEncode(t *testing.T) {
	dir := t.TempDir()
	p, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err == nil {
		t.Fatal("a profile with no service validated")
	}
	p.Storage.Enabled = true
	p.Storage.Listen = []string{"tcp:127.0.0.1:0"}
	p.Client.Enabled = true
	p.Client.Shares = Shares{K: 3, H: 4, N: 5}
	p.Grid.Servers = []Server{{Address: "tcp:127.0.0.1:1", KeyHash: "khvtxks67zgjy2mf6n5y27cvyz346zj2yul5zvsjirszj65l4gya"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.Encode(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.File, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	q, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	p.lines, q.lines = nil, nil
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("written and loaded differ:\n%+v\n%+v", p, q)
	}
	p.Client.Shares.H = 9
	var list ErrorList
	if err := p.Validate(); !errors.As(err, &list) || len(list) != 1 || list[0].Key != "client.shares.h" {
		t.Fatalf("got %v, want one error on client.shares.h", err)
	}
}
