package harness

import (
	"context"
	"encoding/binary"
	"fmt"
	"syscall"
	"time"
)

// waitReady waits until every link the harness brought up (except lo and
// bridges without ports) is operationally up.
//
// "ip link set up" returns before the kernel's linkwatch worker has
// processed the carrier change, and until it has, the device keeps the
// noop qdisc that drops every packet it is given, and a bridge port is not
// forwarding yet. Linkwatch handles veth events lazily (non-urgent: at most
// one run a second for all namespaces together), so a probe sent right
// after setup can silently fail. A single-link RTM_GETLINK request makes
// the kernel process that link's pending event at once (rtnl_getlink calls
// linkwatch_sync_dev; a dump does not), so polling this way is also what
// makes the wait short.
func (tp *Topology) waitReady(ctx context.Context) error {
	want := map[*NS][]string{
		tp.Host:     {HostLANIf, HostWANIf},
		tp.LAN:      {PeerIf},
		tp.Internet: {PeerIf},
	}
	used := map[string]bool{}
	for _, c := range tp.Spec.Containers {
		want[tp.Host] = append(want[tp.Host], VethName(c.Name))
		want[tp.Containers[c.Name]] = []string{PeerIf}
		used[c.Bridge] = true
	}
	for _, br := range tp.Spec.Bridges {
		if used[br.Name] {
			want[tp.Host] = append(want[tp.Host], br.Name)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return parallel(tp.Namespaces(), func(ns *NS) error { return ns.waitUp(ctx, want[ns]) })
}

// waitUp polls until the named links of the namespace are operationally up.
func (n *NS) waitUp(ctx context.Context, names []string) error {
	var fd int
	if err := n.Do(func() error {
		var err error
		fd, err = syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
		return err
	}); err != nil {
		return fmt.Errorf("harness: %s: netlink socket: %w", n.Name, err)
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(int64(time.Second))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	var seq uint32
	for {
		var pending []string
		for _, name := range names {
			seq++
			up, err := operUp(fd, name, seq)
			if err != nil {
				return fmt.Errorf("harness: %s: link %s: %w", n.Name, name, err)
			}
			if !up {
				pending = append(pending, name)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		names = pending
		select {
		case <-ctx.Done():
			return fmt.Errorf("harness: %s: links %v not up: %w", n.Name, pending, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// operUp sends RTM_GETLINK for one link and reports whether its operstate
// (IFLA_OPERSTATE) is IF_OPER_UP.
func operUp(fd int, name string, seq uint32) (bool, error) {
	const (
		iflaOperstate = 16 // IFLA_OPERSTATE
		ifOperUp      = 6  // IF_OPER_UP
	)
	attrLen := syscall.SizeofRtAttr + len(name) + 1
	msgLen := syscall.NLMSG_HDRLEN + syscall.SizeofIfInfomsg + (attrLen+3)&^3
	b := make([]byte, msgLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(msgLen))
	ne.PutUint16(b[4:], syscall.RTM_GETLINK)
	ne.PutUint16(b[6:], syscall.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	// struct ifinfomsg is left zero (AF_UNSPEC, any index).
	a := b[syscall.NLMSG_HDRLEN+syscall.SizeofIfInfomsg:]
	ne.PutUint16(a[0:], uint16(attrLen))
	ne.PutUint16(a[2:], syscall.IFLA_IFNAME)
	copy(a[syscall.SizeofRtAttr:], name)
	if err := syscall.Sendto(fd, b, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return false, err
	}
	buf := make([]byte, 1<<16)
	for {
		nr, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return false, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:nr])
		if err != nil {
			return false, err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue // a late answer to an earlier request
			}
			switch m.Header.Type {
			case syscall.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(ne.Uint32(m.Data)); errno != 0 {
						return false, syscall.Errno(-errno)
					}
				}
				return false, fmt.Errorf("unexpected netlink ack")
			case syscall.RTM_NEWLINK:
				attrs, err := syscall.ParseNetlinkRouteAttr(&m)
				if err != nil {
					return false, err
				}
				for _, at := range attrs {
					if at.Attr.Type == iflaOperstate && len(at.Value) > 0 {
						return at.Value[0] == ifOperUp, nil
					}
				}
				return false, nil
			}
		}
	}
}
