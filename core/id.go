package core

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"time"
)

var idState struct {
	mu     sync.Mutex
	lastMS int64
	seq    uint16 // 12-bit counter in rand_a
}

// NewID returns a new UUIDv7 (RFC 9562) in canonical text form. IDs are
// time-ordered, and strictly increasing within a process: the 12-bit rand_a
// field is a counter within the same millisecond (seeded randomly), and the
// timestamp is advanced when it overflows.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[6:]); err != nil {
		panic("core: crypto/rand failed: " + err.Error())
	}
	idState.mu.Lock()
	ms := time.Now().UnixMilli()
	if ms <= idState.lastMS {
		ms = idState.lastMS
		idState.seq++
		if idState.seq > 0x0fff {
			ms++
			idState.seq = uint16(b[6]&0x07)<<8 | uint16(b[7])
		}
	} else {
		idState.seq = uint16(b[6]&0x07)<<8 | uint16(b[7]) // leave headroom
	}
	idState.lastMS = ms
	seq := idState.seq
	idState.mu.Unlock()

	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(ms))
	copy(b[0:6], ts[2:8])
	b[6] = 0x70 | byte(seq>>8)&0x0f
	b[7] = byte(seq)
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return formatUUID(b)
}

// NewToken returns 128 random bits as 32 hex characters.
func NewToken() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("core: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

func formatUUID(b [16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
