package dockertwin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/dnft/dnft/test/harness"
)

// Config configures one dockerd.
type Config struct {
	// Iptables lets dockerd program its own iptables rules (Debian's
	// iptables is iptables-nft). When false, dockerd runs with
	// --iptables=false and a PATH that holds no iptables binary, as on an
	// nftables-only host.
	Iptables bool
	// Flags are more dockerd flags, such as "--userland-proxy=false".
	Flags []string
}

// Daemon is a real dockerd running in a namespace of a harness topology,
// with its own data and exec roots, socket, containerd, cgroup parent and
// trust key, all under Dir. It changes nothing outside its namespace and
// Dir, and the cleanup registered by [Start] removes everything it made,
// also when the test fails.
type Daemon struct {
	// NS is the namespace dockerd runs in (its "host").
	NS *harness.NS
	// Dir holds the data root (data), exec root (exec), the socket
	// (sock), the daemon's log (dockerd.log) and its PATH (bin).
	Dir string
	// Host is the Engine API address, "unix://DIR/sock".
	Host string
	// Client talks to the daemon (API version negotiated).
	Client *client.Client

	cfg     Config
	cgroup  string // cgroup parent, "/" + base name of Dir
	cmd     *exec.Cmd
	exited  chan struct{}
	keyJSON bool // /etc/docker/key.json existed before the start
	maxKeys map[string]string
}

// startScript runs inside `ip netns exec`'s private mount namespace: it
// mounts the cgroup v1 hierarchies that `ip netns exec` hid behind a fresh
// /sys, hides any system containerd socket, and execs dockerd with its
// private roots. $1 is Dir, $2 the PATH dockerd gets, the rest dockerd's
// flags.
const startScript = `set -e
D=$1; P=$2; shift 2
mount -t tmpfs cgroup_root /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
  mkdir -p /sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir -p /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
for r in /run/containerd /run/docker; do
  if [ -d $r ]; then mount -t tmpfs tmpfs $r; fi
done
exec env PATH="$P" dockerd --config-file "$D/daemon.json" --data-root "$D/data" \
  --exec-root "$D/exec" --pidfile "$D/pid" -H "unix://$D/sock" \
  --cgroup-parent "/$(basename "$D")" --shutdown-timeout 2 "$@"
`

// daemonBinaries are what dockerd, containerd and their shims execute by
// name; the PATH of a daemon without iptables holds links to these only.
var daemonBinaries = []string{
	"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v1",
	"containerd-shim-runc-v2", "runc", "docker-proxy", "docker-init",
}

// keyJSON is where dockerd 20.10 writes its trust key unless
// deprecated-key-path says otherwise.
const keyJSON = "/etc/docker/key.json"

// rootKeySysctls are raised by dockerd at start (machine-wide).
var rootKeySysctls = []string{"/proc/sys/kernel/keys/root_maxkeys", "/proc/sys/kernel/keys/root_maxbytes"}

// Start starts dockerd in ns and waits until its API answers. It fails
// the test (after cleaning up) when dockerd is not installed: call
// [RequireDocker] first.
func Start(t testing.TB, ns *harness.NS, cfg Config) *Daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "dnft-docker-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{NS: ns, Dir: dir, Host: "unix://" + filepath.Join(dir, "sock"), cfg: cfg,
		cgroup: filepath.Base(dir), maxKeys: map[string]string{}}
	_, err = os.Stat(keyJSON)
	d.keyJSON = err == nil
	for _, k := range rootKeySysctls {
		if v, err := os.ReadFile(k); err == nil {
			d.maxKeys[k] = string(v)
		}
	}
	t.Cleanup(func() {
		if err := d.cleanup(); err != nil {
			t.Errorf("dockertwin: cleanup of %s: %v", d.Dir, err)
		}
	})
	if err := d.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := d.start(); err != nil {
		t.Fatalf("dockertwin: %v\n%s", err, d.LogTail(40))
	}
	return d
}

// prepare writes the start script, the daemon configuration (trust key
// under Dir) and, for a daemon without iptables, its PATH.
func (d *Daemon) prepare() error {
	bin := filepath.Join(d.Dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	for _, b := range daemonBinaries {
		p, err := exec.LookPath(b)
		if err != nil {
			if b == "containerd-shim" || b == "containerd-shim-runc-v1" {
				continue
			}
			return fmt.Errorf("dockertwin: %s not found: %w", b, err)
		}
		if err := os.Symlink(p, filepath.Join(bin, b)); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf(`{"deprecated-key-path": %q}`, filepath.Join(d.Dir, "key.json"))
	if err := os.WriteFile(filepath.Join(d.Dir, "daemon.json"), []byte(conf), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d.Dir, "start.sh"), []byte(startScript), 0o755)
}

// path is the PATH dockerd runs with.
func (d *Daemon) path() string {
	if d.cfg.Iptables {
		return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return filepath.Join(d.Dir, "bin")
}

// flags are dockerd's flags beyond the private roots.
func (d *Daemon) flags() []string {
	var f []string
	if !d.cfg.Iptables {
		f = append(f, "--iptables=false")
	}
	return append(f, d.cfg.Flags...)
}

// start launches dockerd and waits for its API.
func (d *Daemon) start() error {
	_ = os.Remove(filepath.Join(d.Dir, "sock"))
	log, err := os.OpenFile(filepath.Join(d.Dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	args := append([]string{"netns", "exec", d.NS.Name, "sh", filepath.Join(d.Dir, "start.sh"), d.Dir, d.path()}, d.flags()...)
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	d.cmd = cmd
	d.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	if d.Client == nil {
		c, err := client.NewClientWithOpts(client.WithHost(d.Host), client.WithAPIVersionNegotiation())
		if err != nil {
			return err
		}
		d.Client = c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := d.Client.Ping(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("dockerd exited during start (%v)", cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("dockerd did not answer within 60 s: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Restart stops dockerd (its containers stop with it, as without
// --live-restore) and starts it again on the same roots, with flags in
// place of the configured extra flags when flags is not nil.
func (d *Daemon) Restart(flags []string) error {
	if err := d.Stop(); err != nil {
		return err
	}
	if flags != nil {
		d.cfg.Flags = flags
	}
	if err := d.start(); err != nil {
		return fmt.Errorf("%w\n%s", err, d.LogTail(40))
	}
	return nil
}

// Stop stops dockerd with SIGTERM (SIGKILL after 30 s), then kills what
// it leaves behind: containerd, shims, docker-proxy and container
// processes. It does not remove Dir.
func (d *Daemon) Stop() error {
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		d.cmd = nil
	}
	return d.sweep()
}

// LogTail returns the last n lines of dockerd's log.
func (d *Daemon) LogTail(n int) string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "dockerd.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cleanup stops everything and removes every trace: processes, cgroup
// directories, Dir, a trust key written to /etc/docker, and the
// machine-wide key limits dockerd raised.
func (d *Daemon) cleanup() error {
	var errs []error
	errs = append(errs, d.Stop())
	if d.Client != nil {
		errs = append(errs, d.Client.Close())
	}
	errs = append(errs, removeCgroups(d.cgroup))
	if err := os.RemoveAll(d.Dir); err != nil {
		errs = append(errs, err)
	}
	if !d.keyJSON {
		if err := os.Remove(keyJSON); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for k, v := range d.maxKeys {
		if cur, err := os.ReadFile(k); err == nil && string(cur) != v {
			errs = append(errs, os.WriteFile(k, []byte(v), 0o644))
		}
	}
	return errors.Join(errs...)
}
