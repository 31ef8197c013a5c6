package perclient

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

// wire is one MQTT connection of a session, used once: a reconnection builds a new wire
// (and a new paho client), so that nothing leaks from one connection to the next.
type wire struct {
	pc mqtt.Client
	// lost is closed, exactly once, when the connection is over for whatever reason; err
	// then says why.
	lost     chan struct{}
	lostOnce sync.Once
	err      error
	started  time.Time

	subMu      sync.Mutex
	subscribed map[string]byte // filter -> QoS, as acknowledged

	// The telemetry in flight, in publish order; ackLoop resolves it.
	mu      sync.Mutex
	flights []*sending
	dead    bool          // lost: no more flights are taken
	more    chan struct{} // size 1: a flight was added
}

func newWire() *wire {
	return &wire{lost: make(chan struct{}), subscribed: map[string]byte{}, more: make(chan struct{}, 1)}
}

// markLost records why the connection ended and wakes everyone waiting on it.
func (w *wire) markLost(err error) {
	w.lostOnce.Do(func() {
		w.err = err
		w.mu.Lock()
		w.dead = true
		w.mu.Unlock()
		close(w.lost)
	})
}

// close ends the connection on our initiative.
func (w *wire) close(reason error) {
	w.markLost(reason)
	w.pc.Disconnect(disconnectQuiesce)
}

// errLost is the reason of a connection the network or IoT Hub closed.
var errLost = errors.New("connection lost")

// dial opens one connection as the session's identity with password and subscribes to
// what the session wants. It returns a usable wire, or the attempt's kind and error.
func (s *session) dial(ctx context.Context, password string) (*wire, attemptKind, error) {
	w := newWire()
	o := mqtt.NewClientOptions().
		AddBroker(s.l.broker).
		SetClientID(s.clientID).
		SetUsername(s.username).
		SetPassword(password).
		SetProtocolVersion(4). // explicit, or paho falls back to 3.1 after a refusal
		// A clean session: every connection subscribes to exactly what the local client holds
		// now, with nothing left over from an earlier one (IoT Hub keeps a device's C2D
		// messages in its queue either way).
		SetCleanSession(true).
		SetKeepAlive(s.l.opts.KeepAlive).
		SetConnectTimeout(connectTimeout).
		// A write to a dead route must not hold the $upstream pump (which publishes) for
		// longer than the keep-alive takes to notice it.
		SetWriteTimeout(s.l.opts.KeepAlive).
		SetAutoReconnect(false). // the session reconnects, with the token it holds then
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetStore(mqtt.NewMemoryStore()).
		SetTLSConfig(s.l.tls).
		// In-order dispatch on paho's goroutine: route only parses and hands over, and the
		// acknowledgements are sent once the hub has the message.
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { s.route(w, m) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			w.markLost(fmt.Errorf("%w: %w", errLost, err))
		})
	w.pc = mqtt.NewClient(o)
	tok := w.pc.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		go func() { // let the attempt finish in the background, then drop it
			<-tok.Done()
			w.close(ctx.Err())
		}()
		return nil, attemptOffline, fmt.Errorf("connect as %q: %w", s.clientID, ctx.Err())
	}
	rc := tok.(*mqtt.ConnectToken).ReturnCode()
	if err := tok.Error(); err != nil {
		kind := classify(rc, err)
		if kind == attemptRefused {
			err = fmt.Errorf("%w (CONNACK %#02x): %w", ErrRefused, rc, err)
		}
		return nil, kind, fmt.Errorf("connect as %q: %w", s.clientID, err)
	}
	w.started = time.Now()
	if err := w.sync(ctx, s.wantedFilters()); err != nil {
		w.close(err)
		return nil, attemptOffline, fmt.Errorf("connect as %q: %w", s.clientID, err)
	}
	go w.ackLoop(s)
	return w, attemptOK, nil
}

// sync makes the connection's subscriptions what want says: it subscribes to the missing
// filters (one SUBSCRIBE) and unsubscribes from those no longer wanted, so that IoT Hub
// forwards to the hub exactly what the local client subscribed to.
func (w *wire) sync(ctx context.Context, want map[string]byte) error {
	w.subMu.Lock()
	defer w.subMu.Unlock()
	missing := map[string]byte{}
	var extra []string
	for f, qos := range want {
		if got, ok := w.subscribed[f]; !ok || got != qos {
			missing[f] = qos
		}
	}
	for f := range w.subscribed {
		if _, ok := want[f]; !ok {
			extra = append(extra, f)
		}
	}
	if len(missing) > 0 {
		filters := make([]string, 0, len(missing))
		for f := range missing {
			filters = append(filters, f)
		}
		sort.Strings(filters)
		tok := w.pc.SubscribeMultiple(missing, nil)
		if err := w.await(ctx, tok, "subscribe "+strings.Join(filters, ", ")); err != nil {
			return err
		}
		granted := tok.(*mqtt.SubscribeToken).Result()
		for _, f := range filters {
			if qos, ok := granted[f]; !ok || qos > 2 {
				return fmt.Errorf("subscribe %s: refused (SUBACK 0x80)", f)
			}
			w.subscribed[f] = missing[f]
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		if err := w.await(ctx, w.pc.Unsubscribe(extra...), "unsubscribe "+strings.Join(extra, ", ")); err != nil {
			return err
		}
		for _, f := range extra {
			delete(w.subscribed, f)
		}
	}
	return nil
}

// await waits for a paho token, the connection's loss or ctx.
func (w *wire) await(ctx context.Context, tok mqtt.Token, what string) error {
	t := time.NewTimer(subscribeTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case <-w.lost:
		return fmt.Errorf("%s: %w", what, w.err)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	case <-t.C:
		return fmt.Errorf("%s: no answer within %v", what, subscribeTimeout)
	}
}

// track adds a telemetry message just published to the flights; false once the
// connection is lost (the caller fails it at once).
func (w *wire) track(o *sending) bool {
	w.mu.Lock()
	if w.dead {
		w.mu.Unlock()
		return false
	}
	w.flights = append(w.flights, o)
	w.mu.Unlock()
	select {
	case w.more <- struct{}{}:
	default:
	}
	return true
}

// next returns the oldest flight, waiting for one; nil once the connection is lost and
// every flight was handed out.
func (w *wire) next() *sending {
	for {
		w.mu.Lock()
		if len(w.flights) > 0 {
			o := w.flights[0]
			w.flights[0] = nil
			w.flights = w.flights[1:]
			w.mu.Unlock()
			return o
		}
		dead := w.dead
		w.mu.Unlock()
		if dead {
			return nil
		}
		select {
		case <-w.more:
		case <-w.lost:
		}
	}
}

// ackLoop resolves the telemetry in flight, oldest first, for the life of the connection:
// a PUBACK is success; a connection lost first fails the message (and every later one)
// as offline, since IoT Hub may or may not have it (the pump sends it again: at least
// once). One goroutine per connection rather than one per message.
func (w *wire) ackLoop(s *session) {
	for o := w.next(); o != nil; o = w.next() {
		select {
		case <-o.tok.Done():
			if err := o.tok.Error(); err != nil {
				o.finish(s.offline("telemetry not acknowledged", err))
				continue
			}
			o.finish(nil)
		case <-w.lost:
			o.finish(s.offline("connection lost before IoT Hub acknowledged the message", w.err))
		}
	}
}

// publish sends payload at QoS 1 on the wire and waits for the PUBACK.
func (w *wire) publish(ctx context.Context, topic string, payload []byte) error {
	return w.await(ctx, w.pc.Publish(topic, 1, false, payload), "publish "+topic)
}

// wantedFilters returns the subscriptions the session needs, with their QoS: twin
// responses always (GET and reported patches use them), and what the local client
// subscribed to. Method requests are QoS 0 on the wire (protocol notes 6.1); C2D is for
// devices only.
func (s *session) wantedFilters() map[string]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return filtersFor(s.id.DeviceID, s.id.ModuleID, s.subs)
}

func filtersFor(deviceID, moduleID string, subs hub.Subscriptions) map[string]byte {
	want := map[string]byte{iothub.TwinResponseFilter: 1}
	if subs.Desired {
		want[iothub.DesiredPatchFilter] = 1
	}
	if subs.Methods {
		want[iothub.MethodRequestFilter] = 0
	}
	if subs.C2D && moduleID == "" {
		want[iothub.C2DFilter(deviceID)] = 1
	}
	return want
}
