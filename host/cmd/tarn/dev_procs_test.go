package main

import (
	"slices"
	"testing"
)

func TestDevProcsEnv(t *testing.T) {
	base := []string{"PATH=/bin"}
	cases := []struct {
		name          string
		env           []string
		role          string
		storage, cpus int
		want          string // the GOMAXPROCS entry added, "" for none
	}{
		{"client keeps every core", base, "client", 5, 2, ""},
		{"storage on 2 cores", base, "storage", 5, 2, "GOMAXPROCS=1"},
		{"introducer on 2 cores", base, "introducer", 5, 2, "GOMAXPROCS=1"},
		{"storage on 16 cores", base, "storage", 5, 16, "GOMAXPROCS=3"},
		{"one storage node", base, "storage", 1, 8, "GOMAXPROCS=8"},
		{"operator's value stands", []string{"GOMAXPROCS=4"}, "storage", 5, 2, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := devProcsEnv(slices.Clone(c.env), c.role, c.storage, c.cpus)
			added := ""
			if len(got) > len(c.env) {
				added = got[len(got)-1]
			}
			if added != c.want {
				t.Fatalf("added %q, want %q (env %q)", added, c.want, got)
			}
			if !slices.Equal(got[:len(c.env)], c.env) {
				t.Fatalf("env changed: %q", got)
			}
		})
	}
}
