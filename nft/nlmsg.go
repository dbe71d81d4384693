package nft

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// msgWriter appends netlink messages and attributes to one buffer, so
// that a batch is encoded without a value per attribute. Attribute
// lengths and message lengths are patched when a nest or a message ends.
type msgWriter struct {
	b   []byte
	seq uint32
}

// nfMsg starts an nfnetlink message: the netlink header (length patched by
// end) and the nfgenmsg header. It returns the message's start offset.
func (w *msgWriter) nfMsg(typ, flags uint16, family uint8, resID uint16) int {
	start := len(w.b)
	w.seq++
	w.b = binary.NativeEndian.AppendUint32(w.b, 0) // length, patched by end
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = binary.NativeEndian.AppendUint16(w.b, flags)
	w.b = binary.NativeEndian.AppendUint32(w.b, w.seq)
	w.b = binary.NativeEndian.AppendUint32(w.b, 0) // port id: the kernel's
	w.b = append(w.b, family, unix.NFNETLINK_V0)
	w.b = binary.BigEndian.AppendUint16(w.b, resID)
	return start
}

// end patches the length of the message that starts at start and aligns
// the buffer for the next one.
func (w *msgWriter) end(start int) {
	binary.NativeEndian.PutUint32(w.b[start:], uint32(len(w.b)-start))
	w.pad()
}

// attr appends one attribute, padded to 4 bytes.
func (w *msgWriter) attr(typ uint16, data []byte) {
	w.b = binary.NativeEndian.AppendUint16(w.b, uint16(unix.NLA_HDRLEN+len(data)))
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = append(w.b, data...)
	w.pad()
}

// attrU32 appends a big-endian u32 attribute (nftables' byte order).
func (w *msgWriter) attrU32(typ uint16, v uint32) {
	w.b = binary.NativeEndian.AppendUint16(w.b, unix.NLA_HDRLEN+4)
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = binary.BigEndian.AppendUint32(w.b, v)
}

// attrStr appends a NUL-terminated string attribute.
func (w *msgWriter) attrStr(typ uint16, s string) {
	w.b = binary.NativeEndian.AppendUint16(w.b, uint16(unix.NLA_HDRLEN+len(s)+1))
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
	w.pad()
}

// nest starts a nested attribute and returns its offset for endNest.
func (w *msgWriter) nest(typ uint16) int {
	start := len(w.b)
	w.b = binary.NativeEndian.AppendUint16(w.b, 0)
	w.b = binary.NativeEndian.AppendUint16(w.b, typ|unix.NLA_F_NESTED)
	return start
}

// endNest patches the length of the nest that starts at start.
func (w *msgWriter) endNest(start int) {
	binary.NativeEndian.PutUint16(w.b[start:], uint16(len(w.b)-start))
}

func (w *msgWriter) pad() {
	for len(w.b)%unix.NLA_ALIGNTO != 0 {
		w.b = append(w.b, 0)
	}
}

// nlMsg is one received netlink message; data is the payload after the
// netlink header (for nfnetlink, the nfgenmsg header first).
type nlMsg struct {
	typ   uint16
	flags uint16
	seq   uint32
	data  []byte
}

// parseMsgs splits a received buffer into messages. It stops at the first
// malformed header.
func parseMsgs(b []byte, each func(nlMsg) bool) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return
		}
		m := nlMsg{
			typ:   binary.NativeEndian.Uint16(b[4:]),
			flags: binary.NativeEndian.Uint16(b[6:]),
			seq:   binary.NativeEndian.Uint32(b[8:]),
			data:  b[unix.NLMSG_HDRLEN:l],
		}
		if !each(m) {
			return
		}
		al := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if al > len(b) {
			return
		}
		b = b[al:]
	}
}

// errno returns the error code of an NLMSG_ERROR message (0 for an ack).
func (m nlMsg) errno() unix.Errno {
	if len(m.data) < 4 {
		return unix.EBADMSG
	}
	return unix.Errno(-int32(binary.NativeEndian.Uint32(m.data)))
}

// forAttrs calls fn with the type (less the nesting and byte-order
// flags) and payload of each attribute of b, strictly: a length that
// does not fit is an error.
func forAttrs(b []byte, fn func(typ uint16, data []byte) error) error {
	for len(b) > 0 {
		if len(b) < unix.NLA_HDRLEN {
			return errors.New("netlink attribute: truncated header")
		}
		l := int(binary.NativeEndian.Uint16(b))
		if l < unix.NLA_HDRLEN || l > len(b) {
			return errors.New("netlink attribute: length out of range")
		}
		if err := fn(binary.NativeEndian.Uint16(b[2:])&nlaTypeMask, b[unix.NLA_HDRLEN:l]); err != nil {
			return err
		}
		b = b[min((l+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1), len(b)):]
	}
	return nil
}
