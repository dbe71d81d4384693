package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// rawConn is a NETLINK_NETFILTER socket driven with plain blocking
// sendmsg/recvmsg on the calling thread, without the runtime's poller and
// without a value per message: requests, one-element gets and batches
// cost one system call each way. The kernel handles nfnetlink requests
// and batches synchronously inside sendmsg, so every reply to a message
// is queued when sendmsg returns.
type rawConn struct {
	fd   int
	w    msgWriter
	rbuf []byte
}

// rawRecvBuf is the receive buffer: the kernel caps a dump's messages at
// 32 KiB, other replies are small.
const rawRecvBuf = 64 << 10

// socketTimeout bounds a blocking receive (replies are queued before
// sendmsg returns, so it is never reached in practice).
const socketTimeout = 30

// dialRaw opens a NETLINK_NETFILTER socket in the namespace open as nsFd.
func dialRaw(nsFd int) (*rawConn, error) {
	fd := -1
	err := inNetNSFd(nsFd, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	r := &rawConn{fd: fd, rbuf: make([]byte, rawRecvBuf)}
	if err := r.setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return r, nil
}

func (r *rawConn) setup() error {
	for _, opt := range []int{unix.SO_RCVBUFFORCE, unix.SO_SNDBUFFORCE} {
		if err := unix.SetsockoptInt(r.fd, unix.SOL_SOCKET, opt, socketBuffer); err != nil {
			return fmt.Errorf("netlink socket buffer: %w", err)
		}
	}
	// Errors need not echo the request (a batch can be megabytes).
	_ = unix.SetsockoptInt(r.fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	tv := unix.Timeval{Sec: socketTimeout}
	if err := unix.SetsockoptTimeval(r.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("netlink socket timeout: %w", err)
	}
	return unix.Bind(r.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

func (r *rawConn) close() error {
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}

var kernelAddr = &unix.SockaddrNetlink{Family: unix.AF_NETLINK}

// send sends the writer's buffer as one datagram, with sendmsg(2) as
// netlink libraries do (tests trace that call).
func (r *rawConn) send() error {
	for {
		_, err := unix.SendmsgN(r.fd, r.w.b, nil, kernelAddr, 0)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// recv reads one datagram; with wait false it returns (nil, nil) when
// nothing is queued.
func (r *rawConn) recv(wait bool) ([]byte, error) {
	flags := 0
	if !wait {
		flags = unix.MSG_DONTWAIT
	}
	for {
		n, _, rflags, _, err := unix.Recvmsg(r.fd, r.rbuf, nil, flags)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case !wait && errors.Is(err, unix.EAGAIN):
			return nil, nil
		case err != nil:
			return nil, err
		case rflags&unix.MSG_TRUNC != 0:
			return nil, errors.New("netlink reply truncated")
		}
		return r.rbuf[:n], nil
	}
}

// request sends the one request message the writer holds (sequence
// number r.w.seq) and passes every reply message of it to each: the
// parts of a dump until its end, else the one reply. An error reply is
// returned as a *netlink.OpError wrapping the errno, as
// mdlayher/netlink's Execute does.
func (r *rawConn) request(dump bool, each func(nlMsg) error) error {
	seq := r.w.seq
	if err := r.send(); err != nil {
		return &netlink.OpError{Op: "send", Err: os.NewSyscallError("sendto", err)}
	}
	for {
		b, err := r.recv(true)
		if err != nil {
			return &netlink.OpError{Op: "receive", Err: os.NewSyscallError("recvmsg", err)}
		}
		done := false
		var ferr error
		parseMsgs(b, func(m nlMsg) bool {
			if m.seq != seq {
				return true // a late reply to an earlier request
			}
			switch m.typ {
			case unix.NLMSG_ERROR:
				if e := m.errno(); e != 0 {
					ferr = &netlink.OpError{Op: "receive", Err: e}
				}
				done = true
				return false
			case unix.NLMSG_DONE:
				done = true
				return false
			case unix.NLMSG_NOOP, unix.NLMSG_OVERRUN:
				return true
			}
			if ferr = each(m); ferr != nil {
				done = true
				return false
			}
			if !dump {
				done = true
				return false
			}
			return true
		})
		if done {
			return ferr
		}
	}
}

// getReq encodes a request without attributes beyond those add writes.
func (r *rawConn) getReq(typ uint16, flags uint16, family uint8, add func(w *msgWriter)) {
	r.w.b = r.w.b[:0]
	start := r.w.nfMsg(typ, unix.NLM_F_REQUEST|flags, family, 0)
	if add != nil {
		add(&r.w)
	}
	r.w.end(start)
}

// getU32 sends a get request of type typ (family AF_UNSPEC, no
// attributes) and returns the big-endian 32-bit attribute attr of its
// reply, and whether the reply had it. ctnetlink answers its statistics
// request with a lone NLM_F_MULTI message without NLMSG_DONE, which a
// request that is not a dump takes as the whole reply.
func (r *rawConn) getU32(typ, attr uint16) (v uint32, found bool, err error) {
	r.getReq(typ, 0, unix.AF_UNSPEC, nil)
	err = r.request(false, func(m nlMsg) error {
		if len(m.data) < 4 {
			return nil
		}
		ad, err := netlink.NewAttributeDecoder(m.data[4:])
		if err != nil {
			return err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == attr {
				v, found = ad.Uint32(), true
			}
		}
		return ad.Err()
	})
	return v, found, err
}

// batchResult reads the replies to a batch just sent, whose messages
// have sequence numbers first..last, and returns the error of the first
// message that failed. Without NLM_F_ACK on its messages only failures
// are answered, and the kernel answers before sendmsg returns, so what is
// queued is the whole answer. A failure of the batch header (first)
// stands for the whole batch (a generation mismatch is ERESTART).
func (r *rawConn) batchResult(first, last uint32) (failed uint32, errno unix.Errno, err error) {
	for {
		b, err := r.recv(false)
		if err != nil {
			return 0, 0, err
		}
		if b == nil {
			return failed, errno, nil
		}
		parseMsgs(b, func(m nlMsg) bool {
			if m.typ != unix.NLMSG_ERROR || m.seq < first || m.seq > last {
				return true
			}
			if e := m.errno(); e != 0 && (errno == 0 || m.seq < failed) {
				failed, errno = m.seq, e
			}
			return true
		})
	}
}

// inNetNSFd runs fn on a locked OS thread inside the namespace open as
// nsFd, entering it only when the thread is not already there, and moves
// the thread back afterwards. If the thread cannot be moved back it stays
// locked, so the Go runtime discards it.
//
// A thread that dnft moves to another namespace stays locked until it is
// back, so every unlocked thread is in the process's own namespace: when
// that is nsFd's (a command run by `ip netns exec`), fn runs without
// locking a thread at all (the first lock of a process starts a thread).
func inNetNSFd(nsFd int, fn func() error) error {
	var want, cur unix.Stat_t
	if err := unix.Fstat(nsFd, &want); err != nil {
		return fmt.Errorf("stat network namespace: %w", err)
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &cur); err == nil && cur.Dev == want.Dev && cur.Ino == want.Ino {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current network namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(nsFd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return errors.Join(ferr, fmt.Errorf("restore network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// execute sends one request built as a netlink.Message and returns its
// replies (copied out of the receive buffer), for requests off the hot
// path. Errors are as [rawConn.request]'s.
func (r *rawConn) execute(req netlink.Message) ([]netlink.Message, error) {
	if len(req.Data) < 4 {
		return nil, errors.New("netlink request without nfgenmsg")
	}
	r.w.b = r.w.b[:0]
	start := r.w.nfMsg(uint16(req.Header.Type), uint16(req.Header.Flags), req.Data[0], 0)
	copy(r.w.b[start+unix.NLMSG_HDRLEN:], req.Data[:4])
	r.w.b = append(r.w.b, req.Data[4:]...)
	r.w.end(start)
	var out []netlink.Message
	err := r.request(req.Header.Flags&netlink.Dump != 0, func(m nlMsg) error {
		out = append(out, netlink.Message{
			Header: netlink.Header{Length: uint32(unix.NLMSG_HDRLEN + len(m.data)), Type: netlink.HeaderType(m.typ), Flags: netlink.HeaderFlags(m.flags), Sequence: m.seq},
			Data:   append([]byte(nil), m.data...),
		})
		return nil
	})
	return out, err
}
