package perclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// twinAnswer is a message on $iothub/twin/res/{status}/?$rid={rid}[&$version={n}].
type twinAnswer struct {
	status  int
	version int64
	body    []byte
}

// ridSource hands out request ids: a random per-session prefix plus a counter, made only of
// [0-9a-f-] so that it passes iothub.ValidateRequestID.
type ridSource struct {
	prefix string
	n      atomic.Uint64
}

func newRIDSource() *ridSource {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return &ridSource{prefix: hex.EncodeToString(b[:])}
}

func (r *ridSource) next() string { return r.prefix + "-" + strconv.FormatUint(r.n.Add(1), 10) }

// answer hands a twin answer to the request waiting for its $rid; answers nobody waits for
// (the request gave up) are dropped.
func (s *session) answer(t iothub.Topic, body []byte) {
	s.mu.Lock()
	ch := s.pending[t.RequestID]
	s.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- twinAnswer{status: t.Status, version: t.Version, body: body}:
	default: // a duplicate answer
	}
}

// request publishes a twin request under a new $rid on the connection in use and waits for
// its answer. It fails with an offlineError when the identity has no connection or loses
// it before the answer (the hub falls back to its cache and tries again later).
func (s *session) request(ctx context.Context, topic func(rid string) string, body []byte) (twinAnswer, error) {
	w, err := s.current()
	if err != nil {
		return twinAnswer{}, err
	}
	ctx, cancel := s.l.bounded(ctx)
	defer cancel()
	rid := s.rids.next()
	ch := make(chan twinAnswer, 1)
	s.mu.Lock()
	s.pending[rid] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, rid)
		s.mu.Unlock()
	}()
	if err := w.publish(ctx, topic(rid), body); err != nil {
		if isClosed(w.lost) {
			return twinAnswer{}, s.offline("connection lost before the request was acknowledged", err)
		}
		return twinAnswer{}, err
	}
	select {
	case a := <-ch:
		return a, nil
	case <-w.lost:
		return twinAnswer{}, s.offline("connection lost before the answer", w.err)
	case <-ctx.Done():
		return twinAnswer{}, fmt.Errorf("%w: %w", upstream.ErrTimeout, ctx.Err())
	}
}

// getTwin returns the device-facing twin document of the session's identity, as IoT Hub
// sent it. A status other than 200 is an *upstream.StatusError, as the hub expects.
func (s *session) getTwin(ctx context.Context) ([]byte, error) {
	a, err := s.request(ctx, iothub.TwinGetTopic, nil)
	if err != nil {
		return nil, err
	}
	if a.status != http.StatusOK {
		return nil, &upstream.StatusError{Status: a.status, Body: a.body}
	}
	return a.body, nil
}

// updateReported sends a reported patch and returns the new reported version (0 when IoT
// Hub sent none). A status outside 2xx is an *upstream.StatusError: the hub drops a patch
// answered 400 and keeps one answered 429 or 5xx.
func (s *session) updateReported(ctx context.Context, patch []byte) (int64, error) {
	a, err := s.request(ctx, iothub.TwinPatchReportedTopic, patch)
	if err != nil {
		return 0, err
	}
	if a.status < 200 || a.status > 299 {
		return 0, &upstream.StatusError{Status: a.status, Body: a.body}
	}
	return a.version, nil
}

// respondMethod publishes the answer to the method request rid on the connection in use
// (IoT Hub forgets a request when the connection it came on drops) and waits for the
// PUBACK.
func (s *session) respondMethod(ctx context.Context, rid string, status int, payload []byte) error {
	w, err := s.current()
	if err != nil {
		return err
	}
	ctx, cancel := s.l.bounded(ctx)
	defer cancel()
	return w.publish(ctx, iothub.MethodResponseTopic(status, rid), payload)
}
