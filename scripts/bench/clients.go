package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// epoch is the harness's time origin. Payloads carry their send time as an offset from it
// (time.Since uses the monotonic clock), and publisher and subscriber share the process,
// hence the clock.
var epoch = time.Now()

func sinceEpoch() time.Duration { return time.Since(epoch) }

// Every payload starts with a header: the message id (unique in a run) and the send time,
// then zero padding up to the payload size.
const headerSize = 16

func payload(size int, id uint64, sent time.Duration) []byte {
	b := make([]byte, max(size, headerSize))
	binary.BigEndian.PutUint64(b[0:8], id)
	binary.BigEndian.PutUint64(b[8:16], uint64(sent))
	return b
}

func parsePayload(b []byte) (id uint64, sent time.Duration, ok bool) {
	if len(b) < headerSize {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[0:8]), time.Duration(binary.BigEndian.Uint64(b[8:16])), true
}

// connectTimeout bounds one CONNECT and one SUBSCRIBE.
const connectTimeout = 10 * time.Second

// connect opens a paho client to addr as spec, with automatic reconnection off: a
// dropped connection fails the run rather than hiding in a retry. lost receives the
// error if the connection drops later.
func connect(addr string, spec clientSpec, lost func(error)) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(spec.ClientID).SetUsername(spec.Username).SetPassword(spec.Password).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).SetConnectTimeout(connectTimeout).
		SetOrderMatters(true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			if lost != nil {
				lost(fmt.Errorf("%s: %w: %w", spec.ClientID, errLost, err))
			}
		})
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(connectTimeout) {
		return nil, fmt.Errorf("connect %s to %s: no CONNACK within %v", spec.ClientID, addr, connectTimeout)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect %s to %s: %w", spec.ClientID, addr, err)
	}
	return c, nil
}

// failure holds the first error of a run reported from a client callback.
type failure struct {
	once sync.Once
	err  error
	ch   chan struct{} // closed on the first error
}

func newFailure() *failure { return &failure{ch: make(chan struct{})} }

// get returns the first error, or nil when there was none yet.
func (f *failure) get() error {
	select {
	case <-f.ch:
		return f.err
	default:
		return nil
	}
}

func (f *failure) set(err error) {
	f.once.Do(func() {
		f.err = err
		close(f.ch)
	})
}

// receiver is the subscriber of a run: it counts the distinct message ids it receives
// (duplicates, allowed by QoS 1, are counted apart), notes when the last new one arrived,
// and, once recordAfter is set, keeps the end-to-end latency of the messages sent at or
// after it.
type receiver struct {
	client paho.Client

	mu          sync.Mutex
	seen        []bool // by message id
	unique      int
	dups        int
	unknown     int // ids out of range: would mean a broken harness
	last        time.Duration
	recordAfter time.Duration // send time from which latencies are kept; never by default
	latencies   []time.Duration
	done        chan struct{} // closed when every id in seen has arrived
}

// subscribe connects the subscriber and subscribes to spec.Topic at QoS 1, expecting
// message ids 0..expect-1.
func subscribe(addr string, spec clientSpec, expect int, fail *failure) (*receiver, error) {
	r := &receiver{seen: make([]bool, expect), recordAfter: math.MaxInt64, done: make(chan struct{})}
	c, err := connect(addr, spec, fail.set)
	if err != nil {
		return nil, err
	}
	r.client = c
	tok := c.Subscribe(spec.Topic, 1, r.handle)
	if !tok.WaitTimeout(connectTimeout) || tok.Error() != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("subscribe %s to %q: %v", spec.ClientID, spec.Topic, tok.Error())
	}
	return r, nil
}

func (r *receiver) handle(_ paho.Client, m paho.Message) {
	now := sinceEpoch()
	id, sent, ok := parsePayload(m.Payload())
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !ok || id >= uint64(len(r.seen)):
		r.unknown++
	case r.seen[id]:
		r.dups++
	default:
		r.seen[id] = true
		r.unique++
		r.last = now
		if sent >= r.recordAfter {
			r.latencies = append(r.latencies, now-sent)
		}
		if r.unique == len(r.seen) {
			close(r.done)
		}
	}
}

// recordLatency keeps, from now on, the latency of messages sent at or after from.
func (r *receiver) recordLatency(from time.Duration, capacity int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recordAfter = from
	r.latencies = make([]time.Duration, 0, capacity)
}

// takeLatencies returns the recorded latencies, sorted.
func (r *receiver) takeLatencies() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.latencies
	r.latencies = nil
	slices.Sort(l)
	return l
}

// counts returns what has arrived so far.
func (r *receiver) counts() (unique, dups, unknown int, last time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unique, r.dups, r.unknown, r.last
}

// wait waits until every expected message arrived (true), or ctx ended or the run failed
// (false).
func (r *receiver) wait(ctx context.Context, fail *failure) bool {
	select {
	case <-r.done:
		return true
	case <-ctx.Done():
	case <-fail.ch:
	}
	return false
}

// publisher publishes at QoS 1 with at most window publishes awaiting their PUBACK, so
// that one client keeps several messages in flight, as SDKs do.
type publisher struct {
	client  paho.Client
	topic   string
	window  int
	pending []paho.Token
}

func newPublisher(addr string, spec clientSpec, window int, fail *failure) (*publisher, error) {
	c, err := connect(addr, spec, fail.set)
	if err != nil {
		return nil, err
	}
	return &publisher{client: c, topic: spec.Topic, window: window}, nil
}

// ackTimeout bounds the wait for one PUBACK.
const ackTimeout = 30 * time.Second

// publish sends body, first waiting for the oldest PUBACK when the window is full.
func (p *publisher) publish(body []byte) error {
	if len(p.pending) >= p.window {
		if err := p.waitOldest(); err != nil {
			return err
		}
	}
	p.pending = append(p.pending, p.client.Publish(p.topic, 1, false, body))
	return nil
}

func (p *publisher) waitOldest() error {
	tok := p.pending[0]
	p.pending = p.pending[1:]
	if !tok.WaitTimeout(ackTimeout) {
		return fmt.Errorf("publish: no PUBACK within %v", ackTimeout)
	}
	return tok.Error()
}

// flush waits for every outstanding PUBACK.
func (p *publisher) flush() error {
	for len(p.pending) > 0 {
		if err := p.waitOldest(); err != nil {
			return err
		}
	}
	return nil
}

// disconnectAll closes the clients, waiting briefly for each DISCONNECT to go out.
func disconnectAll(r *receiver, pubs []*publisher) {
	for _, p := range pubs {
		if p != nil {
			p.client.Disconnect(50)
		}
	}
	if r != nil {
		r.client.Disconnect(50)
	}
}

// connectPublishers connects n publishers of b.
func connectPublishers(b *broker, n, window int, fail *failure) ([]*publisher, error) {
	pubs := make([]*publisher, 0, n)
	for i := range n {
		p, err := newPublisher(b.addr, b.publisher(i), window, fail)
		if err != nil {
			disconnectAll(nil, pubs)
			return nil, err
		}
		pubs = append(pubs, p)
	}
	return pubs, nil
}
