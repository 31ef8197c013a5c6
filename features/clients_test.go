package features

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// The modules and leaf devices that talk to the edge hub are clients in the
// test, built on Outpost's device SDK (runtime/moduleclient) as a module's
// code or a leaf device's firmware would be: each has its own identity in
// IoT Hub (created through the service API, as `az iot hub
// module-identity create` or `device-identity create --pd edge1` do), a
// connection string naming the edge device as its gateway, and trusts the
// edge CA the edge hub serves.

// Client settings: quick reconnections, so that a restarted edge hub is
// found again within a second.
const (
	clientReconnectMin = 100 * time.Millisecond
	clientReconnectMax = time.Second
	// sendTimeout bounds one message's wait for the edge hub's PUBACK.
	sendTimeout = 10 * time.Second
	// connectTimeout bounds one connection attempt.
	connectTimeout = 10 * time.Second
)

// localClient is a module or a leaf device of the edge device.
type localClient struct {
	name   string // module name or leaf device id
	module bool
	cs     sas.ConnectionString
	// generationID is the identity's generation id in IoT Hub, which IoT
	// Hub stamps on its messages.
	generationID string
	c            *moduleclient.Client // nil until it connects

	mu        sync.Mutex
	sent      []int64 // sequence numbers edgeHub acknowledged, in order
	next      int64   // the next sequence number
	inputs    []receivedInput
	desired   map[string]any // the desired properties as received
	connected bool
	ups       int // connections made, the first included
	downs     int // connections lost

	traffic *traffic // steady traffic, while it runs
}

// receivedInput is a message a module received on one of its inputs.
type receivedInput struct {
	input string
	msg   iothub.Message
}

// identity is the client's identity as IoT Hub names it in messages and
// connection lists: "edge1/sensor" for a module, "leaf1" for a device.
func (c *localClient) identity() string {
	if c.module {
		return edgeDevice + "/" + c.name
	}
	return c.name
}

// kind names the client for messages.
func (c *localClient) kind() string {
	if c.module {
		return "module " + strconv.Quote(c.name)
	}
	return "leaf device " + strconv.Quote(c.name)
}

// client returns the scenario's client name, which a step must have
// introduced.
func (w *world) client(name string) (*localClient, error) {
	c, ok := w.clients[name]
	if !ok {
		return nil, fmt.Errorf("no module or leaf device %q in this scenario", name)
	}
	return c, nil
}

// addIdentity creates the identity of a module (of the edge device) or of a
// leaf device (a child of the edge device) in IoT Hub, and the scenario's
// client for it.
func (w *world) addIdentity(ctx context.Context, name string, module bool) (*localClient, error) {
	if c, ok := w.clients[name]; ok {
		if c.module != module {
			return nil, fmt.Errorf("%q is already a %s in this scenario", name, c.kind())
		}
		return c, nil
	}
	cs := sas.ConnectionString{HostName: hubHostName, GatewayHostName: gatewayHost}
	var key string
	var err error
	if module {
		cs.DeviceID, cs.ModuleID = edgeDevice, name
		key, err = w.api.createModule(ctx, edgeDevice, name)
	} else {
		cs.DeviceID = name
		key, err = w.api.createLeafDevice(ctx, name, edgeDevice)
	}
	if err != nil {
		return nil, fmt.Errorf("creating the identity of %q in IoT Hub: %w", name, err)
	}
	cs.SharedAccessKey = key
	gen, err := w.api.generationID(ctx, cs.DeviceID, cs.ModuleID)
	if err != nil {
		return nil, err
	}
	c := &localClient{name: name, module: module, cs: cs, generationID: gen, next: 1, desired: map[string]any{}}
	if w.clients == nil {
		w.clients = map[string]*localClient{}
	}
	w.clients[name] = c
	return c, nil
}

// hubHostName is the IoT Hub host name of the scenarios' fake hub
// (hubArgs' --hostname).
const hubHostName = "localhost"

// clientLogger is where the scenario's clients log: clients.log in the
// scenario directory, shown when a scenario fails.
func (w *world) clientLogger() *slog.Logger {
	if w.clientLog == nil {
		f, err := os.OpenFile(filepath.Join(w.sc.dir, "clients.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return slog.New(slog.DiscardHandler)
		}
		w.clientLog = f
	}
	return slog.New(slog.NewTextHandler(w.clientLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newSDKClient builds the device SDK client for cs, reaching the edge hub
// on its port and trusting its edge CA.
func (w *world) newSDKClient(cs sas.ConnectionString, name string) (*moduleclient.Client, error) {
	h := w.deployment.hub
	if h == nil {
		return nil, errors.New("the deployment's edgeHub is not Outpost's edge hub")
	}
	return moduleclient.New(cs, moduleclient.Options{
		CAFile:       h.caFile(),
		Port:         h.tlsPort,
		ReconnectMin: clientReconnectMin,
		ReconnectMax: clientReconnectMax,
		Logger:       w.clientLogger().With("client", name),
	})
}

// connect connects the client to the edge hub with its own credentials,
// with handlers for inputs (modules), desired properties and connection
// changes registered first.
func (w *world) connect(ctx context.Context, c *localClient) error {
	if c.c != nil {
		return fmt.Errorf("%s is connected already", c.kind())
	}
	mc, err := w.newSDKClient(c.cs, c.name)
	if err != nil {
		return err
	}
	if c.module {
		mc.OnInput(func(input string, m iothub.Message) {
			c.mu.Lock()
			c.inputs = append(c.inputs, receivedInput{input: input, msg: m})
			c.mu.Unlock()
		})
	}
	mc.OnDesired(func(patch map[string]any, _ int64) {
		c.mu.Lock()
		mergePatch(c.desired, patch)
		c.mu.Unlock()
	})
	mc.OnConnectionChange(func(connected bool, _ error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case connected && !c.connected:
			c.ups++
		case !connected && c.connected:
			c.downs++
		}
		c.connected = connected
	})
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := mc.Connect(cctx); err != nil {
		mc.Close()
		return fmt.Errorf("%s connecting to edgeHub: %w", c.kind(), err)
	}
	c.c = mc
	return nil
}

// disconnect closes the client's connection.
func (c *localClient) disconnect() {
	if t := c.traffic; t != nil {
		t.stop()
	}
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
	c.mu.Lock()
	c.connected = false
	c.mu.Unlock()
}

// mergePatch applies a desired patch as JSON merge: null deletes.
func mergePatch(dst, patch map[string]any) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			sub, ok := dst[k].(map[string]any)
			if !ok {
				sub = map[string]any{}
				dst[k] = sub
			}
			mergePatch(sub, pv)
		default:
			dst[k] = v
		}
	}
}

// Message properties every scenario message carries.
const (
	propSeq = "seq" // the sender's sequence number, from 1
)

// newMessage returns message seq of a sender: a JSON body (so that routes
// may query it) holding the sequence number and fields, which are also
// application properties; pad bytes of padding make it bigger.
func newMessage(seq int64, fields map[string]string, pad int) iothub.Message {
	body := map[string]any{propSeq: seq}
	props := map[string]string{propSeq: strconv.FormatInt(seq, 10)}
	for k, v := range fields {
		props[k] = v
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			body[k] = n
		} else {
			body[k] = v
		}
	}
	if pad > 0 {
		body["padding"] = strings.Repeat("x", pad)
	}
	b, _ := json.Marshal(body) // strings and numbers only
	return iothub.Message{
		Body:       b,
		Properties: props,
		System:     map[string]string{iothub.SysContentType: "application/json", iothub.SysContentEncoding: "utf-8"},
	}
}

// send sends one message (module: on output, "" for the default; leaf
// device: telemetry) and, once edgeHub acknowledged it, records its
// sequence number.
func (c *localClient) send(ctx context.Context, output string, fields map[string]string, pad int, timeout time.Duration) (int64, error) {
	if c.c == nil {
		return 0, fmt.Errorf("%s is not connected", c.kind())
	}
	c.mu.Lock()
	seq := c.next
	c.next++
	c.mu.Unlock()
	m := newMessage(seq, fields, pad)
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	if c.module && output != "" {
		err = c.c.SendOutput(sctx, output, m)
	} else {
		err = c.c.SendEvent(sctx, m)
	}
	if err != nil {
		return seq, fmt.Errorf("%s sending message %d: %w", c.kind(), seq, err)
	}
	c.mu.Lock()
	c.sent = append(c.sent, seq)
	c.mu.Unlock()
	return seq, nil
}

// sentSeqs returns the sequence numbers edgeHub acknowledged.
func (c *localClient) sentSeqs() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.sent...)
}

// connections returns how many times the client connected and lost its
// connection so far.
func (c *localClient) connections() (ups, downs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ups, c.downs
}

// traffic is a client sending one message every period until stopped.
type traffic struct {
	quit chan struct{} // closed by stop
	done chan struct{} // closed when the sender has returned
	err  error         // the first failure, read after done
}

// startTraffic starts c sending a message every period. A stop lets the
// message being sent finish, so that every message is either acknowledged
// and recorded, or a failure.
func (c *localClient) startTraffic(period time.Duration) error {
	if c.traffic != nil {
		return fmt.Errorf("%s is sending already", c.kind())
	}
	t := &traffic{quit: make(chan struct{}), done: make(chan struct{})}
	c.traffic = t
	go func() {
		defer close(t.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			if _, err := c.send(context.Background(), "", nil, 0, sendTimeout); err != nil {
				t.err = err
				return
			}
			select {
			case <-t.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return nil
}

// stop ends the traffic and returns its failure, if any.
func (t *traffic) stop() error {
	select {
	case <-t.quit:
	default:
		close(t.quit)
	}
	<-t.done
	return t.err
}

// namesRe finds the quoted names of a step's list.
var namesRe = regexp.MustCompile(`"([^"]+)"`)

// quotedNames returns the quoted names in s: `"a", "b" and "c"`.
func quotedNames(s string) ([]string, error) {
	var out []string
	for _, m := range namesRe.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no quoted name in %q", s)
	}
	return out, nil
}

// closeClients disconnects every client of the scenario.
func (w *world) closeClients() {
	for _, c := range w.clients {
		c.disconnect()
	}
	for _, rc := range w.rawClients {
		rc.Disconnect(0)
	}
	if w.clientLog != nil {
		w.clientLog.Close()
	}
}
