package fakehub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// Direct method timeouts (protocol notes 6.2).
const (
	defaultResponseTimeout = 30
	minResponseTimeout     = 5
	maxResponseTimeout     = 300
	maxConnectTimeout      = 300
)

// methodCall is an invocation waiting for the device's answer.
type methodCall struct {
	key    string // identity the request went to; only it may answer
	result chan methodResult
}

type methodResult struct {
	resp MethodResponse
	err  error
}

// InvokeMethod invokes a direct method on a device (moduleID "") or module and waits for its
// answer (protocol notes 6.1, 6.2):
//
//   - responseTimeoutInSeconds defaults to 30 and must be within 5..300, connectTimeoutInSeconds
//     defaults to 0 and must be within 0..300, the method name must be valid: else ErrInvalid;
//   - the payload (JSON; "null" when empty) is at most 128 KB, else ErrTooLarge;
//   - the identity must exist (ErrNotFound) and be connected and subscribed to
//     $iothub/methods/POST/# within connectTimeout, else ErrDeviceNotOnline;
//   - the request is published at QoS 0 on $iothub/methods/POST/{name}/?$rid={rid} ($rid a
//     decimal counter, as real traces show);
//   - the device's $iothub/methods/res/{status}/?$rid={rid} completes it: Status is the
//     device's status, Payload its body (an empty body becomes null; a body that is not JSON
//     is ErrInvalid, one over 128 KB ErrTooLarge);
//   - no answer within responseTimeout: ErrTimeout. ctx ending returns ctx.Err().
//
// While throttling is on it fails with ErrThrottled.
func (s *Server) InvokeMethod(ctx context.Context, deviceID, moduleID string, req MethodRequest) (MethodResponse, error) {
	key := identityKey(deviceID, moduleID)
	resp, err := s.invokeMethod(ctx, deviceID, moduleID, req)
	if err != nil {
		return MethodResponse{}, fmt.Errorf("invoke method %q on %q: %w", req.MethodName, key, err)
	}
	return resp, nil
}

func (s *Server) invokeMethod(ctx context.Context, deviceID, moduleID string, req MethodRequest) (MethodResponse, error) {
	if err := iothub.ValidateMethodName(req.MethodName); err != nil {
		return MethodResponse{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	respTimeout := req.ResponseTimeoutInSeconds
	if respTimeout == 0 {
		respTimeout = defaultResponseTimeout
	}
	if respTimeout < minResponseTimeout || respTimeout > maxResponseTimeout {
		return MethodResponse{}, fmt.Errorf("%w: responseTimeoutInSeconds %d is outside %d..%d", ErrInvalid, respTimeout, minResponseTimeout, maxResponseTimeout)
	}
	connTimeout := req.ConnectTimeoutInSeconds
	if connTimeout < 0 || connTimeout > maxConnectTimeout {
		return MethodResponse{}, fmt.Errorf("%w: connectTimeoutInSeconds %d is outside 0..%d", ErrInvalid, connTimeout, maxConnectTimeout)
	}
	payload := []byte("null")
	if p := bytes.TrimSpace(req.Payload); len(p) > 0 {
		if !json.Valid(p) {
			return MethodResponse{}, fmt.Errorf("%w: payload is not JSON", ErrInvalid)
		}
		payload = p
	}
	if len(payload) > iothub.MaxMethodPayloadSize {
		return MethodResponse{}, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrTooLarge, len(payload), iothub.MaxMethodPayloadSize)
	}
	if s.throttle.Load() {
		return MethodResponse{}, ErrThrottled
	}
	key := identityKey(deviceID, moduleID)
	done := s.done
	if done == nil {
		return MethodResponse{}, errNotRunning
	}

	// Wait until the identity is connected and subscribed.
	connectBy := time.NewTimer(time.Duration(connTimeout) * time.Second)
	defer connectBy.Stop()
	rid := strconv.FormatUint(s.ridSeq.Add(1), 10)
	call := &methodCall{key: key, result: make(chan methodResult, 1)}
	for {
		var e effects
		s.mu.Lock()
		if _, err := s.twinLocked(deviceID, moduleID); err != nil {
			s.mu.Unlock()
			return MethodResponse{}, err
		}
		c := s.online[key]
		sent, viaEdge := s.oboInvokeLocked(key, req.MethodName, rid, payload, call, &e) // obo_deliver.go
		if !viaEdge && c != nil {
			if _, ok := subscription(c.cl, iothub.KindMethodRequest, c.ident); ok {
				s.calls[rid] = call
				sent = s.enqueueLocked(c, outItem{topic: iothub.MethodRequestTopic(req.MethodName, rid), payload: payload}, &e)
				if !sent {
					delete(s.calls, rid)
				}
			}
		}
		changed := s.changed
		s.mu.Unlock()
		s.apply(e)
		if sent {
			break
		}
		select {
		case <-changed:
		case <-connectBy.C:
			return MethodResponse{}, fmt.Errorf("%w: not connected and subscribed to %s within %ds", ErrDeviceNotOnline, iothub.MethodRequestFilter, connTimeout)
		case <-ctx.Done():
			return MethodResponse{}, ctx.Err()
		case <-done:
			return MethodResponse{}, errNotRunning
		}
	}
	defer func() {
		s.mu.Lock()
		delete(s.calls, rid)
		s.mu.Unlock()
	}()

	respondBy := time.NewTimer(time.Duration(respTimeout) * time.Second)
	defer respondBy.Stop()
	select {
	case r := <-call.result:
		return r.resp, r.err
	case <-respondBy.C:
		return MethodResponse{}, fmt.Errorf("%w: no response within %ds", ErrTimeout, respTimeout)
	case <-ctx.Done():
		return MethodResponse{}, ctx.Err()
	case <-done:
		return MethodResponse{}, errNotRunning
	}
}

// methodResponse completes the invocation a device answers. Answers to unknown request ids,
// or from another identity than the one asked, are ignored.
func (s *Server) methodResponse(c *conn, rid string, status int, body []byte) {
	s.completeMethod(c.key, rid, status, body)
}

// completeMethod completes the invocation of identity key with request id rid (answered on
// the identity's own connection, or by the edge hub carrying it).
func (s *Server) completeMethod(key, rid string, status int, body []byte) {
	s.mu.Lock()
	call := s.calls[rid]
	if call == nil || call.key != key {
		s.mu.Unlock()
		s.log.Info("ignoring a method response nobody waits for", "identity", key, "rid", rid)
		return
	}
	delete(s.calls, rid)
	s.mu.Unlock()
	var r methodResult
	payload := payloadOrEmpty(body)
	switch {
	case payload == nil:
		r.resp = MethodResponse{Status: status, Payload: json.RawMessage("null")}
	case len(payload) > iothub.MaxMethodPayloadSize:
		r.err = fmt.Errorf("%w: the device answered with %d bytes, more than %d", ErrTooLarge, len(payload), iothub.MaxMethodPayloadSize)
	case !json.Valid(payload):
		r.err = fmt.Errorf("%w: the device answered with a payload that is not JSON", ErrInvalid)
	default:
		r.resp = MethodResponse{Status: status, Payload: json.RawMessage(append([]byte(nil), payload...))}
	}
	call.result <- r
}
