package docker

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/resolver"
)

// dnsState is what was programmed for a container's embedded DNS.
type dnsState struct {
	pid int
	r   dnft.Resolver
}

// procRoot is where the kernel's process information is mounted.
const procRoot = "/proc"

// resolver programs the embedded-DNS rules in the namespace of a running
// container that uses Docker's embedded DNS server, unless prev says they
// are already there; it returns what is programmed now. Problems are
// logged: DNS is a best effort that never holds up the firewall.
func (f *Follower) resolver(ctx context.Context, ci container.InspectResponse, prev dnsState) dnsState {
	if !f.opt.DNS || ci.State == nil || ci.State.Pid == 0 || !usesEmbeddedDNS(ci) {
		return dnsState{}
	}
	pid := ci.State.Pid
	r, err := ResolverPorts(procRoot, pid)
	if err != nil {
		f.opt.logf("container %s: embedded DNS: %v", ci.Name, err)
		return dnsState{}
	}
	now := dnsState{pid: pid, r: r}
	if prev == now {
		return now
	}
	changed, err := dnft.ProgramResolver(ctx, filepath.Join(procRoot, strconv.Itoa(pid), "ns", "net"), r)
	if err != nil {
		f.opt.logf("container %s: embedded DNS: %v", ci.Name, err)
		return dnsState{}
	}
	if changed {
		f.opt.logf("container %s: embedded DNS %s", ci.Name, r)
	}
	return now
}

// usesEmbeddedDNS reports whether a container has its own network
// namespace with an endpoint on a user-defined network, where dockerd
// runs its embedded DNS server. Containers that share another's
// namespace (--network container:X) are served by that one's rules.
func usesEmbeddedDNS(ci container.InspectResponse) bool {
	if ci.HostConfig != nil {
		switch m := ci.HostConfig.NetworkMode; {
		case m.IsContainer(), m.IsHost(), m.IsNone():
			return false
		}
	}
	if ci.NetworkSettings == nil {
		return false
	}
	for name := range ci.NetworkSettings.Networks {
		if name != "bridge" && name != "host" && name != "none" {
			return true
		}
	}
	return false
}

// ResolverPorts finds where Docker's embedded DNS server listens in the
// network namespace of process pid: dockerd binds one UDP and one TCP
// (listening) socket to 127.0.0.11 on random ports there (libnetwork's
// resolver). It reads the namespace's socket tables from
// proc/PID/net/{udp,tcp} (proc is normally "/proc").
func ResolverPorts(proc string, pid int) (dnft.Resolver, error) {
	r := dnft.Resolver{Addr: resolver.DefaultAddr()}
	dir := filepath.Join(proc, strconv.Itoa(pid), "net")
	var err error
	if r.UDPPort, err = boundPort(filepath.Join(dir, "udp"), r.Addr, "07"); err != nil {
		return r, err
	}
	if r.TCPPort, err = boundPort(filepath.Join(dir, "tcp"), r.Addr, "0A"); err != nil {
		return r, err
	}
	return r, nil
}

// boundPort returns the port of the one socket of a /proc/net/{tcp,udp}
// table bound to addr in state st (07 unconnected UDP, 0A listening TCP).
func boundPort(path string, addr netip.Addr, st string) (uint16, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	a4 := addr.As4()
	want := strings.ToUpper(hex.EncodeToString(binary.NativeEndian.AppendUint32(nil, binary.BigEndian.Uint32(a4[:]))))
	var ports []uint16
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != st {
			continue
		}
		host, port, ok := strings.Cut(fields[1], ":")
		if !ok || !strings.EqualFold(host, want) {
			continue
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil {
			return 0, fmt.Errorf("%s: bad local address %q", path, fields[1])
		}
		ports = append(ports, uint16(p))
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	switch len(ports) {
	case 0:
		return 0, fmt.Errorf("no socket bound to %s in %s (dockerd's resolver not running)", addr, path)
	case 1:
		return ports[0], nil
	}
	return 0, fmt.Errorf("%d sockets bound to %s in %s, cannot tell the resolver's", len(ports), addr, path)
}
