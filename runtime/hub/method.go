package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// DefaultMethodTimeout bounds how long the hub waits for a local client's answer to a
// method IoT Hub invoked: 300 s, the longest responseTimeoutInSeconds IoT Hub accepts
// (the request on the link does not carry the caller's timeout; IoT Hub answers the caller
// itself when that runs out, and drops a late answer).
const DefaultMethodTimeout = 300 * time.Second

// maxCloudMethods bounds the method calls from IoT Hub waiting for local answers; beyond
// it a call is answered 429 at once.
const maxCloudMethods = 256

// IoT Hub error codes in method answers (protocol notes 6.2).
const (
	errCodeDeviceNotOnline = 404103
	errCodeGatewayTimeout  = 504101
)

// methodCalls tracks direct method calls made to local clients, from IoT Hub (OnMethod) or
// from modules (the HTTPS API, method_http.go). Each call gets a request id of the hub's
// own, unique across the hub's life, so that answers are matched to calls per connection
// identity: a client can only answer the calls made to it.
type methodCalls struct {
	s *Server

	mu      sync.Mutex
	next    uint64
	calls   map[callKey]chan methodAnswer
	changed chan struct{} // closed and replaced when a client connects or subscribes
	cloud   int           // calls from IoT Hub in flight
}

type callKey struct {
	clientID, rid string
}

// methodAnswer is a client's answer: its status and JSON payload (nil when empty).
type methodAnswer struct {
	Status  int
	Payload []byte
}

func newMethodCalls(s *Server) *methodCalls {
	return &methodCalls{s: s, calls: map[callKey]chan methodAnswer{}, changed: make(chan struct{})}
}

// clientsChanged wakes the calls waiting for their target to connect and subscribe.
func (m *methodCalls) clientsChanged() {
	m.mu.Lock()
	defer m.mu.Unlock()
	close(m.changed)
	m.changed = make(chan struct{})
}

// invoke calls method name on the local client target with payload (JSON; sent as is) and
// returns its answer. The target must be connected and subscribed to
// $iothub/methods/POST/# within connectTimeout (0: already), else ErrNotConnected; it must
// answer within responseTimeout, else ErrTimeout. The request goes out at QoS 0 on
// $iothub/methods/POST/{name}/?$rid={n}, as IoT Hub sends it.
func (m *methodCalls) invoke(ctx context.Context, target sas.Identity, name string, payload []byte, connectTimeout, responseTimeout time.Duration) (methodAnswer, error) {
	clientID := iothub.ClientID(target.DeviceID, target.ModuleID)
	if err := m.awaitTarget(ctx, clientID, connectTimeout); err != nil {
		return methodAnswer{}, err
	}
	m.mu.Lock()
	m.next++
	key := callKey{clientID, strconv.FormatUint(m.next, 10)}
	ch := make(chan methodAnswer, 1)
	m.calls[key] = ch
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.calls, key)
		m.mu.Unlock()
	}()
	topic := iothub.Topic{Kind: iothub.KindMethodRequest, Method: name, RequestID: key.rid}
	if err := m.s.delivery.sendNoAck(clientID, topic, payload, m.s.opts.AckTimeout); err != nil {
		return methodAnswer{}, err
	}
	t := time.NewTimer(responseTimeout)
	defer t.Stop()
	select {
	case a := <-ch:
		return a, nil
	case <-t.C:
		return methodAnswer{}, fmt.Errorf("%w: %q did not answer method %q within %v", ErrTimeout, target, name, responseTimeout)
	case <-ctx.Done():
		return methodAnswer{}, ctx.Err()
	}
}

// awaitTarget waits until clientID is connected and subscribed to method requests, at
// most timeout.
func (m *methodCalls) awaitTarget(ctx context.Context, clientID string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		m.mu.Lock()
		changed := m.changed
		m.mu.Unlock()
		if m.s.subscribedTo(clientID, iothub.KindMethodRequest) {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w: %q is not connected or not subscribed to method requests", ErrNotConnected, clientID)
		}
		t := time.NewTimer(left)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// answer completes the call rid made to clientID and reports whether one was waiting.
func (m *methodCalls) answer(clientID, rid string, status int, payload []byte) bool {
	m.mu.Lock()
	ch, ok := m.calls[callKey{clientID, rid}]
	delete(m.calls, callKey{clientID, rid})
	m.mu.Unlock()
	if ok {
		if len(payload) == 0 {
			payload = nil
		}
		ch <- methodAnswer{Status: status, Payload: payload}
	}
	return ok
}

// onCloudMethod is the Cloud's method handler: the call is relayed to the local client on
// a goroutine of its own, and the answer, or 400 (a name iothub.ValidateMethodName
// refuses), 404 (not connected or not subscribed) or 504 (no answer within
// Options.MethodTimeout), goes back with RespondMethod.
func (s *Server) onCloudMethod(id sas.Identity, name, rid string, payload []byte) {
	m := s.methods
	m.mu.Lock()
	busy := m.cloud >= maxCloudMethods
	if !busy {
		m.cloud++
	}
	m.mu.Unlock()
	started := s.bg.goFunc(func() {
		if !busy {
			defer func() {
				m.mu.Lock()
				m.cloud--
				m.mu.Unlock()
			}()
		}
		ctx := s.baseContext()
		var a methodAnswer
		var err error
		if busy {
			err = fmt.Errorf("%d method calls are waiting already", maxCloudMethods)
			a = methodAnswer{Status: iothub.StatusTooManyRequests, Payload: errorBody(errCodeThrottled, "%v", err)}
		} else if err = iothub.ValidateMethodName(name); err != nil {
			// The name goes into the client's topic ($iothub/methods/POST/{name}/...): one
			// with '/', '#', '+' or a control character would change that topic's meaning.
			a = methodAnswer{Status: iothub.StatusBadRequest, Payload: errorBody(errCodeArgumentInvalid, "%v", err)}
		} else if a, err = m.invoke(ctx, id, name, payload, 0, s.opts.MethodTimeout); err != nil {
			a = methodFailure(err)
			if ctx.Err() != nil {
				return // the hub is stopping; IoT Hub times the caller out
			}
		}
		s.log.Debug("method call from IoT Hub", "identity", id, "method", name, "status", a.Status, "err", err)
		rctx, cancel := context.WithTimeout(ctx, s.opts.UpstreamTimeout)
		defer cancel()
		if err := s.deps.Cloud.RespondMethod(rctx, id, rid, a.Status, jsonPayload(a.Payload)); err != nil {
			s.log.Info("method answer not sent to IoT Hub", "identity", id, "method", name, "err", err)
		}
	})
	if !started {
		if !busy {
			m.mu.Lock()
			m.cloud--
			m.mu.Unlock()
		}
		s.log.Info("method call from IoT Hub while the hub is stopping; not answered", "identity", id, "method", name)
	}
}

// methodFailure is the answer IoT Hub gives a caller for a failed call (protocol notes
// 6.2): 404 DeviceNotOnline, 504 GatewayTimeout, 500 otherwise.
func methodFailure(err error) methodAnswer {
	switch {
	case errors.Is(err, ErrNotConnected):
		return methodAnswer{Status: iothub.StatusNotFound, Payload: errorBody(errCodeDeviceNotOnline, "Timed out waiting for device to connect: %v", err)}
	case errors.Is(err, ErrTimeout):
		return methodAnswer{Status: iothub.StatusGatewayTimeout, Payload: errorBody(errCodeGatewayTimeout, "Timed out waiting for device to respond: %v", err)}
	}
	return methodAnswer{Status: iothub.StatusServerError, Payload: errorBody(errCodeServer, "%v", err)}
}

// jsonPayload returns a client's answer payload as JSON: null when empty, itself when it
// is JSON, else a JSON string of it (method answers are JSON by contract; a client that
// sends text still gets its text through).
func jsonPayload(p []byte) json.RawMessage {
	switch {
	case len(p) == 0:
		return json.RawMessage("null")
	case json.Valid(p):
		return json.RawMessage(p)
	}
	b, _ := json.Marshal(string(p)) // cannot fail
	return b
}
