package fakehub

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Test controls (design.md section 7). They act on the MQTT device endpoint only: the HTTP
// service API is the operator's side and keeps working (it answers 429 while throttled,
// using Throttled). All of them may be called before Start and from any goroutine.

// CutNetwork drops every MQTT connection and refuses new ones until RestoreNetwork: a new
// TCP connection is accepted and closed at once, before any CONNACK, as a dead route looks to
// a client. MQTT sessions are kept, as they would be across a real outage.
func (s *Server) CutNetwork() {
	s.cut.Store(true)
	s.stopClients(s.allClients())
	s.log.Info("network cut")
}

// RestoreNetwork ends CutNetwork.
func (s *Server) RestoreNetwork() {
	s.cut.Store(false)
	s.log.Info("network restored")
}

// SetRefuseAuth makes every CONNECT fail with CONNACK 0x05 (not authorized) while on.
// Established connections are not affected.
func (s *Server) SetRefuseAuth(on bool) { s.refuseAuth.Store(on) }

// SetDelay adds d before the hub handles each CONNECT and each inbound PUBLISH (0 or less:
// none). The delay runs on the client's own connection, so one slow client does not slow
// the others; a PUBLISH's PUBACK and twin answer come d later.
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// SetThrottle turns S1-like throttling on or off. While on:
//   - CONNECT is refused with CONNACK 0x03 (server unavailable);
//   - twin GET and reported PATCH are answered 429 on $iothub/twin/res/429/?$rid=...;
//   - telemetry is dropped without PUBACK and not captured (the SDKs resend after their
//     PUBACK timeout);
//   - SendC2D and InvokeMethod fail with ErrThrottled; the HTTP service API answers 429.
//
// Established connections stay up.
func (s *Server) SetThrottle(on bool) { s.throttle.Store(on) }

// Throttled reports whether SetThrottle is on.
func (s *Server) Throttled() bool { return s.throttle.Load() }

// sleepDelay waits for the configured delay; false means the server closed meanwhile.
func (s *Server) sleepDelay() bool {
	d := time.Duration(s.delay.Load())
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

var _ mqtt.Hook = (*hook)(nil)
