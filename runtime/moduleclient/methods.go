package moduleclient

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// MethodHandler answers a direct method call. payload is the request body as the hub sent it
// (JSON, "null" when the caller gave no payload, possibly empty). It returns the status the
// caller sees (any integer; 200 by convention for success) and a JSON response body, or nil
// for none. ctx is cancelled when the client is closed.
type MethodHandler func(ctx context.Context, payload []byte) (status int, response []byte)

// StatusNotImplemented is the status answered for a method without a handler.
const StatusNotImplemented = 501

// HandleMethod registers h for the direct method name, or as the default for methods without
// a handler of their own when name is "". A nil h removes the registration. The first
// registration subscribes to $iothub/methods/POST/#. A call without any matching handler is
// answered 501 with {"message":"..."}.
//
// Handlers run on a small pool of goroutines (methodWorkers), so a slow method does not
// stall the others; a method the pool cannot queue is not answered, and its caller times out.
func (c *Client) HandleMethod(name string, h MethodHandler) {
	c.mu.Lock()
	if h == nil {
		delete(c.methods, name)
	} else {
		c.methods[name] = h
	}
	c.mu.Unlock()
	c.updateSubscriptions()
}

// methodCall is a direct method request waiting for its handler. The response goes back on
// the connection the request came from: the hub forgets the request when that one drops.
type methodCall struct {
	cn      *conn
	name    string
	rid     string
	payload []byte
}

// receiveMethod queues a method request.
func (c *Client) receiveMethod(cn *conn, t iothub.Topic, payload []byte) {
	if !c.methodQ.offer(methodCall{cn: cn, name: t.Method, rid: t.RequestID, payload: payload}) {
		c.log.Warn("method queue full; call not answered", "method", t.Method, "dropped_total", c.methodQ.dropped.Load())
	}
}

// callMethod runs on a method worker: it finds the handler, calls it and publishes the
// response on $iothub/methods/res/{status}/?$rid={rid}.
func (c *Client) callMethod(call methodCall) {
	c.mu.Lock()
	h, ok := c.methods[call.name]
	if !ok {
		h = c.methods[""]
	}
	c.mu.Unlock()
	var (
		status int
		resp   []byte
	)
	switch {
	case h == nil:
		status, resp = StatusNotImplemented, errorBody(fmt.Sprintf("method %q is not implemented", call.name))
	case !c.safely("method handler", func() { status, resp = h(c.ctx, call.payload) }):
		status, resp = iothub.StatusServerError, errorBody(fmt.Sprintf("method %q failed", call.name))
	case len(resp) > iothub.MaxMethodPayloadSize:
		c.log.Warn("method response too large", "method", call.name, "bytes", len(resp))
		status, resp = iothub.StatusServerError, errorBody(fmt.Sprintf("method %q: response of %d bytes is over the %d-byte limit",
			call.name, len(resp), iothub.MaxMethodPayloadSize))
	}
	tok := call.cn.pc.Publish(iothub.MethodResponseTopic(status, call.rid), 1, false, resp)
	timer := time.NewTimer(methodResponseTimeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			c.log.Info("method response not sent", "method", call.name, "err", err)
		}
	case <-call.cn.lost:
		c.log.Info("method response lost with the connection", "method", call.name)
	case <-timer.C:
		c.log.Info("method response not acknowledged", "method", call.name)
	case <-c.ctx.Done():
	}
}

// errorBody is the {"message":...} body of an error answer.
func errorBody(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"message": msg}) // cannot fail for a string map
	return b
}
