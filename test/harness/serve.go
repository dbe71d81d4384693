package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// serverIdle bounds how long a TCP echo server waits for a client's line.
const serverIdle = 2 * time.Second

// server is one running echo server.
type server struct {
	port  uint16
	ln    io.Closer
	wg    sync.WaitGroup
	once  sync.Once
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// close stops the server, closes its open connections and waits for its
// goroutines. It is safe to call more than once.
func (s *server) close() {
	s.once.Do(func() {
		s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	s.wg.Wait()
}

// ServeTCP starts a TCP echo server in the namespace on port (0 picks a
// free one) and returns the port. It listens on all addresses, IPv4 and
// IPv6 (one dual-stack "[::]:port" socket). For each connection it reads
// one line and answers with the client's address as the server saw it
// (for example "203.0.113.1\n"), then closes. It is stopped by t's cleanup
// and, at the latest, when the topology is removed. Calls t.Fatal if the
// port is taken.
func (n *NS) ServeTCP(t testing.TB, port uint16) uint16 {
	t.Helper()
	s, err := n.serveTCP(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s.port
}

// ServeUDP starts a UDP echo server in the namespace on port (0 picks a
// free one) and returns the port. Like [NS.ServeTCP] it is dual-stack and
// answers every datagram with the sender's address as text. The reply
// leaves from the address the datagram was sent to, so it passes a
// connected client socket and reverse NAT even on a multi-homed host.
func (n *NS) ServeUDP(t testing.TB, port uint16) uint16 {
	t.Helper()
	s, err := n.serveUDP(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s.port
}

func (n *NS) track(s *server) {
	n.mu.Lock()
	n.servers = append(n.servers, s)
	n.mu.Unlock()
}

// closeServers stops every server the namespace ever started.
func (n *NS) closeServers() {
	n.mu.Lock()
	ss := n.servers
	n.servers = nil
	n.mu.Unlock()
	for _, s := range ss {
		s.close()
	}
}

func (n *NS) serveTCP(port uint16) (*server, error) {
	var ln *net.TCPListener
	err := n.Do(func() error {
		l, err := net.ListenTCP("tcp", &net.TCPAddr{Port: int(port)})
		ln = l
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("harness: %s: tcp echo server on port %d: %w", n.Name, port, err)
	}
	s := &server{port: uint16(ln.Addr().(*net.TCPAddr).Port), ln: ln, conns: map[net.Conn]struct{}{}}
	n.track(s)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			from := c.RemoteAddr().(*net.TCPAddr).AddrPort()
			to := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr()
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			n.record(Hit{Proto: "tcp", Port: s.port, From: from, To: to.Unmap()})
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				_ = c.SetDeadline(time.Now().Add(serverIdle))
				if _, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadString('\n'); err != nil {
					return
				}
				_, _ = io.WriteString(c, from.Addr().String()+"\n")
			}()
		}
	}()
	return s, nil
}

func (n *NS) serveUDP(port uint16) (*server, error) {
	var pc *net.UDPConn
	v6 := true
	err := n.Do(func() error {
		c, err := net.ListenUDP("udp", &net.UDPAddr{Port: int(port)})
		if err != nil {
			return err
		}
		pc = c
		v6, err = enablePktinfo(c)
		return err
	})
	if err != nil {
		if pc != nil {
			pc.Close()
		}
		return nil, fmt.Errorf("harness: %s: udp echo server on port %d: %w", n.Name, port, err)
	}
	s := &server{port: uint16(pc.LocalAddr().(*net.UDPAddr).Port), ln: pc}
	n.track(s)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 65536)
		oob := make([]byte, 512)
		for {
			_, oobn, _, from, err := pc.ReadMsgUDPAddrPort(buf, oob)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // e.g. ECONNREFUSED from an earlier reply
			}
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			to, reply := parsePktinfo(oob[:oobn], v6)
			n.record(Hit{Proto: "udp", Port: s.port, From: from, To: to.Unmap()})
			msg := []byte(from.Addr().String() + "\n")
			if _, _, err := pc.WriteMsgUDPAddrPort(msg, reply, from); err != nil && reply != nil {
				_, _, _ = pc.WriteMsgUDPAddrPort(msg, nil, from)
			}
		}
	}()
	return s, nil
}

// enablePktinfo asks the kernel for each datagram's destination address.
// It reports whether the socket is IPv6 (dual-stack).
func enablePktinfo(c *net.UDPConn) (v6 bool, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return false, err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_RECVPKTINFO, 1)
		v6 = serr == nil
		if !v6 {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_PKTINFO, 1)
		}
	})
	if err != nil {
		return false, err
	}
	return v6, serr
}

// parsePktinfo extracts the destination address from a received control
// message and builds the control message that sends the reply from that
// address (nil if there is none).
func parsePktinfo(oob []byte, v6 bool) (netip.Addr, []byte) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, nil
	}
	for _, m := range msgs {
		switch {
		case v6 && m.Header.Level == syscall.IPPROTO_IPV6 && m.Header.Type == syscall.IPV6_PKTINFO &&
			len(m.Data) >= syscall.SizeofInet6Pktinfo:
			var pi syscall.Inet6Pktinfo
			copy(pi.Addr[:], m.Data[:16])
			return netip.AddrFrom16(pi.Addr), cmsg(syscall.IPPROTO_IPV6, syscall.IPV6_PKTINFO,
				unsafe.Slice((*byte)(unsafe.Pointer(&pi)), syscall.SizeofInet6Pktinfo))
		case !v6 && m.Header.Level == syscall.IPPROTO_IP && m.Header.Type == syscall.IP_PKTINFO &&
			len(m.Data) >= syscall.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
			var pi syscall.Inet4Pktinfo
			copy(pi.Spec_dst[:], m.Data[8:12])
			return netip.AddrFrom4(pi.Spec_dst), cmsg(syscall.IPPROTO_IP, syscall.IP_PKTINFO,
				unsafe.Slice((*byte)(unsafe.Pointer(&pi)), syscall.SizeofInet4Pktinfo))
		}
	}
	return netip.Addr{}, nil
}

// cmsg encodes one socket control message.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, syscall.CmsgSpace(len(data)))
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = level
	h.Type = typ
	h.SetLen(syscall.CmsgLen(len(data)))
	copy(b[syscall.CmsgLen(0):], data)
	return b
}
