// Command echod is the server and client that the Docker twin puts in its
// container image (built static, CGO_ENABLED=0). It speaks the test
// harness's echo protocol: a TCP server reads one line and answers with the
// client's address as it saw it; a UDP server answers every datagram the
// same way. So a probe tells DNAT (the client's own address) from
// docker-proxy (the bridge gateway's address).
//
//	echod serve tcp:80 udp:81 ...   serve until SIGTERM or SIGINT
//	echod dial tcp|udp HOST:PORT     one exchange; prints the answer
//
// dial resolves HOST with the container's own resolver configuration
// (/etc/resolv.conf, Docker's embedded DNS on user networks).
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: echod serve PROTO:PORT... | echod dial PROTO HOST:PORT")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "dial":
		if len(os.Args) != 4 {
			err = fmt.Errorf("dial needs PROTO and HOST:PORT")
			break
		}
		err = dial(os.Args[2], os.Args[3])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "echod:", err)
		os.Exit(1)
	}
}

func serve(specs []string) error {
	for _, s := range specs {
		proto, port, ok := strings.Cut(s, ":")
		if !ok {
			return fmt.Errorf("bad spec %q (want tcp:PORT or udp:PORT)", s)
		}
		switch proto {
		case "tcp":
			ln, err := net.Listen("tcp", ":"+port)
			if err != nil {
				return err
			}
			go serveTCP(ln)
		case "udp":
			pc, err := net.ListenPacket("udp", ":"+port)
			if err != nil {
				return err
			}
			go serveUDP(pc)
		default:
			return fmt.Errorf("bad protocol in %q", s)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return nil
}

func serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadString('\n'); err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			_, _ = io.WriteString(c, unmap(host)+"\n")
		}()
	}
}

func serveUDP(pc net.PacketConn) {
	buf := make([]byte, 65536)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			continue
		}
		host, _, _ := net.SplitHostPort(from.String())
		_, _ = pc.WriteTo([]byte(unmap(host)+"\n"), from)
	}
}

func unmap(host string) string { return strings.TrimPrefix(host, "::ffff:") }

func dial(proto, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, proto, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "echod\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	fmt.Print(line)
	return nil
}
