package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/tarnfs/tarn/conf"
)

// probeListens binds, and at once closes, every TCP address the node in p
// would listen on: its API, its introducer's and storage server's
// transport listeners, and its enabled frontends. It returns a warning for
// each address the node could not bind now (in use by another process,
// not an address of this machine, a name that does not resolve, a
// privileged port): the node would fail at start. The profile alone
// cannot show these (two nodes of one machine given one port, a typo in a
// host name). Only `tarn config check` probes, and only while the node is
// not running (it holds its own ports then); tarn run finds out by
// binding. Port 0 (any free port) and non-tcp transports are skipped.
func probeListens(p *conf.Profile) []*conf.Error {
	type addr struct{ key, hostPort string }
	var addrs []addr
	addrs = append(addrs, addr{p.APIListenKey(), p.APIListen()})
	builtinTCP := p.Plugins.Transport.Path == "" && p.Plugins.Transport.Name == "tcp"
	for _, r := range []struct {
		role   string
		on     bool
		listen []string
	}{{"introducer", p.Introducer.Enabled, p.Introducer.Listen}, {"storage", p.Storage.Enabled, p.Storage.Listen}} {
		for i, a := range r.listen {
			if hp, ok := strings.CutPrefix(a, "tcp:"); ok && r.on && builtinTCP {
				addrs = append(addrs, addr{fmt.Sprintf("%s.listen[%d]", r.role, i), hp})
			}
		}
	}
	if p.Client.Enabled {
		for i, w := range p.WebDAV {
			if w.Enabled {
				addrs = append(addrs, addr{fmt.Sprintf("webdav[%d].listen", i), w.Listen})
			}
		}
		for i, s := range p.SFTP {
			if s.Enabled {
				addrs = append(addrs, addr{fmt.Sprintf("sftp[%d].listen", i), s.Listen})
			}
		}
	}
	var warnings []*conf.Error
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a.hostPort); err != nil || port == "0" {
			continue
		}
		l, err := net.Listen("tcp", a.hostPort)
		if err == nil {
			l.Close()
			continue
		}
		warnings = append(warnings, p.Errorf(a.key, "%s: %s: the node would fail at start", a.hostPort, bindProblem(err)))
	}
	return warnings
}

// bindProblem says why a listen failed, and what to do, in a few words.
func bindProblem(err error) string {
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "in use by another process (another node of this machine? `ss -ltnp` names it)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "not an address of this machine"
	case errors.Is(err, syscall.EACCES):
		return "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
	case errors.As(err, &dns):
		return fmt.Sprintf("cannot resolve %q (%s)", dns.Name, dns.Err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	return err.Error()
}
