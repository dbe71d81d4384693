package harness

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"
)

// ICMP message types the pinger sends and understands.
const (
	icmp4EchoReply     = 0
	icmp4DstUnreach    = 3
	icmp4Echo          = 8
	icmp4TimeExceeded  = 11
	icmp6DstUnreach    = 1
	icmp6TimeExceeded  = 3
	icmp6Echo          = 128
	icmp6EchoReply     = 129
	protoICMP4         = 1
	protoICMP6         = 58
	icmp4PortUnreach   = 3
	icmp6PortUnreach   = 4
	ipv6HeaderLen      = 40
	icmpEchoHeaderSize = 8
)

// pingID makes every echo request of this process distinct, because a raw
// ICMP socket receives all ICMP of its namespace, including other probes'.
var pingID atomic.Uint32

// Ping sends one ICMP (or ICMPv6) echo request from the namespace to dst
// and waits up to [PingTimeout] (or the context's [WithProbeLimit]) for the reply, using a raw socket rather
// than the ping binary. ICMP errors about the request are reported:
// destination unreachable as [Unreachable] (port unreachable as [Refused]),
// time exceeded as "ttl exceeded". [Result.Seen] is the reply's source
// address.
func (n *NS) Ping(ctx context.Context, dst netip.Addr) Result {
	dst = dst.Unmap()
	network, laddr := "ip4:icmp", "0.0.0.0"
	if dst.Is6() {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	var c net.PacketConn
	err := n.Do(func() error {
		var err error
		c, err = net.ListenPacket(network, laddr)
		return err
	})
	if err != nil {
		return Result{Err: fmt.Sprintf("icmp socket: %v", err)}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeLimit(ctx, PingTimeout)))
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()

	v := pingID.Add(1)
	id, seq := uint16(os.Getpid())^uint16(v>>16), uint16(v)
	req := make([]byte, icmpEchoHeaderSize+16)
	req[0] = icmp4Echo
	if dst.Is6() {
		req[0] = icmp6Echo // the kernel fills in the ICMPv6 checksum
	}
	binary.BigEndian.PutUint16(req[4:], id)
	binary.BigEndian.PutUint16(req[6:], seq)
	copy(req[8:], "dnft-harness-png")
	if dst.Is4() {
		binary.BigEndian.PutUint16(req[2:], checksum(req))
	}
	if _, err := c.WriteTo(req, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return failure(ctx, err)
	}
	buf := make([]byte, 1500)
	for {
		nr, from, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
				return Result{Err: Timeout}
			}
			return failure(ctx, err)
		}
		src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		if r, ok := matchICMP(buf[:nr], dst.Is6(), id, seq); ok {
			if r.OK {
				r.Seen = src.Unmap()
			}
			return r
		}
	}
}

// matchICMP interprets an ICMP message (without IPv4 header) and reports
// whether it answers the echo request id/seq.
func matchICMP(b []byte, v6 bool, id, seq uint16) (Result, bool) {
	if len(b) < icmpEchoHeaderSize {
		return Result{}, false
	}
	typ, code := b[0], b[1]
	echoReply, dstUnreach, timeExceeded, portUnreach := byte(icmp4EchoReply), byte(icmp4DstUnreach), byte(icmp4TimeExceeded), byte(icmp4PortUnreach)
	if v6 {
		echoReply, dstUnreach, timeExceeded, portUnreach = icmp6EchoReply, icmp6DstUnreach, icmp6TimeExceeded, icmp6PortUnreach
	}
	switch typ {
	case echoReply:
		ok := binary.BigEndian.Uint16(b[4:]) == id && binary.BigEndian.Uint16(b[6:]) == seq
		return Result{OK: true}, ok
	case dstUnreach, timeExceeded:
		if !quotesEcho(b[icmpEchoHeaderSize:], v6, id, seq) {
			return Result{}, false
		}
		switch {
		case typ == timeExceeded:
			return Result{Err: "ttl exceeded"}, true
		case code == portUnreach:
			return Result{Err: Refused}, true
		}
		return Result{Err: Unreachable}, true
	}
	return Result{}, false
}

// quotesEcho reports whether the packet an ICMP error quotes is our echo
// request.
func quotesEcho(q []byte, v6 bool, id, seq uint16) bool {
	var hl int
	var proto byte
	if v6 {
		if len(q) < ipv6HeaderLen {
			return false
		}
		hl, proto = ipv6HeaderLen, q[6]
	} else {
		if len(q) < 20 {
			return false
		}
		hl, proto = int(q[0]&0x0f)*4, q[9]
	}
	wantProto, wantType := byte(protoICMP4), byte(icmp4Echo)
	if v6 {
		wantProto, wantType = protoICMP6, icmp6Echo
	}
	if proto != wantProto || len(q) < hl+icmpEchoHeaderSize {
		return false
	}
	e := q[hl:]
	return e[0] == wantType && binary.BigEndian.Uint16(e[4:]) == id && binary.BigEndian.Uint16(e[6:]) == seq
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
