package dockertwin

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/dnft/dnft/test/harness"
)

// PublishMany starts containers on network ("" for the default bridge)
// that together publish n TCP ports, per ports each, from firstPort on
// (one -p range per container, each port served by the container), so
// that a later publication meets n bindings already in place. Their
// names start with prefix.
func (s *Side) PublishMany(ctx context.Context, prefix, network string, n, per int, firstPort uint16) error {
	for i := 0; n > 0; i++ {
		k := min(per, n)
		lo := int(firstPort) + i*per
		spec := RunSpec{Name: fmt.Sprintf("%s%d", prefix, i), Network: network,
			Publish: []string{fmt.Sprintf("%d-%d:%d-%d", lo, lo+k-1, lo, lo+k-1)}}
		for p := lo; p < lo+k; p++ {
			spec.Serve = append(spec.Serve, fmt.Sprintf("tcp:%d", p))
		}
		if _, err := s.D.Run(ctx, spec); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// TimeRunPublish runs a container publishing hostPort to its port 80 on
// network ("" for the default bridge), waits until the port answers the
// LAN with the LAN's own address (DNAT: dockerd's rules or dnft's, not
// docker-proxy), removes the container, and returns the time from the
// create call to the answer and from the start call's return to the
// answer.
func (s *Side) TimeRunPublish(ctx context.Context, name, network string, hostPort uint16) (total, afterStart time.Duration, err error) {
	start := time.Now()
	if _, err := s.D.Run(ctx, RunSpec{Name: name, Network: network, Serve: []string{"tcp:80"},
		Publish: []string{fmt.Sprintf("%d:80", hostPort)}}); err != nil {
		return 0, 0, err
	}
	started := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := WaitAnswer(wctx, s.Topo.LAN, "tcp", lanPort(hostPort), harness.LANAddr4); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", s.Name, err)
	}
	total, afterStart = time.Since(start), time.Since(started)
	return total, afterStart, s.D.Client.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
}

// lanPort is the host's LAN address and a port.
func lanPort(p uint16) netip.AddrPort { return netip.AddrPortFrom(harness.LANHostAddr4, p) }
