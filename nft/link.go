package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Link is a network interface of the connection's namespace as rtnetlink
// reports it: what dnft needs to know of bridges and their ports.
type Link struct {
	Index int
	Name  string
	// Kind is the link's type ("bridge", "veth", ...); empty for devices
	// without one, such as lo or a physical NIC.
	Kind string
	// Loopback is set for the loopback device.
	Loopback bool
	// Master is the index of the device the link is enslaved to (its
	// bridge), 0 if none.
	Master int
	// NFCallIPTables and NFCallIP6Tables are a bridge's own
	// nf_call_iptables / nf_call_ip6tables options: br_netfilter passes
	// its bridged IPv4 / IPv6 frames to the IP hooks even when the
	// namespace's bridge-nf-call-* sysctls are off.
	NFCallIPTables, NFCallIP6Tables bool
	// BridgePort is set for a port of a bridge.
	BridgePort bool
	// Hairpin is a bridge port's hairpin mode: frames may leave through
	// the port they came in by.
	Hairpin bool
}

// LinkEvent is a change of a link (RTM_NEWLINK or RTM_DELLINK).
type LinkEvent struct {
	Link
	// Deleted is set when the link was removed.
	Deleted bool
}

// IfAddr is an address of an interface of the namespace with its prefix
// length (host bits kept: 192.0.2.1/24).
type IfAddr struct {
	Index  int
	Prefix netip.Prefix
}

// route dials rtnetlink inside the connection's namespace, joined to the
// given multicast groups (RTMGRP_* bits).
func (c *Conn) route(groups uint32) (*netlink.Conn, error) {
	c.mu.Lock()
	f := c.nsFile
	c.mu.Unlock()
	if f == nil {
		return nil, errors.New("nft: connection closed")
	}
	rc, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: int(f.Fd()), Groups: groups})
	if err != nil {
		return nil, fmt.Errorf("dial rtnetlink in %s: %w", c.nsPath, err)
	}
	return rc, nil
}

// routeDo sends one rtnetlink request in the connection's namespace and
// returns the replies; what names the request in errors.
func (c *Conn) routeDo(ctx context.Context, what string, typ netlink.HeaderType, flags netlink.HeaderFlags, body []byte) ([]netlink.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rc, err := c.route(0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	msgs, err := rc.Execute(netlink.Message{Header: netlink.Header{Type: typ, Flags: netlink.Request | flags}, Data: body})
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", what, c.nsPath, err)
	}
	return msgs, nil
}

// ifinfomsg encodes struct ifinfomsg for a link index.
func ifinfomsg(index int) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	return b
}

// Links lists the namespace's links.
func (c *Conn) Links(ctx context.Context) ([]Link, error) {
	msgs, err := c.routeDo(ctx, "list links", unix.RTM_GETLINK, netlink.Dump, ifinfomsg(0))
	if err != nil {
		return nil, err
	}
	out := make([]Link, 0, len(msgs))
	for _, m := range msgs {
		l, err := decodeLink(m.Data)
		if err != nil {
			return nil, fmt.Errorf("list links in %s: %w", c.nsPath, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// LinkPorts lists the links enslaved to the link with index master (a
// bridge's ports), with one dump the kernel filters.
func (c *Conn) LinkPorts(ctx context.Context, master int) ([]Link, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.IFLA_MASTER, uint32(master))
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := c.routeDo(ctx, "list ports", unix.RTM_GETLINK, netlink.Dump, append(ifinfomsg(0), attrs...))
	if err != nil {
		return nil, err
	}
	var out []Link
	for _, m := range msgs {
		l, err := decodeLink(m.Data)
		if err != nil {
			return nil, fmt.Errorf("list ports in %s: %w", c.nsPath, err)
		}
		if l.Master == master { // kernels that ignore the filter
			out = append(out, l)
		}
	}
	return out, nil
}

// LinkByName returns the named link; ok is false when there is none.
func (c *Conn) LinkByName(ctx context.Context, name string) (l Link, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return l, false, err
	}
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return l, false, nil
	}
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	attrs, err := ae.Encode()
	if err != nil {
		return l, false, err
	}
	msgs, err := c.routeDo(ctx, "read link "+name, unix.RTM_GETLINK, 0, append(ifinfomsg(0), attrs...))
	switch {
	case errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT):
		return l, false, nil
	case err != nil:
		return l, false, err
	case len(msgs) == 0:
		return l, false, nil
	}
	l, err = decodeLink(msgs[0].Data)
	return l, err == nil, err
}

// SetBridgeNFCall sets a bridge's nf_call_iptables and nf_call_ip6tables
// options (see [Link.NFCallIPTables]).
func (c *Conn) SetBridgeNFCall(ctx context.Context, index int, v4, v6 bool) error {
	return c.changeLink(ctx, index, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.IFLA_INFO_KIND, "bridge")
		ae.Nested(unix.IFLA_INFO_DATA, func(ae *netlink.AttributeEncoder) error {
			ae.Uint8(unix.IFLA_BR_NF_CALL_IPTABLES, b2u8(v4))
			ae.Uint8(unix.IFLA_BR_NF_CALL_IP6TABLES, b2u8(v6))
			return nil
		})
	})
}

// SetHairpin sets the hairpin mode of a bridge port.
func (c *Conn) SetHairpin(ctx context.Context, index int, on bool) error {
	return c.changeLink(ctx, index, func(ae *netlink.AttributeEncoder) {
		ae.Nested(unix.IFLA_INFO_SLAVE_DATA, func(ae *netlink.AttributeEncoder) error {
			ae.Uint8(unix.IFLA_BRPORT_MODE, b2u8(on))
			return nil
		})
	})
}

// changeLink sends RTM_NEWLINK for an existing link with the given
// IFLA_LINKINFO attributes.
func (c *Conn) changeLink(ctx context.Context, index int, info func(*netlink.AttributeEncoder)) error {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(unix.IFLA_LINKINFO, func(ae *netlink.AttributeEncoder) error {
		info(ae)
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = c.routeDo(ctx, fmt.Sprintf("change link %d", index), unix.RTM_NEWLINK, netlink.Acknowledge, append(ifinfomsg(index), attrs...))
	return err
}

// Addrs lists the IPv4 and IPv6 addresses of the namespace's interfaces.
func (c *Conn) Addrs(ctx context.Context) ([]IfAddr, error) {
	msgs, err := c.routeDo(ctx, "list addresses", unix.RTM_GETADDR, netlink.Dump, make([]byte, unix.SizeofIfAddrmsg))
	if err != nil {
		return nil, err
	}
	var out []IfAddr
	for _, m := range msgs {
		if len(m.Data) < unix.SizeofIfAddrmsg {
			continue
		}
		bits, index := int(m.Data[1]), int(binary.NativeEndian.Uint32(m.Data[4:]))
		ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofIfAddrmsg:])
		if err != nil {
			return nil, err
		}
		var local, addr []byte
		for ad.Next() {
			switch ad.Type() {
			case unix.IFA_LOCAL:
				local = ad.Bytes()
			case unix.IFA_ADDRESS:
				addr = ad.Bytes()
			}
		}
		if local == nil { // IPv6 and non-point-to-point IPv4
			local = addr
		}
		a, ok := netip.AddrFromSlice(local)
		if p := netip.PrefixFrom(a, bits); ok && p.IsValid() {
			out = append(out, IfAddr{Index: index, Prefix: p})
		}
	}
	return out, nil
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// decodeLink decodes an RTM_NEWLINK / RTM_DELLINK body.
func decodeLink(b []byte) (Link, error) {
	if len(b) < unix.SizeofIfInfomsg {
		return Link{}, fmt.Errorf("link message of %d bytes", len(b))
	}
	l := Link{
		Index:    int(int32(binary.NativeEndian.Uint32(b[4:]))),
		Loopback: binary.NativeEndian.Uint32(b[8:])&unix.IFF_LOOPBACK != 0,
	}
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofIfInfomsg:])
	if err != nil {
		return l, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_IFNAME:
			l.Name = strings.TrimRight(ad.String(), "\x00")
		case unix.IFLA_MASTER:
			l.Master = int(ad.Uint32())
		case unix.IFLA_LINKINFO:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				decodeLinkInfo(nd, &l)
				return nil
			})
		}
	}
	return l, ad.Err()
}

// decodeLinkInfo decodes IFLA_LINKINFO: the kind, a bridge's netfilter
// options and a bridge port's hairpin mode.
func decodeLinkInfo(ad *netlink.AttributeDecoder, l *Link) {
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_INFO_KIND:
			l.Kind = strings.TrimRight(ad.String(), "\x00")
		case unix.IFLA_INFO_SLAVE_KIND:
			l.BridgePort = strings.TrimRight(ad.String(), "\x00") == "bridge"
		case unix.IFLA_INFO_DATA:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					switch nd.Type() {
					case unix.IFLA_BR_NF_CALL_IPTABLES:
						l.NFCallIPTables = nd.Uint8() != 0
					case unix.IFLA_BR_NF_CALL_IP6TABLES:
						l.NFCallIP6Tables = nd.Uint8() != 0
					}
				}
				return nil
			})
		case unix.IFLA_INFO_SLAVE_DATA:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					if nd.Type() == unix.IFLA_BRPORT_MODE {
						l.Hairpin = nd.Uint8() != 0
					}
				}
				return nil
			})
		}
	}
	if l.Kind != "bridge" {
		l.NFCallIPTables, l.NFCallIP6Tables = false, false
	}
}

// LinkMonitor receives the namespace's link notifications.
type LinkMonitor struct {
	rc *netlink.Conn
}

// MonitorLinks subscribes to the namespace's link notifications
// (RTNLGRP_LINK). Close it when done.
func (c *Conn) MonitorLinks() (*LinkMonitor, error) {
	rc, err := c.route(unix.RTMGRP_LINK)
	if err != nil {
		return nil, err
	}
	return &LinkMonitor{rc: rc}, nil
}

// ErrLinkEventsLost means the kernel dropped link notifications (the
// socket's buffer overflowed): whoever follows links must list them again.
var ErrLinkEventsLost = errors.New("link notifications were lost")

// Receive blocks until notifications arrive and returns them. It returns
// ErrLinkEventsLost (the monitor stays usable) when some were dropped,
// and another error once the monitor is closed.
func (m *LinkMonitor) Receive() ([]LinkEvent, error) {
	msgs, err := m.rc.Receive()
	if err != nil {
		var oe *netlink.OpError
		if errors.As(err, &oe) && errors.Is(oe.Err, unix.ENOBUFS) {
			return nil, ErrLinkEventsLost
		}
		return nil, fmt.Errorf("receive link notifications: %w", err)
	}
	var out []LinkEvent
	for _, msg := range msgs {
		if msg.Header.Type != unix.RTM_NEWLINK && msg.Header.Type != unix.RTM_DELLINK {
			continue
		}
		// Bridge-family notifications (of port state) repeat the link.
		if len(msg.Data) > 0 && msg.Data[0] == unix.AF_BRIDGE {
			continue
		}
		l, err := decodeLink(msg.Data)
		if err != nil {
			continue
		}
		out = append(out, LinkEvent{Link: l, Deleted: msg.Header.Type == unix.RTM_DELLINK})
	}
	return out, nil
}

// Close ends the subscription; a blocked Receive returns an error.
func (m *LinkMonitor) Close() error { return m.rc.Close() }
