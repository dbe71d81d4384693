package nft

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

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
	stats *rawConn // for the entry count
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
	stats, err := dialRaw(int(c.nsFile.Fd()))
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("open conntrack netlink in %s: %w", c.nsPath, err)
	}
	return &Conntrack{h: h, stats: stats}, nil
}

// Close releases the sockets.
func (ct *Conntrack) Close() error {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	var err error
	if ct.h != nil {
		ct.h.Close()
		err = ct.stats.close()
		ct.h, ct.stats = nil, nil
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
	n, found, err := ct.stats.getU32(unix.NFNL_SUBSYS_CTNETLINK<<8|ipctnlMsgCtGetStats, ctaStatsGlobalEntries)
	if err != nil {
		return 0, fmt.Errorf("conntrack statistics: %w", err)
	}
	if !found {
		return 0, errors.New("conntrack statistics: no entry count in reply")
	}
	return n, nil
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
	n, found, err := c.raw.getU32(unix.NFNL_SUBSYS_CTNETLINK<<8|ipctnlMsgCtGetStats, ctaStatsGlobalEntries)
	if err != nil {
		return 0, errors.Join(fmt.Errorf("conntrack statistics: %w", err), c.rawFailed())
	}
	if !found {
		return 0, errors.New("conntrack statistics: no entry count in reply")
	}
	return n, nil
}
