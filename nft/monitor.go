package nft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Event is one nf_tables change notification of a namespace.
type Event struct {
	// Gen is set on the notification that ends a committed batch: the
	// ruleset generation the batch produced, with the task that sent it:
	// its ID (a thread ID in a multi-threaded process) and command name
	// (at most 15 bytes).
	Gen  uint32
	PID  uint32
	Proc string
	// Family and Table name the table of a changed table, chain, rule,
	// set, element or object ("" for other notifications).
	Family Family
	Table  string
	// Type is the notification's message type: unix.NFT_MSG_NEWTABLE,
	// NFT_MSG_DELSETELEM, ...
	Type uint16
	// Chain is the chain of a chain or rule notification, Set the set of
	// a set or element notification.
	Chain, Set string
	// Elements are the elements an element notification adds or
	// deletes, as [Conn.ReadSet] returns them (the data of verdict maps
	// aside).
	Elements []ElementState
	// Lost is set when the kernel dropped notifications because the
	// socket's buffer was full: anything may have changed.
	Lost bool
}

// Monitor receives the nf_tables notifications (netlink group
// NFNLGRP_NFTABLES) of a connection's namespace on its own socket.
// google/nftables v0.3.0 has a monitor too, but it cannot report lost
// notifications or the process behind a generation.
type Monitor struct {
	sock *netlink.Conn
}

// Monitor opens a monitor in the connection's namespace. Notifications
// are queued from this call on.
func (c *Conn) Monitor() (*Monitor, error) {
	c.mu.Lock()
	fd := c.NetNSFd()
	c.mu.Unlock()
	sock, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: fd})
	if err != nil {
		return nil, fmt.Errorf("monitor %s: %w", c.nsPath, err)
	}
	if err := forceBuffers(sock); err != nil {
		sock.Close()
		return nil, fmt.Errorf("monitor %s: %w", c.nsPath, err)
	}
	if err := sock.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		sock.Close()
		return nil, fmt.Errorf("monitor %s: join nftables group: %w", c.nsPath, err)
	}
	return &Monitor{sock: sock}, nil
}

// Receive waits for notifications and returns them in order. When the
// kernel dropped some, it returns an Event with Lost set (and no error).
// It returns an error once the monitor is closed.
func (m *Monitor) Receive() ([]Event, error) {
	msgs, err := m.sock.Receive()
	if err != nil {
		if errors.Is(err, unix.ENOBUFS) {
			return []Event{{Lost: true}}, nil
		}
		return nil, fmt.Errorf("monitor: %w", err)
	}
	out := make([]Event, 0, len(msgs))
	for _, msg := range msgs {
		if e, ok := decodeEvent(msg); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// Close closes the monitor; a blocked Receive returns.
func (m *Monitor) Close() error { return m.sock.Close() }

// decodeEvent decodes one notification.
func decodeEvent(msg netlink.Message) (Event, bool) {
	if uint16(msg.Header.Type)>>8 != unix.NFNL_SUBSYS_NFTABLES || len(msg.Data) < 4 {
		return Event{}, false
	}
	typ := uint16(msg.Header.Type) & 0xff
	ad, err := netlink.NewAttributeDecoder(msg.Data[4:])
	if err != nil {
		return Event{}, false
	}
	ad.ByteOrder = binary.BigEndian
	e := Event{Family: Family(msg.Data[0])}
	if typ == unix.NFT_MSG_NEWGEN {
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_GEN_ID:
				e.Gen = ad.Uint32()
			case unix.NFTA_GEN_PROC_PID:
				e.PID = ad.Uint32()
			case unix.NFTA_GEN_PROC_NAME:
				e.Proc = ad.String()
			}
		}
		return e, ad.Err() == nil
	}
	// The table's name is attribute 1 of every table, chain, rule, set,
	// element, object and flowtable message (NFTA_TABLE_NAME,
	// NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, ...).
	e.Type = typ
	for ad.Next() {
		switch {
		case ad.Type() == 1:
			e.Table = ad.String()
		case ad.Type() == unix.NFTA_RULE_CHAIN && (typ == unix.NFT_MSG_NEWRULE || typ == unix.NFT_MSG_DELRULE),
			ad.Type() == unix.NFTA_CHAIN_NAME && (typ == unix.NFT_MSG_NEWCHAIN || typ == unix.NFT_MSG_DELCHAIN):
			e.Chain = ad.String()
		case ad.Type() == unix.NFTA_SET_NAME && (typ == unix.NFT_MSG_NEWSET || typ == unix.NFT_MSG_DELSET),
			ad.Type() == unix.NFTA_SET_ELEM_LIST_SET && (typ == unix.NFT_MSG_NEWSETELEM || typ == unix.NFT_MSG_DELSETELEM):
			e.Set = ad.String()
		case ad.Type() == unix.NFTA_SET_ELEM_LIST_ELEMENTS && (typ == unix.NFT_MSG_NEWSETELEM || typ == unix.NFT_MSG_DELSETELEM):
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					nd.Nested(func(ed *netlink.AttributeDecoder) error {
						el, err := decodeElem(ed)
						if err == nil {
							e.Elements = append(e.Elements, el)
						}
						return err
					})
				}
				return nil
			})
		}
	}
	return e, ad.Err() == nil
}
