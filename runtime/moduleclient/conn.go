package moduleclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// conn is one MQTT connection: one paho client, used once. A reconnection builds a new conn
// (and a new paho client) so that every CONNECT carries a freshly signed token and no state
// leaks from one connection to the next.
type conn struct {
	pc mqtt.Client
	// lost is closed, exactly once, when the connection is over for whatever reason (network
	// loss, renewal, Close); err then says why. Whoever waits on the connection selects on it.
	lost     chan struct{}
	lostOnce sync.Once
	err      error
	// inflight counts operations using the connection; a renewal waits for it to drain.
	// Add is only called under Client.mu while the conn is Client.conn (see acquire), so it
	// never races with the Wait in drain.
	inflight sync.WaitGroup
	// signed is when its token was signed and started when the CONNACK arrived.
	signed, started time.Time

	subMu      sync.Mutex
	subscribed map[string]bool
}

func newConn() *conn {
	return &conn{lost: make(chan struct{}), subscribed: map[string]bool{}}
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

// isSubscribed reports whether filter was acknowledged on this connection.
func (cn *conn) isSubscribed(filter string) bool {
	cn.subMu.Lock()
	defer cn.subMu.Unlock()
	return cn.subscribed[filter]
}

// dial opens one connection and makes the subscriptions the registered handlers need. It
// returns only a fully usable connection: on any error the connection is closed again.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	cn := newConn()
	cn.signed = time.Now()
	password := ""
	if !c.cs.X509 {
		tok, err := c.cs.Token(c.opts.Now(), c.opts.TokenTTL)
		if err != nil {
			return nil, fmt.Errorf("identity %q: sign token: %w", c.clientID, err)
		}
		password = tok
	}
	o := mqtt.NewClientOptions().
		AddBroker(c.broker).
		SetClientID(c.clientID).
		SetUsername(c.username).
		SetPassword(password).
		SetProtocolVersion(4). // explicit, or paho falls back to 3.1 after a refusal
		SetCleanSession(false).
		SetKeepAlive(c.opts.KeepAlive).
		SetConnectTimeout(connectTimeout).
		SetAutoReconnect(false). // we reconnect ourselves, with a new token each time
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetStore(mqtt.NewMemoryStore()).
		// In-order dispatch on paho's goroutine: route only parses and enqueues, so it never
		// blocks; acknowledgements are sent by our workers after the callbacks return.
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { c.route(cn, m) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			cn.markLost(fmt.Errorf("%w: %w", ErrConnectionLost, err))
		})
	if c.tls != nil {
		o.SetTLSConfig(c.dialTLS())
	}
	cn.pc = mqtt.NewClient(o)
	tok := cn.pc.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		// Let the attempt finish in the background, then drop it.
		go func() {
			<-tok.Done()
			cn.close(ctx.Err())
		}()
		return nil, fmt.Errorf("connect to %s: %w", c.broker, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return nil, c.connectError(tok.(*mqtt.ConnectToken).ReturnCode(), err)
	}
	cn.started = time.Now()
	if _, err := c.ensureSubscriptions(ctx, cn); err != nil {
		cn.close(err)
		return nil, err
	}
	c.log.Debug("connected", "broker", c.broker, "session_present", tok.(*mqtt.ConnectToken).SessionPresent())
	return cn, nil
}

// connectError maps a failed connection attempt onto the package's errors.
func (c *Client) connectError(rc byte, err error) error {
	var sentinel error
	switch rc {
	case packets.ErrRefusedBadProtocolVersion:
		sentinel = ErrProtocolVersion
	case packets.ErrRefusedIDRejected:
		sentinel = ErrIdentifierRejected
	case packets.ErrRefusedServerUnavailable:
		sentinel = ErrServerUnavailable
	case packets.ErrRefusedBadUsernameOrPassword:
		sentinel = ErrBadCredentials
	case packets.ErrRefusedNotAuthorised:
		sentinel = ErrNotAuthorized
	case packets.Accepted, packets.ErrNetworkError:
		return fmt.Errorf("connect to %s as %q: %w", c.broker, c.clientID, err)
	default:
		return fmt.Errorf("connect to %s as %q: %w (CONNACK return code %#02x)", c.broker, c.clientID, ErrRefused, rc)
	}
	return fmt.Errorf("connect to %s as %q: %w", c.broker, c.clientID, sentinel)
}

// wantedFilters returns the subscriptions the registered handlers need, with their QoS.
// Twin responses are always wanted (GetTwin, UpdateReported and the desired resync use them).
// C2D is only for devices and inputs only for modules: IoT Hub refuses the other combination.
// Method requests are QoS 0 on the wire (protocol notes 6.1); everything else is QoS 1.
func (c *Client) wantedFilters() map[string]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	want := map[string]byte{iothub.TwinResponseFilter: 1}
	if c.onDesired != nil {
		want[iothub.DesiredPatchFilter] = 1
	}
	if len(c.methods) > 0 {
		want[iothub.MethodRequestFilter] = 0
	}
	if c.onC2D != nil && c.cs.ModuleID == "" {
		want[iothub.C2DFilter(c.cs.DeviceID)] = 1
	}
	if c.onInput != nil && c.cs.ModuleID != "" {
		want[iothub.InputFilter(c.cs.DeviceID, c.cs.ModuleID)] = 1
	}
	return want
}

// ensureSubscriptions subscribes cn to the wanted filters it does not have yet, in one
// SUBSCRIBE (at most 5 filters, within IoT Hub's limit), and returns the filters added. Since
// every connection starts without subscriptions as far as the client is concerned, this works
// whether or not the hub kept the session (sessionPresent).
func (c *Client) ensureSubscriptions(ctx context.Context, cn *conn) ([]string, error) {
	cn.subMu.Lock()
	defer cn.subMu.Unlock()
	missing := map[string]byte{}
	for f, qos := range c.wantedFilters() {
		if !cn.subscribed[f] {
			missing[f] = qos
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	filters := make([]string, 0, len(missing))
	for f := range missing {
		filters = append(filters, f)
	}
	sort.Strings(filters)
	tok := cn.pc.SubscribeMultiple(missing, nil)
	timer := time.NewTimer(subscribeTimeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil, fmt.Errorf("subscribe %s: %w", strings.Join(filters, ", "), ctx.Err())
	case <-cn.lost:
		return nil, fmt.Errorf("subscribe %s: %w", strings.Join(filters, ", "), cn.err)
	case <-timer.C:
		return nil, fmt.Errorf("subscribe %s: no SUBACK within %s: %w", strings.Join(filters, ", "), subscribeTimeout, ErrProtocol)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", strings.Join(filters, ", "), err)
	}
	granted := tok.(*mqtt.SubscribeToken).Result()
	var added, refused []string
	for _, f := range filters {
		if qos, ok := granted[f]; ok && qos <= 2 {
			cn.subscribed[f] = true
			added = append(added, f)
		} else {
			refused = append(refused, f)
		}
	}
	if len(refused) > 0 {
		return added, fmt.Errorf("subscribe %s: %w", strings.Join(refused, ", "), ErrSubscriptionRefused)
	}
	return added, nil
}

// activate makes cn the usable connection, then, in the background, catches up with handlers
// registered while it was being set up and resynchronises the desired properties.
func (c *Client) activate(cn *conn) {
	c.mu.Lock()
	c.conn = cn
	close(c.ready)
	c.mu.Unlock()
	go c.refresh(cn, true)
}

// deactivate withdraws cn: new operations wait for the next connection.
func (c *Client) deactivate(cn *conn) {
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
		c.ready = make(chan struct{})
	}
	c.mu.Unlock()
}

// refresh subscribes cn to anything newly wanted and, after a (re)connection or once desired
// patches are first subscribed, fetches the twin so that no desired change is missed.
func (c *Client) refresh(cn *conn, connected bool) {
	added, err := c.ensureSubscriptions(c.ctx, cn)
	if err != nil {
		select {
		case <-cn.lost: // the next connection subscribes again
		default:
			c.log.Warn("subscribing failed", "err", err)
		}
	}
	if (connected && cn.isSubscribed(iothub.DesiredPatchFilter)) || slices.Contains(added, iothub.DesiredPatchFilter) {
		c.resyncDesired(cn)
	}
}

// updateSubscriptions is called after a handler was registered: a connected client
// subscribes right away, a disconnected one on its next connection.
func (c *Client) updateSubscriptions() {
	c.mu.Lock()
	cn := c.conn
	c.mu.Unlock()
	if cn != nil {
		go c.refresh(cn, false)
	}
}

// acquire returns the usable connection, waiting for one while the client reconnects, and
// counts the caller as in flight on it: the caller must call cn.inflight.Done.
func (c *Client) acquire(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		switch c.state {
		case stateIdle:
			c.mu.Unlock()
			return nil, fmt.Errorf("identity %q: %w", c.clientID, ErrNotConnected)
		case stateClosed:
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if cn := c.conn; cn != nil {
			cn.inflight.Add(1)
			c.mu.Unlock()
			return cn, nil
		}
		ready := c.ready
		c.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// await waits for a publish to be acknowledged. retry is set when the connection went away
// first: the caller sends again on the next connection (at-least-once).
func (c *Client) await(ctx context.Context, cn *conn, tok mqtt.Token) (retry bool, err error) {
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return c.publishFailed(ctx, cn, err)
		}
		return false, nil
	case <-cn.lost:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-c.ctx.Done():
		return false, ErrClosed
	}
}

// publishFailed decides what a failed paho publish means: if the connection is going away,
// wait until it is marked lost and retry on the next one; otherwise the error is final.
func (c *Client) publishFailed(ctx context.Context, cn *conn, err error) (retry bool, _ error) {
	if cn.pc.IsConnectionOpen() && !errors.Is(err, mqtt.ErrNotConnected) {
		return false, err
	}
	select {
	case <-cn.lost:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-c.ctx.Done():
		return false, ErrClosed
	}
}

// publish sends payload at QoS 1 and waits for the PUBACK, on the current connection or, if
// that one drops first, on the next.
func (c *Client) publish(ctx context.Context, topic string, payload []byte) error {
	for {
		cn, err := c.acquire(ctx)
		if err != nil {
			return err
		}
		retry, err := c.await(ctx, cn, cn.pc.Publish(topic, 1, false, payload))
		cn.inflight.Done()
		if !retry {
			return err
		}
	}
}
