package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/node"
	"github.com/tarnfs/tarn/host/pluginhost"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

// runningNode returns the node.json of the node in dir when its process is
// alive, else nil.
func runningNode(dir string) *node.Info {
	in, err := node.ReadInfo(dir)
	if err != nil || in.Pid <= 0 {
		return nil
	}
	if !pidExists(in.Pid) {
		return nil
	}
	return in
}

// runningPlugins lists the plugins of a running node: from its status API
// when it has one (a client node), else from its child processes (a
// storage node or an introducer has no API yet). It never starts a plugin:
// a second copy of a storage plugin could not open the node's folder.
func runningPlugins(ctx context.Context, in *node.Info, specs []pluginhost.Spec) ([]pluginRow, error) {
	find := func(kind, name string) (pluginhost.Spec, bool) {
		for _, s := range specs {
			if string(s.Kind) == kind && s.DisplayName() == name {
				return s, true
			}
		}
		return pluginhost.Spec{}, false
	}
	row := func(st pluginhost.Status) pluginRow {
		if s, ok := find(string(st.Kind), st.Name); ok {
			st.Path = s.Path
			if len(s.SHA256) > 0 {
				st.SHA256 = fmt.Sprintf("%x", s.SHA256)
			}
		}
		return pluginRow{Status: st}
	}
	var rows []pluginRow
	if in.APIURL != "" && in.TokenFile != "" {
		tok, err := node.ReadToken(in.TokenFile)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := (&api.Client{BaseURL: in.APIURL, Token: tok}).Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("status of the running node: %w", err)
		}
		for _, p := range st.Plugins {
			rows = append(rows, row(pluginhost.Status{Kind: pluginkit.Kind(p.Kind), Name: p.Name, Version: p.Version,
				Pid: p.Pid, Health: p.Health, Restarts: p.Restarts, LastErr: p.LastErr}))
		}
		return rows, nil
	}
	// No API: the node's plugin processes are its children.
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, statPath := range procs {
		stat, err := os.ReadFile(statPath)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(in.Pid) || f[0] == "Z" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(statPath)))
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(statPath), "cmdline"))
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		for _, s := range specs {
			builtin := s.Path == "" && len(args) >= 4 && args[len(args)-4] == "plugin" && args[len(args)-3] == "serve" &&
				args[len(args)-2] == string(s.Kind) && args[len(args)-1] == s.Name
			external := s.Path != "" && len(args) > 0 && args[0] == s.Path
			if !builtin && !external {
				continue
			}
			v := "external"
			if builtin {
				v = "built-in"
			}
			rows = append(rows, row(pluginhost.Status{Kind: s.Kind, Name: s.DisplayName(), Version: v, Pid: pid, Health: "ok"}))
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("node %s is running (pid %d) but no plugin process of it was found", in.Name, in.Pid)
	}
	return rows, nil
}
