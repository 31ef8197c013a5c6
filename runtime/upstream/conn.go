package upstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// conn is one MQTT connection: one paho client, used once. A reconnection builds a new conn
// so that every CONNECT carries a freshly signed token and nothing (pending requests, cached
// verdicts) leaks from one connection to the next.
type conn struct {
	pc mqtt.Client
	// lost is closed, exactly once, when the connection is over; err then says why.
	lost     chan struct{}
	lostOnce sync.Once
	err      error
	// inflight counts operations using the connection; a renewal waits for it to drain.
	// Add is only called under Client.mu while the conn is Client.conn.
	inflight sync.WaitGroup
	// started is when the CONNACK arrived (real time: it times the renewal and stability).
	started time.Time

	mu       sync.Mutex
	pending  map[string]*pendingRequest // by $rid
	standing map[sas.Identity]*standing // Send's verdicts, see send.go

	// The writer and the acker (writer.go). outMu is a leaf.
	outMu     sync.Mutex
	outClosed bool          // lost: nothing more is submitted
	queue     []*outgoing   // submitted, not handed to paho yet, in order
	acking    []*outgoing   // telemetry without an outcome yet, in order
	writeWake chan struct{} // size 1: wakes the writer
	ackWake   chan struct{} // size 1: wakes the acker
	slots     chan struct{} // one per telemetry message in flight (sendWindow)
}

// pendingRequest is a request waiting for its answer.
type pendingRequest struct {
	want iothub.OBOKind // the answer's kind
	id   sas.Identity
	ch   chan answer // buffered 1
}

// answer is an extension answer: status, $version (twin answers) and body.
type answer struct {
	status  int
	version int64
	body    []byte
}

func newConn() *conn {
	return &conn{
		lost: make(chan struct{}), pending: map[string]*pendingRequest{}, standing: map[sas.Identity]*standing{},
		writeWake: make(chan struct{}, 1), ackWake: make(chan struct{}, 1), slots: make(chan struct{}, sendWindow),
	}
}

// markLost records why the connection ended and wakes everyone waiting on it.
func (cn *conn) markLost(err error) {
	cn.lostOnce.Do(func() {
		cn.err = err
		close(cn.lost)
	})
}

// close ends the connection on our initiative.
func (cn *conn) close(reason error) {
	cn.markLost(reason)
	cn.pc.Disconnect(disconnectQuiesce)
}

// offline is the error of an operation whose connection went away.
func (cn *conn) offline() error {
	return fmt.Errorf("%w: %w", ErrOffline, cn.err)
}

// deliver hands an answer to the request waiting for its $rid. Answers nobody waits for (the
// request gave up) or of the wrong kind or identity are dropped.
func (cn *conn) deliver(t iothub.OBOTopic, body []byte) bool {
	cn.mu.Lock()
	p := cn.pending[t.RequestID]
	cn.mu.Unlock()
	if p == nil || p.want != t.Kind || p.id != (sas.Identity{DeviceID: t.DeviceID, ModuleID: t.ModuleID}) {
		return false
	}
	select {
	case p.ch <- answer{status: t.Status, version: t.Version, body: body}:
	default: // a duplicate answer
	}
	return true
}

// errLost is the cause recorded when paho reports the connection lost.
var errLost = errors.New("connection lost")

// errSign is the failure to sign the CONNECT's token (a key that does not decode).
var errSign = errors.New("sign token")

// dial opens one connection as {edge}/$edgeHub and subscribes to the extension's filters.
// It returns only a usable connection; on any error the connection is closed again.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	password, err := c.cs.Token(c.opts.Now(), c.opts.TokenTTL)
	if err != nil {
		return nil, fmt.Errorf("%w for %q: %w", errSign, c.clientID, err)
	}
	cn := newConn()
	o := mqtt.NewClientOptions().
		AddBroker(c.broker).
		SetClientID(c.clientID).
		SetUsername(c.username).
		SetPassword(password).
		SetProtocolVersion(4). // explicit, or paho falls back to 3.1 after a refusal
		// Nothing is kept server-side between connections: every connection subscribes and
		// re-attaches afresh, so CleanSession=1 keeps the hub from resending stale state.
		SetCleanSession(true).
		SetKeepAlive(c.opts.KeepAlive).
		SetPingTimeout(max(c.opts.KeepAlive/2, time.Second/2)).
		SetConnectTimeout(connectTimeout).
		// How long a Publish may wait for paho's writer. When the link dies under load the
		// writer is gone before paho marks the connection lost, and a Publish under way
		// waits this long. Only the connection's own writer (writer.go) calls Publish, so
		// nobody else waits; bound it by the keep-alive, the time within which a live link
		// always gets a packet out, after which the writer gives the connection up.
		SetWriteTimeout(min(c.opts.RequestTimeout, c.opts.KeepAlive)).
		SetAutoReconnect(false). // Run reconnects, with a new token each time
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetStore(mqtt.NewMemoryStore()).
		// In-order dispatch on paho's goroutine: route only parses and enqueues, so it never
		// blocks; acknowledgements are sent by the workers after the handlers return.
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { c.route(cn, m) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { cn.markLost(fmt.Errorf("%w: %w", errLost, err)) })
	if c.tls != nil {
		o.SetTLSConfig(c.tls)
	}
	cn.pc = mqtt.NewClient(o)
	tok := cn.pc.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		go func() { // let the attempt finish in the background, then drop it
			<-tok.Done()
			cn.close(ctx.Err())
		}()
		return nil, fmt.Errorf("connect to %s: %w", c.broker, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return nil, connectError(c.broker, tok.(*mqtt.ConnectToken).ReturnCode(), err)
	}
	cn.started = time.Now()
	// Both end with the connection (cn.lost); every failure below closes it.
	go c.writeLoop(cn)
	go c.ackLoop(cn)
	filters := map[string]byte{iothub.OBOFilter: 1, iothub.OBOC2DFilter: 1}
	sub := cn.pc.SubscribeMultiple(filters, nil)
	timer := time.NewTimer(c.opts.RequestTimeout)
	defer timer.Stop()
	select {
	case <-sub.Done():
	case <-cn.lost:
		cn.close(cn.err)
		return nil, fmt.Errorf("subscribe: %w", cn.err)
	case <-ctx.Done():
		cn.close(ctx.Err())
		return nil, fmt.Errorf("subscribe: %w", ctx.Err())
	case <-timer.C:
		cn.close(ErrTimeout)
		return nil, fmt.Errorf("subscribe: no SUBACK within %s: %w", c.opts.RequestTimeout, ErrTimeout)
	}
	if err := sub.Error(); err != nil {
		cn.close(err)
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	for f := range filters {
		if qos, ok := sub.(*mqtt.SubscribeToken).Result()[f]; !ok || qos > 2 {
			cn.close(ErrProtocol)
			return nil, fmt.Errorf("subscribe %s: %w: refused (is %s the edge hub of an IoT Edge device?)", f, ErrProtocol, c.clientID)
		}
	}
	return cn, nil
}

// connectError maps a failed connection attempt onto the package's errors.
func connectError(broker string, rc byte, err error) error {
	switch rc {
	case packets.Accepted, packets.ErrNetworkError:
		return fmt.Errorf("connect to %s: %w", broker, err)
	}
	return fmt.Errorf("connect to %s: %w: CONNACK return code %#02x (%s)", broker, ErrConnectRefused, rc, packets.ConnackReturnCodes[rc])
}

// acquire returns the usable connection and counts the caller in flight on it (the caller
// must call cn.inflight.Done). While the link is down it fails with ErrOffline at once;
// during a token renewal it waits for the new connection (or ctx).
func (c *Client) acquire(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		if cn := c.conn; cn != nil {
			cn.inflight.Add(1)
			c.mu.Unlock()
			return cn, nil
		}
		renewing := c.renewing
		c.mu.Unlock()
		if renewing == nil {
			return nil, ErrOffline
		}
		select {
		case <-renewing:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// request publishes an extension request for id on the usable connection and waits for the
// answer.
func (c *Client) request(ctx context.Context, kind iothub.OBOKind, id sas.Identity, body []byte) (answer, error) {
	cn, err := c.acquire(ctx)
	if err != nil {
		return answer{}, err
	}
	defer cn.inflight.Done()
	return c.requestOn(ctx, cn, kind, id, body)
}

// requestOn publishes a request on cn and waits for its answer, the connection's loss, ctx
// or Options.RequestTimeout.
func (c *Client) requestOn(ctx context.Context, cn *conn, kind iothub.OBOKind, id sas.Identity, body []byte) (answer, error) {
	t := iothub.OBOTopic{Kind: kind, DeviceID: id.DeviceID, ModuleID: id.ModuleID, RequestID: c.rids.next()}
	p := &pendingRequest{want: kind.Response(), id: id, ch: make(chan answer, 1)}
	cn.mu.Lock()
	cn.pending[t.RequestID] = p
	cn.mu.Unlock()
	defer func() {
		cn.mu.Lock()
		delete(cn.pending, t.RequestID)
		cn.mu.Unlock()
	}()
	timer := time.NewTimer(c.opts.RequestTimeout)
	defer timer.Stop()
	tok, err := cn.write(ctx, t.String(), body)
	if err != nil {
		return answer{}, err
	}
	published := tok.Done()
	for {
		select {
		case a := <-p.ch:
			return a, nil
		case <-published:
			published = nil
			if err := tok.Error(); err != nil {
				return answer{}, fmt.Errorf("%w: %w", ErrOffline, err)
			}
		case <-cn.lost:
			return answer{}, cn.offline()
		case <-ctx.Done():
			return answer{}, ctx.Err()
		case <-timer.C:
			return answer{}, fmt.Errorf("%s: %w (%s)", kind, ErrTimeout, c.opts.RequestTimeout)
		}
	}
}

// publish sends a message at QoS 1 on cn and waits for the PUBACK, the connection's loss,
// ctx or Options.RequestTimeout.
func (c *Client) publish(ctx context.Context, cn *conn, topic string, payload []byte) error {
	timer := time.NewTimer(c.opts.RequestTimeout)
	defer timer.Stop()
	tok, err := cn.write(ctx, topic, payload)
	if err != nil {
		return err
	}
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("%w: %w", ErrOffline, err)
		}
		return nil
	case <-cn.lost:
		// A PUBACK read just before the loss still counts: reporting it lost would only
		// make the caller send a duplicate.
		if isClosed(tok.Done()) && tok.Error() == nil {
			return nil
		}
		return cn.offline()
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("no PUBACK: %w (%s)", ErrTimeout, c.opts.RequestTimeout)
	}
}
