package hub

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// envelopeVersion is the first byte of every stored message. Any change to the layout
// below needs a new version, a decoder for the old one and a fixture in testdata/.
const envelopeVersion = 1

// envelope is what the hub stores for one ingested message: the message and who sent it
// when. Stored once in the store, however many queues reference it.
//
// Layout, version 1 (uvarint = encoding/binary unsigned varint; str = uvarint length then
// bytes; map = uvarint count then count × (str key, str value), keys sorted):
//
//	byte     version (1)
//	varint   enqueued time, Unix nanoseconds
//	str      sender device id
//	str      sender module id ("" for a device)
//	map      system properties (iothub.Message.System)
//	map      application properties (iothub.Message.Properties)
//	rest     body
type envelope struct {
	Sender   sas.Identity
	Enqueued time.Time
	Message  iothub.Message
}

// encode returns the stored form of e.
func (e *envelope) encode() []byte {
	return e.appendTo(make([]byte, 0, e.encodedSize()))
}

// encodedSize is at least the length of e's stored form.
func (e *envelope) encodedSize() int {
	m := e.Message
	n := 1 + binary.MaxVarintLen64 + len(m.Body) + 2*binary.MaxVarintLen64 +
		len(e.Sender.DeviceID) + len(e.Sender.ModuleID) + 2*binary.MaxVarintLen64
	for k, v := range m.System {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	for k, v := range m.Properties {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	return n
}

// appendTo appends the stored form of e to b.
func (e *envelope) appendTo(b []byte) []byte {
	m := e.Message
	b = append(b, envelopeVersion)
	b = binary.AppendVarint(b, e.Enqueued.UnixNano())
	b = appendString(b, e.Sender.DeviceID)
	b = appendString(b, e.Sender.ModuleID)
	b = appendMap(b, m.System)
	b = appendMap(b, m.Properties)
	return append(b, m.Body...)
}

// bodies recycles the buffers of encoded envelopes between ingest and the store: one is
// taken for each message appended and given back once the store has committed (or
// refused) it, when the store no longer reads it. Buffers above maxPooledBody are left
// to the collector, so a burst of large messages does not stay in the pool.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledBody = 64 << 10

// encodePooled returns e's stored form in a buffer from bodies; give it back with
// releaseBody once nothing reads it.
func (e *envelope) encodePooled() *[]byte {
	b := bodies.Get().(*[]byte)
	if n := e.encodedSize(); cap(*b) < n {
		*b = make([]byte, 0, n)
	}
	*b = e.appendTo((*b)[:0])
	return b
}

func releaseBody(b *[]byte) {
	if b != nil && cap(*b) <= maxPooledBody {
		bodies.Put(b)
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendMap(b []byte, m map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	var small [16]string // most messages carry fewer properties: no allocation
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, m[k])
	}
	return b
}

// decodeEnvelope parses the stored form. Errors wrap ErrCorrupt. The body aliases b.
func decodeEnvelope(b []byte) (envelope, error) {
	d := decoder{b: b}
	var e envelope
	if v := d.byte(); d.err == nil && v != envelopeVersion {
		return envelope{}, fmt.Errorf("%w: envelope version %d, want %d", ErrCorrupt, v, envelopeVersion)
	}
	e.Enqueued = time.Unix(0, d.varint()).UTC()
	e.Sender.DeviceID = d.string()
	e.Sender.ModuleID = d.string()
	e.Message.System = d.stringMap()
	e.Message.Properties = d.stringMap()
	if d.err != nil {
		return envelope{}, fmt.Errorf("%w: %w", ErrCorrupt, d.err)
	}
	e.Message.Body = d.b
	return e, nil
}

// decoder reads the envelope layout; the first error sticks and later reads return zero
// values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or invalid %s", what)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("version")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint("string length")
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) stringMap() map[string]string {
	n := d.uvarint("map size")
	if d.err != nil {
		return nil
	}
	// Each entry takes at least two bytes, which bounds the allocation by the input.
	if n > uint64(len(d.b))/2 {
		d.fail("map size")
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.string()
		v := d.string()
		if d.err != nil {
			return nil
		}
		m[k] = v
	}
	return m
}
