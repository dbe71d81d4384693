package dockertwin

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// RunSpec is what `docker run -d` is given.
type RunSpec struct {
	// Name is the container's name.
	Name string
	// Network is the network (--network); empty for the default bridge.
	Network string
	// IP and IP6 are fixed addresses (--ip, --ip6); zero for IPAM's.
	IP, IP6 netip.Addr
	// Publish are -p specs, such as "8080:80" or "127.0.0.1:9090:90/udp".
	Publish []string
	// Serve are the echod servers the container runs, such as "tcp:80"
	// or "udp:81".
	Serve []string
	// Restart is the restart policy name ("" for none, "always").
	Restart string
}

// Run creates and starts a container from [Image] and returns its ID.
func (d *Daemon) Run(ctx context.Context, s RunSpec) (string, error) {
	exposed, bindings, err := nat.ParsePortSpecs(s.Publish)
	if err != nil {
		return "", err
	}
	cfg := &container.Config{Image: Image, Cmd: append([]string{"/bin/echod", "serve"}, s.Serve...), ExposedPorts: exposed}
	host := &container.HostConfig{PortBindings: bindings, RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(s.Restart)}}
	var nets *network.NetworkingConfig
	if s.Network != "" {
		host.NetworkMode = container.NetworkMode(s.Network)
		es := &network.EndpointSettings{}
		if s.IP.IsValid() || s.IP6.IsValid() {
			es.IPAMConfig = &network.EndpointIPAMConfig{}
			if s.IP.IsValid() {
				es.IPAMConfig.IPv4Address = s.IP.String()
			}
			if s.IP6.IsValid() {
				es.IPAMConfig.IPv6Address = s.IP6.String()
			}
		}
		nets = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{s.Network: es}}
	}
	c, err := d.Client.ContainerCreate(ctx, cfg, host, nets, nil, s.Name)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", s.Name, err)
	}
	if err := d.Client.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("start %s: %w", s.Name, err)
	}
	return c.ID, nil
}

// Exec runs a command in a running container and returns its standard
// output; the error includes standard error and the exit code.
func (d *Daemon) Exec(ctx context.Context, ctr string, cmd ...string) (string, error) {
	ex, err := d.Client.ContainerExecCreate(ctx, ctr, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", err
	}
	att, err := d.Client.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", err
	}
	defer att.Close()
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, att.Reader); err != nil {
		return "", err
	}
	st, err := d.Client.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return "", err
	}
	if st.ExitCode != 0 {
		return out.String(), fmt.Errorf("%s in %s: exit %d: %s", strings.Join(cmd, " "), ctr, st.ExitCode, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// IP returns the container's IPv4 address on a network.
func (d *Daemon) IP(ctx context.Context, ctr, net string) (netip.Addr, error) {
	c, err := d.Client.ContainerInspect(ctx, ctr)
	if err != nil {
		return netip.Addr{}, err
	}
	if c.NetworkSettings == nil || c.NetworkSettings.Networks[net] == nil {
		return netip.Addr{}, fmt.Errorf("container %s is not on network %s", ctr, net)
	}
	return netip.ParseAddr(c.NetworkSettings.Networks[net].IPAddress)
}

// IP6 returns the container's global IPv6 address on a network.
func (d *Daemon) IP6(ctx context.Context, ctr, net string) (netip.Addr, error) {
	c, err := d.Client.ContainerInspect(ctx, ctr)
	if err != nil {
		return netip.Addr{}, err
	}
	if c.NetworkSettings == nil || c.NetworkSettings.Networks[net] == nil {
		return netip.Addr{}, fmt.Errorf("container %s is not on network %s", ctr, net)
	}
	return netip.ParseAddr(c.NetworkSettings.Networks[net].GlobalIPv6Address)
}

// Pid returns the PID of the container's main process (0 if stopped).
func (d *Daemon) Pid(ctx context.Context, ctr string) (int, error) {
	c, err := d.Client.ContainerInspect(ctx, ctr)
	if err != nil {
		return 0, err
	}
	return c.State.Pid, nil
}
