package main

import (
	"encoding/json"
	"strconv"
	"time"
)

// sentAtLayout is RFC 3339 with nanoseconds and no trailing-zero trimming, so that every
// timestamp has the same length (30 bytes in UTC) and the padding, computed per message,
// stays simple.
const sentAtLayout = "2006-01-02T15:04:05.000000000Z07:00"

// buildBody returns the body of message seq:
//
//	{"seq":N,"sender":"<sender>","sentAt":"<RFC 3339, ns>","pad":"xxxx..."}
//
// padded with 'x' to exactly size bytes. When size is smaller than the body without padding
// (about 100 bytes), the body is that, unpadded.
func buildBody(seq uint64, sender string, sentAt time.Time, size int) []byte {
	name, _ := json.Marshal(sender) // a string always marshals
	b := make([]byte, 0, max(size, 128))
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"sender":`...)
	b = append(b, name...)
	b = append(b, `,"sentAt":"`...)
	b = sentAt.UTC().AppendFormat(b, sentAtLayout)
	b = append(b, `","pad":"`...)
	const closing = `"}`
	for range size - len(b) - len(closing) {
		b = append(b, 'x')
	}
	return append(b, closing...)
}
