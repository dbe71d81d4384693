package dockertwin

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/test/harness"
)

// timeRunPublish measures, on each side, the time from `docker run -p`
// (create and start) to the published port answering with the LAN
// client's own address (DNAT, not docker-proxy).
func timeRunPublish(t *testing.T, ctx context.Context, sides []*Side) {
	for _, s := range sides {
		var ds, after []time.Duration
		for i := range 3 {
			port := uint16(8090 + i)
			name := fmt.Sprintf("t%d", i)
			start := time.Now()
			if _, err := s.D.Run(ctx, RunSpec{Name: name, Network: "n1", Publish: []string{fmt.Sprintf("%d:80", port)}, Serve: serve}); err != nil {
				t.Fatal(err)
			}
			started := time.Now()
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			_, err := WaitAnswer(wctx, s.Topo.LAN, "tcp", lanPort(port), harness.LANAddr4)
			cancel()
			if err != nil {
				t.Fatalf("%s: %v", s.Name, err)
			}
			ds = append(ds, time.Since(start))
			after = append(after, time.Since(started))
			if err := s.D.Client.ContainerRemove(ctx, name, container.RemoveOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(ds)
		slices.Sort(after)
		t.Logf("%s: docker run -p until the port answers with the client's address: median %v %v; from the start call's return: median %v %v",
			s.Name, ds[len(ds)/2], ds, after[len(after)/2], after)
	}
}

// eventually retries check until it succeeds or 20 s have passed.
func eventually(ctx context.Context, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		err := check()
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sameOnBoth probes one port from each side's LAN until both get want.
func sameOnBoth(ctx context.Context, sides []*Side, proto string, port uint16, want string) error {
	return eventually(ctx, func() error {
		var got []string
		for _, s := range sides {
			r := s.Topo.LAN.TCP(ctx, lanPort(port))
			if proto == "udp" {
				r = s.Topo.LAN.UDP(ctx, lanPort(port))
			}
			got = append(got, s.Name+": "+r.String())
			if r.String() != want {
				return fmt.Errorf("%s to host:%d: %s, want %s", proto, port, strings.Join(got, ", "), want)
			}
		}
		return nil
	})
}

// bindingsMatch checks that dnft's bindings in the dnft side's namespace
// are exactly the IPv4 ports dockerd bound for its running containers:
// none missing, none pointing at a container that is gone.
func bindingsMatch(ctx context.Context, s *Side) error {
	want := map[string]bool{}
	cs, err := s.D.Client.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return err
	}
	for _, c := range cs {
		ci, err := s.D.Client.ContainerInspect(ctx, c.ID)
		if err != nil || ci.NetworkSettings == nil {
			continue
		}
		var ip string
		for _, es := range ci.NetworkSettings.Networks {
			if es.Gateway != "" {
				ip = es.IPAddress
			}
		}
		for p, bs := range ci.NetworkSettings.Ports {
			port, proto, _ := strings.Cut(string(p), "/")
			for _, b := range bs {
				if strings.Contains(b.HostIP, ":") {
					continue
				}
				want[fmt.Sprintf("%s:%s->%s:%s/%s", b.HostIP, b.HostPort, ip, port, proto)] = true
			}
		}
	}
	var ps []dnft.Published
	if err := withFirewall(ctx, s, func(fw *dnft.Firewall) (err error) {
		ps, err = fw.Ports(ctx)
		return err
	}); err != nil {
		return err
	}
	have := map[string]bool{}
	for _, p := range ps {
		have[p.Binding.String()] = true
	}
	var diff []string
	for k := range want {
		if !have[k] {
			diff = append(diff, "missing "+k)
		}
	}
	for k := range have {
		if !want[k] {
			diff = append(diff, "stale "+k)
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		return fmt.Errorf("dnft's bindings differ from dockerd's: %s", strings.Join(diff, "; "))
	}
	return nil
}

// withFirewall opens dnft's firewall in a side's Host and calls fn.
func withFirewall(ctx context.Context, s *Side, fn func(*dnft.Firewall) error) error {
	fw, err := dnft.Open(ctx, s.Topo.Host.Path())
	if err != nil {
		return err
	}
	defer fw.Close()
	return fn(fw)
}

// waitSettled waits until the scenario's published ports answer the LAN
// through DNAT on both sides and dnft's bindings are dockerd's.
func waitSettled(t *testing.T, ctx context.Context, sides []*Side, fol *Follower) {
	t.Helper()
	for _, port := range []uint16{8080, 8082, 8083, 8085} {
		if err := sameOnBoth(ctx, sides, "tcp", port, "ok from "+harness.LANAddr4.String()); err != nil {
			t.Fatalf("%v\n%s", err, fol.Log())
		}
	}
	if err := eventually(ctx, func() error { return bindingsMatch(ctx, sides[1]) }); err != nil {
		t.Fatalf("%v\n%s", err, fol.Log())
	}
}

// newEnvs attaches the probes' namespaces on both sides.
func newEnvs(t *testing.T, ctx context.Context, sides []*Side) map[string]*env {
	t.Helper()
	envs := map[string]*env{}
	for _, s := range sides {
		e, err := newEnv(t, ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		envs[s.Name] = e
	}
	return envs
}

// waitExit waits for a `dnft docker --once` to end successfully.
func waitExit(ctx context.Context, f *Follower) error {
	select {
	case <-f.exited:
	case <-ctx.Done():
		return ctx.Err()
	}
	if st := f.cmd.ProcessState; !st.Success() {
		return fmt.Errorf("dnft docker --once: %s", st)
	}
	return nil
}

// lifecycle runs the lifecycle steps on both sides and returns the
// `dnft docker` process running at the end.
func lifecycle(t *testing.T, ctx context.Context, bin string, sides []*Side, fol *Follower) *Follower {
	df := sides[1]
	outer := t // processes started in a step outlive it
	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}
	step("stop: ports close", func(t *testing.T) {
		both(t, sides, func(s *Side) error {
			timeout := 1
			return s.D.Client.ContainerStop(ctx, "web", container.StopOptions{Timeout: &timeout})
		})
		for _, p := range []struct {
			proto string
			port  uint16
		}{{"tcp", 8080}, {"udp", 8081}} {
			if err := sameOnBoth(ctx, sides, p.proto, p.port, harness.Refused); err != nil {
				t.Fatal(err)
			}
		}
	})
	step("restart with another address", func(t *testing.T) {
		both(t, sides, func(s *Side) error {
			if _, err := s.D.Run(ctx, RunSpec{Name: "filler", Serve: serve}); err != nil {
				return err
			}
			return s.D.Client.ContainerStart(ctx, "web", container.StartOptions{})
		})
		for _, s := range sides {
			ip, err := s.D.IP(ctx, "web", "bridge")
			if err != nil || ip != netip.MustParseAddr("172.17.0.3") {
				t.Fatalf("%s: web has %v (%v) after the restart, want 172.17.0.3", s.Name, ip, err)
			}
		}
		for _, p := range []struct {
			proto string
			port  uint16
		}{{"tcp", 8080}, {"udp", 8081}} {
			if err := sameOnBoth(ctx, sides, p.proto, p.port, "ok from "+harness.LANAddr4.String()); err != nil {
				t.Fatal(err)
			}
		}
		if err := eventually(ctx, func() error { return bindingsMatch(ctx, df) }); err != nil {
			t.Fatal(err)
		}
	})
	step("remove a network", func(t *testing.T) {
		both(t, sides, func(s *Side) error {
			for _, c := range []string{"i1", "i2"} {
				if err := s.D.Client.ContainerRemove(ctx, c, container.RemoveOptions{Force: true}); err != nil {
					return err
				}
			}
			return s.D.Client.NetworkRemove(ctx, "nint")
		})
		err := eventually(ctx, func() error {
			return withFirewall(ctx, df, func(fw *dnft.Firewall) error {
				nets, err := fw.Networks(ctx)
				if err != nil {
					return err
				}
				for _, n := range nets {
					if n.Name == "nint" {
						return fmt.Errorf("dnft still has network nint")
					}
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	step("SIGKILL while containers start", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, len(sides))
		killed := make(chan struct{})
		for i, s := range sides {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 3 {
					spec := RunSpec{Name: fmt.Sprintf("k%d", k), Network: "n1", Publish: []string{fmt.Sprintf("%d:80", 8093+k)}, Serve: serve}
					if _, err := s.D.Run(ctx, spec); err != nil {
						errs[i] = err
						return
					}
					if k == 0 && s == df {
						fol.Kill()
						close(killed)
					}
				}
				// k0 stops while dnft docker is dead: its binding must not
				// survive the restart.
				timeout := 1
				errs[i] = s.D.Client.ContainerStop(ctx, "k0", container.StopOptions{Timeout: &timeout})
			}()
		}
		wg.Wait()
		<-killed
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		fol = StartFollower(outer, bin, df, "--allow-direct-routing")
		for port, want := range map[uint16]string{8093: harness.Refused, 8094: "ok from " + harness.LANAddr4.String(), 8095: "ok from " + harness.LANAddr4.String()} {
			if err := sameOnBoth(ctx, sides, "tcp", port, want); err != nil {
				t.Fatalf("%v\n%s", err, fol.Log())
			}
		}
		if err := eventually(ctx, func() error { return bindingsMatch(ctx, df) }); err != nil {
			t.Fatalf("%v\n%s", err, fol.Log())
		}
	})
	step("dockerd restart", func(t *testing.T) {
		both(t, sides, func(s *Side) error { return s.D.Restart(nil) })
		// Containers with restart policy "always" come back, maybe with
		// other addresses; dnft docker reconnects and syncs.
		waitSettled(t, ctx, sides, fol)
		if !fol.Logged("retrying in") {
			t.Errorf("dnft docker did not report the lost connection:\n%s", fol.Log())
		}
	})
	return fol
}
