package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// conntrackTimeout bounds one conntrack dump or delete.
const conntrackTimeout = 10 * time.Second

// Conntrack deletes connection tracking entries of a connection's network
// namespace. It keeps lasting ctnetlink sockets: closing a
// NETLINK_NETFILTER socket right after an nf_tables delete waits for an
// RCU grace period (perf-baselines gotcha 4), so they are opened once and
// closed with [Conntrack.Close]. It is safe for concurrent use.
//
// Be aware: finding entries by address or port means walking the kernel's
// conntrack hash table, which all namespaces share (nf_conntrack_buckets,
// 262144 here: about 13 ms), however few entries the namespace has.
// [Conntrack.Delete] skips the walk when the namespace has no entry at all.
type Conntrack struct {
	mu    sync.Mutex
	h     *vnl.Handle
	stats int // raw ctnetlink socket for the entry count, -1 when closed
	seq   uint32
}

// OpenConntrack opens ctnetlink inside the connection's namespace. The
// Conntrack stays usable after the Conn is closed.
func (c *Conn) OpenConntrack() (*Conntrack, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nsFile == nil {
		return nil, errors.New("nft: connection closed")
	}
	h, err := vnl.NewHandleAt(netns.NsHandle(c.nsFile.Fd()), unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("open conntrack netlink in %s: %w", c.nsPath, err)
	}
	if err := h.SetSocketTimeout(conntrackTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("conntrack socket timeout: %w", err)
	}
	stats, err := c.statsSocket()
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("open conntrack netlink in %s: %w", c.nsPath, err)
	}
	return &Conntrack{h: h, stats: stats}, nil
}

// statsSocket opens a raw NETLINK_NETFILTER socket in the namespace.
// ctnetlink answers a statistics request with a lone NLM_F_MULTI message
// and no NLMSG_DONE, on which mdlayher/netlink would wait for more, so
// this one is read by hand.
func (c *Conn) statsSocket() (int, error) {
	fd := -1
	err := c.inNetNS(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil {
		return -1, err
	}
	tv := unix.NsecToTimeval(conntrackTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Close releases the sockets.
func (ct *Conntrack) Close() error {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	var err error
	if ct.h != nil {
		ct.h.Close()
		err = unix.Close(ct.stats)
		ct.h, ct.stats = nil, -1
	}
	return err
}

// ctnetlink's statistics request and attribute
// (linux/netfilter/nfnetlink_conntrack.h).
const (
	ipctnlMsgCtGetStats   = 5 // IPCTNL_MSG_CT_GET_STATS
	ctaStatsGlobalEntries = 1 // CTA_STATS_GLOBAL_ENTRIES
)

// Count returns the number of conntrack entries of the namespace, all
// families together. It is cheap: the kernel keeps the count.
func (ct *Conntrack) Count(ctx context.Context) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.h == nil {
		return 0, errors.New("nft: conntrack closed")
	}
	return ct.count()
}

func (ct *Conntrack) count() (uint32, error) {
	ct.seq++
	req := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.NFNL_SUBSYS_CTNETLINK<<8|ipctnlMsgCtGetStats)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:], ct.seq)
	req[unix.NLMSG_HDRLEN] = unix.AF_UNSPEC
	req[unix.NLMSG_HDRLEN+1] = unix.NFNETLINK_V0
	if err := unix.Sendto(ct.stats, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("conntrack statistics: %w", err)
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(ct.stats, buf, 0)
		if err != nil {
			return 0, fmt.Errorf("conntrack statistics: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return 0, fmt.Errorf("conntrack statistics: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != ct.seq {
				continue // a late reply to an earlier request
			}
			switch {
			case m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4:
				if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
					return 0, fmt.Errorf("conntrack statistics: %w", syscall.Errno(-e))
				}
			case len(m.Data) >= 4:
				ad, err := netlink.NewAttributeDecoder(m.Data[4:])
				if err != nil {
					return 0, fmt.Errorf("conntrack statistics: %w", err)
				}
				ad.ByteOrder = binary.BigEndian
				for ad.Next() {
					if ad.Type() == ctaStatsGlobalEntries {
						return ad.Uint32(), nil
					}
				}
				return 0, errors.New("conntrack statistics: no entry count in reply")
			}
		}
	}
}

// ProtoPort is a transport protocol number and port.
type ProtoPort struct {
	Proto uint8
	Port  uint16
}

// ConntrackFilter selects conntrack entries: an entry matches when its
// original destination address is one of OrigDst, or when its protocol
// and original destination port are one of OrigDstPorts. The empty
// filter matches nothing.
type ConntrackFilter struct {
	OrigDst      []netip.Addr
	OrigDstPorts []ProtoPort
}

// IsEmpty reports whether the filter matches nothing.
func (f ConntrackFilter) IsEmpty() bool { return len(f.OrigDst) == 0 && len(f.OrigDstPorts) == 0 }

// flowMatcher is a ConntrackFilter compiled into sets, so that one pass
// over the table costs the same whatever the number of addresses and
// ports (the library's own filter tests one address or port each).
type flowMatcher struct {
	addrs map[netip.Addr]bool
	ports map[ProtoPort]bool
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (m flowMatcher) MatchConntrackFlow(fl *vnl.ConntrackFlow) bool {
	if a, ok := netip.AddrFromSlice(fl.Forward.DstIP); ok && m.addrs[a.Unmap()] {
		return true
	}
	return m.ports[ProtoPort{fl.Forward.Protocol, fl.Forward.DstPort}]
}

// Delete deletes the entries of family f that the filter selects, as
// `conntrack -D` would, and returns how many it deleted. Unless the
// namespace has no entry at all, the kernel's table is walked once (see
// [Conntrack]).
func (ct *Conntrack) Delete(ctx context.Context, f Family, flt ConntrackFilter) (uint, error) {
	if flt.IsEmpty() {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m := flowMatcher{addrs: map[netip.Addr]bool{}, ports: map[ProtoPort]bool{}}
	for _, a := range flt.OrigDst {
		m.addrs[a.Unmap()] = true
	}
	for _, p := range flt.OrigDstPorts {
		m.ports[p] = true
	}
	fam := vnl.InetFamily(unix.AF_INET)
	if f == IPv6 {
		fam = unix.AF_INET6
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.h == nil {
		return 0, errors.New("nft: conntrack closed")
	}
	if n, err := ct.count(); err == nil && n == 0 {
		return 0, nil
	} // on error (a kernel without the statistics), walk anyway
	n, err := ct.h.ConntrackDeleteFilters(vnl.ConntrackTable, fam, m)
	if errors.Is(err, vnl.ErrDumpInterrupted) {
		// The table changed during the dump: what was seen is deleted,
		// look once more for the rest.
		var more uint
		more, err = ct.h.ConntrackDeleteFilters(vnl.ConntrackTable, fam, m)
		n += more
	}
	if err != nil {
		return n, fmt.Errorf("delete %s conntrack entries: %w", f, err)
	}
	return n, nil
}

// ConntrackCount returns the number of conntrack entries of the
// connection's namespace, all families together (see [Conntrack.Count]),
// on the connection's own socket: a caller can skip opening a
// [Conntrack] when there is nothing to delete.
func (c *Conn) ConntrackCount(ctx context.Context) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw == nil {
		return 0, errors.New("nft: connection closed")
	}
	c.raw.getReq(unix.NFNL_SUBSYS_CTNETLINK<<8|ipctnlMsgCtGetStats, 0, unix.AF_UNSPEC, nil)
	var n uint32
	found := false
	err := c.raw.request(false, func(m nlMsg) error {
		if len(m.data) < 4 {
			return nil
		}
		ad, err := netlink.NewAttributeDecoder(m.data[4:])
		if err != nil {
			return err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == ctaStatsGlobalEntries {
				n, found = ad.Uint32(), true
			}
		}
		return ad.Err()
	})
	if err != nil {
		return 0, errors.Join(fmt.Errorf("conntrack statistics: %w", err), c.rawFailed())
	}
	if !found {
		return 0, errors.New("conntrack statistics: no entry count in reply")
	}
	return n, nil
}
