// Package dockertwin runs real Docker daemons (Debian's docker.io,
// dockerd 20.10) inside network namespaces of a [harness] topology, for
// tests that compare dnft with Docker's own iptables rules: one daemon
// programs iptables itself, the other runs with --iptables=false (and no
// iptables binary on its PATH) under `dnft docker`.
//
// Every daemon gets its own data and exec roots, socket, containerd,
// cgroup parent and trust key in a private directory, and never touches
// the host: the cleanup that [Start] registers kills its processes by PID
// (dockerd, containerd, shims, docker-proxy, container processes), removes
// its cgroup directories and directory, and puts back the machine-wide key
// limits dockerd raises. The image ([BuildImage], [Daemon.ImportImage]) is
// busybox-static plus echod, an echo server that answers with the source
// address it saw, so that DNAT (the client's address) can be told from
// docker-proxy (the bridge gateway's).
package dockertwin
