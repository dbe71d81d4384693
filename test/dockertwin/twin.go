package dockertwin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"

	"github.com/dnft/dnft/test/harness"
)

// Side is one half of a twin: a harness topology (Host, LAN, Internet)
// with a dockerd in Host.
type Side struct {
	// Name is "docker" (dockerd's own iptables) or "dnft".
	Name string
	// Topo is the topology; dockerd runs in Topo.Host.
	Topo *harness.Topology
	// D is the daemon.
	D *Daemon
}

// NewSide builds a topology with forwarding off in Host (so that dockerd
// turns it on, as on a fresh machine), starts dockerd there and imports
// the image at img (see [BuildImage]).
func NewSide(t testing.TB, name string, cfg Config, img string) *Side {
	t.Helper()
	return NewSideSpec(t, name, harness.Spec{NoForward: true}, cfg, img)
}

// NewSideSpec is [NewSide] with a topology spec of the caller's (such as
// one with IPv6).
func NewSideSpec(t testing.TB, name string, spec harness.Spec, cfg Config, img string) *Side {
	t.Helper()
	topo := harness.New(t, spec)
	d := Start(t, topo.Host, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.ImportImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	return &Side{Name: name, Topo: topo, D: d}
}

// CreateNetwork creates a bridge network with fixed subnets (IPv4, and
// an IPv6 one that enables IPv6 on the network) and driver options (-o).
func (s *Side) CreateNetwork(ctx context.Context, name, subnet string, internal bool, opts map[string]string, subnet6 ...string) error {
	ipam := &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet}}}
	for _, p := range subnet6 {
		ipam.Config = append(ipam.Config, network.IPAMConfig{Subnet: p})
	}
	_, err := s.D.Client.NetworkCreate(ctx, name, network.CreateOptions{
		Driver: "bridge", Internal: internal, Options: opts, IPAM: ipam, EnableIPv6: boolPtr(len(subnet6) > 0),
	})
	if err != nil {
		return fmt.Errorf("%s: network create %s: %w", s.Name, name, err)
	}
	return nil
}

// ContainerNS makes a running container's network namespace a harness
// namespace (`ip netns attach`), so that probes can be sent from it. The
// name is removed by t's cleanup; attach again after a restart.
func (s *Side) ContainerNS(t testing.TB, ctx context.Context, ctr string) (*harness.NS, error) {
	pid, err := s.D.Pid(ctx, ctr)
	if err != nil {
		return nil, err
	}
	if pid == 0 {
		return nil, fmt.Errorf("%s: container %s is not running", s.Name, ctr)
	}
	name := s.Topo.Prefix + "c-" + ctr
	_ = exec.Command("ip", "netns", "del", name).Run() // an earlier attach
	if out, err := exec.CommandContext(ctx, "ip", "netns", "attach", name, fmt.Sprint(pid)).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns attach %s %d: %w: %s", name, pid, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return &harness.NS{Name: name}, nil
}

// IptablesSave returns `iptables-save` of the side's Host namespace
// (counters left out), for comparison with dnft's view of the same
// Docker state.
func (s *Side) IptablesSave(ctx context.Context) (string, error) {
	return s.Topo.Host.Run(ctx, "iptables-save")
}

// answerAttempt bounds one probe of [WaitAnswer]. An answer between
// namespaces takes well under a millisecond; a probe that meets a socket
// that never answers (dockerd's placeholder listener on a published port
// with the userland proxy off, before the DNAT rule exists) must not hide
// the rule's arrival for a whole probe timeout.
const answerAttempt = 20 * time.Millisecond

// WaitAnswer probes to from `from` (TCP or UDP) until the echo shows the
// source address seen, and returns how long that took (to within
// answerAttempt); it gives up at ctx's deadline.
func WaitAnswer(ctx context.Context, from *harness.NS, proto string, to netip.AddrPort, seen netip.Addr) (time.Duration, error) {
	start := time.Now()
	var last harness.Result
	for {
		actx, cancel := context.WithTimeout(ctx, answerAttempt)
		switch proto {
		case "udp":
			last = from.UDP(actx, to)
		default:
			last = from.TCP(actx, to)
		}
		cancel()
		if last.OK && last.Seen == seen {
			return time.Since(start), nil
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%s %s from %s: %s, want ok from %s", proto, to, from, last, seen)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BuildDnft builds the dnft command into dir, with dnft-docker next to
// it (which `dnft docker` runs), and returns dnft's path.
func BuildDnft(ctx context.Context, dir string) (string, error) {
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	bin := filepath.Join(dir, "dnft")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/dnft", "./cmd/dnft-docker")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build dnft: %w: %s", err, out)
	}
	return bin, nil
}

// Follower is a `dnft docker` process following a side's dockerd.
type Follower struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

// StartFollower starts `dnft --netns HOST docker --host ADDR args...`
// for the side; t's cleanup stops it. Its log goes to a file in the
// daemon's directory (see [Follower.Log]).
func StartFollower(t testing.TB, bin string, s *Side, args ...string) *Follower {
	t.Helper()
	logPath := filepath.Join(s.D.Dir, fmt.Sprintf("dnft-docker-%d.log", time.Now().UnixNano()))
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(bin, append([]string{"--netns", s.Topo.Host.Name, "docker", "--host", s.D.Host}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "DOCKER_HOST=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &Follower{cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(f.exited)
	}()
	t.Cleanup(func() { _ = f.Stop() })
	return f
}

// Kill sends SIGKILL and waits for the process to end.
func (f *Follower) Kill() {
	_ = f.cmd.Process.Kill()
	<-f.exited
}

// Stop sends SIGTERM and waits (SIGKILL after 10 s). It is safe to call
// after the process ended.
func (f *Follower) Stop() error {
	select {
	case <-f.exited:
		return nil
	default:
	}
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.exited:
	case <-time.After(10 * time.Second):
		f.Kill()
		return errors.New("dnft docker did not stop on SIGTERM")
	}
	if st := f.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("dnft docker: %s", st)
	}
	return nil
}

// Log returns what the process logged so far.
func (f *Follower) Log() string {
	b, _ := os.ReadFile(f.log)
	return string(b)
}

// Logged reports whether the log has a line containing s.
func (f *Follower) Logged(s string) bool { return strings.Contains(f.Log(), s) }

func boolPtr(b bool) *bool { return &b }
