package upstream

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Inbound traffic: answers go to the request waiting for them (on paho's goroutine, without
// blocking); desired patches, method requests and C2D messages go through bounded queues to
// worker goroutines that call the handlers, so a slow handler never stalls the link.

type desiredUpdate struct {
	id      sas.Identity
	patch   []byte
	version int64
}

type methodCall struct {
	id        sas.Identity
	name, rid string
	payload   []byte
}

type c2dMessage struct {
	id  sas.Identity
	msg iothub.Message
	ack func() // sends the PUBACK on the connection the message came on
}

// route is paho's handler for every message IoT Hub sends. It runs on paho's dispatch
// goroutine: it parses and hands over, never blocks and never calls a handler.
func (c *Client) route(cn *conn, m mqtt.Message) {
	topic := m.Topic()
	if !strings.HasPrefix(topic, iothub.OBOTopicPrefix) {
		t, err := iothub.ParseTopic(topic)
		if err != nil || t.Kind != iothub.KindC2D {
			c.log.Warn("ignoring a message on an unexpected topic", "topic", topic, "err", err)
			m.Ack()
			return
		}
		in := c2dMessage{id: sas.Identity{DeviceID: t.DeviceID}, msg: iothub.MessageFromBag(m.Payload(), t.Bag), ack: m.Ack}
		if !c.c2dQ.offer(in) {
			c.log.Warn("C2D queue full; message left unacknowledged for redelivery", "identity", in.id, "dropped_total", c.c2dQ.dropped.Load())
		}
		return
	}
	m.Ack() // every extension message is complete once read: answers, patches and requests are QoS 0 or idempotent
	t, err := iothub.ParseOBOTopic(topic)
	if err != nil {
		c.log.Warn("ignoring a malformed extension topic", "err", err)
		return
	}
	id := sas.Identity{DeviceID: t.DeviceID, ModuleID: t.ModuleID}
	switch t.Kind {
	case iothub.OBOTwinPatchDesired:
		if !c.desiredQ.offer(desiredUpdate{id: id, patch: m.Payload(), version: t.Version}) {
			c.log.Warn("desired patch queue full; patch dropped", "identity", id, "version", t.Version)
		}
	case iothub.OBOMethodRequest:
		if !c.methodQ.offer(methodCall{id: id, name: t.Method, rid: t.RequestID, payload: m.Payload()}) {
			c.log.Warn("method queue full; request dropped (the caller times out)", "identity", id, "method", t.Method)
		}
	default:
		if t.Kind.FromEdge() || !cn.deliver(t, m.Payload()) {
			c.log.Debug("ignoring an answer nobody waits for", "topic", topic)
		}
	}
}

// runWorkers runs the handler workers until ctx ends.
func (c *Client) runWorkers(ctx context.Context, wg *sync.WaitGroup) {
	start := func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn()
		}()
	}
	start(func() {
		c.desiredQ.run(ctx, func(u desiredUpdate) {
			c.mu.Lock()
			h := c.onDesired
			c.mu.Unlock()
			if h == nil {
				c.log.Warn("desired patch without a handler; dropped", "identity", u.id)
				return
			}
			c.safely("desired handler", func() { h(u.id, u.patch, u.version) })
		})
	})
	for range methodWorkers {
		start(func() {
			c.methodQ.run(ctx, func(m methodCall) {
				c.mu.Lock()
				h := c.onMethod
				c.mu.Unlock()
				if h == nil {
					c.log.Warn("method request without a handler; dropped", "identity", m.id, "method", m.name)
					return
				}
				c.safely("method handler", func() { h(m.id, m.name, m.rid, m.payload) })
			})
		})
	}
	start(func() {
		c.c2dQ.run(ctx, func(in c2dMessage) {
			c.mu.Lock()
			h := c.onC2D
			c.mu.Unlock()
			if h == nil {
				c.log.Warn("C2D message without a handler; left unacknowledged", "identity", in.id)
				return
			}
			var err error
			if !c.safely("C2D handler", func() { err = h(in.id, in.msg) }) {
				return
			}
			if err != nil {
				c.log.Warn("C2D handler refused the message; left unacknowledged for redelivery", "identity", in.id, "err", err)
				return
			}
			in.ack()
		})
	})
}

// safely runs a handler, turning a panic into a logged error, and reports whether fn
// returned normally.
func (c *Client) safely(what string, fn func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("handler panicked", "handler", what, "panic", r)
			ok = false
		}
	}()
	fn()
	return true
}

// queue is a bounded hand-off from paho's goroutine to a worker. offer never blocks; a full
// queue drops (the caller decides what a drop means) and counts.
type queue[T any] struct {
	ch      chan T
	dropped atomic.Int64
}

func newQueue[T any](size int) *queue[T] { return &queue[T]{ch: make(chan T, size)} }

func (q *queue[T]) offer(v T) bool {
	select {
	case q.ch <- v:
		return true
	default:
		q.dropped.Add(1)
		return false
	}
}

// run calls fn for each item, in order, until ctx ends.
func (q *queue[T]) run(ctx context.Context, fn func(T)) {
	for {
		select {
		case <-ctx.Done():
			return
		case v := <-q.ch:
			fn(v)
		}
	}
}
