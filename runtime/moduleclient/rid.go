package moduleclient

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// ridSource hands out twin request ids ($rid). Each id is a random per-client prefix plus a
// counter, e.g. "3f9a1c0de2b4-17": unique within the client (the counter), unlikely to collide
// with another client's ids or with a previous run of this one after a restart (the prefix), and
// made only of [0-9a-f-], so it passes iothub.ValidateRequestID and survives the positional
// parsers of every SDK and hub.
type ridSource struct {
	prefix string
	n      atomic.Uint64
}

// newRIDSource returns a source with a fresh random prefix.
func newRIDSource() *ridSource {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return &ridSource{prefix: hex.EncodeToString(b[:])}
}

// next returns the next request id.
func (s *ridSource) next() string {
	return s.prefix + "-" + strconv.FormatUint(s.n.Add(1), 10)
}
