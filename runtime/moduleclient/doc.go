// Package moduleclient is the Outpost device and module SDK: a Go client that speaks Azure IoT
// Hub's MQTT 3.1.1 dialect exactly as the official SDKs do, so the same code works against
// IoT Hub, the Outpost fake hub and an edge hub (Outpost's or Microsoft's edgeHub). The wire
// rules are those of docs/iothub-mqtt-protocol.md; the topics and property bags come from
// package iothub, tokens and connection strings from package sas.
//
// # Basics
//
//	c, err := moduleclient.NewFromEnvironment(moduleclient.Options{Logger: logger})
//	c.OnInput(func(input string, m iothub.Message) { ... })
//	c.HandleMethod("reset", func(ctx context.Context, payload []byte) (int, []byte) { ... })
//	c.OnDesired(func(patch map[string]any, version int64) { ... })
//	err = c.Connect(ctx)
//	defer c.Close()
//	err = c.SendOutput(ctx, "alerts", iothub.Message{Body: body})
//
// Handlers may be registered before or after Connect; registering one on a connected client
// subscribes at once. Registering them before Connect is better: nothing that arrives between
// the CONNACK and the registration is left waiting for redelivery.
//
// # Connection
//
// The client dials GatewayHostName (or HostName) on port 8883 with TLS, the server name being
// that host, and sends CONNECT with protocol level 4, CleanSession=false, client id "{d}" or
// "{d}/{m}", username "{HostName}/{d}[/{m}]/?api-version=...&DeviceClientType=...[&model-id=...]"
// (always the IoT Hub host, even through a gateway) and a SAS token for
// "{HostName}/devices/{d}[/modules/{m}]" as password (none with x509=true).
//
// Every connection subscribes afresh to what the handlers need ($iothub/twin/res/# always),
// whether or not the hub kept the session, so a hub answering sessionPresent=0 (the fake hub,
// edgeHub after a restart) works the same as one that remembers.
//
// # Lifecycle
//
//	New --> idle --Connect--> connecting --refused or failed--> idle (Connect returns the error)
//	                              |
//	                              | CONNACK accepted, SUBACKs received
//	                              v
//	        +---------------> connected --token at 80% of TokenTTL--> draining (<= 5 s)
//	        |                     |                                       |
//	        |                     | connection lost                       | DISCONNECT
//	        |                     v                                       v
//	        |               back-off wait --------------------------> dialing
//	        |                     ^                                    |    |
//	        |                     +-------------- dial fails ----------+    |
//	        +---- dial ok: new token, resubscribe, twin resync -------------+
//
//	any state --Close--> closed (operations fail with ErrClosed)
//
// paho's own auto-reconnect is off: the client builds a new paho connection for each attempt
// so that every CONNECT carries a freshly signed token. A token is renewed by reconnecting
// before it expires (MQTT 3.1.1 has no in-band re-authentication): new operations wait, those
// in flight get up to 5 s to be acknowledged, then the client disconnects and connects again
// at once. A token given ready-made in the connection string (SharedAccessSignature=) cannot be
// renewed; the hub will drop the connection when it expires and reconnecting will then fail.
//
// The back-off after a failure is capped exponential with jitter: attempt n waits a random
// time in [c/2, c] with c = ReconnectMin·2^(n+1) capped at ReconnectMax. It restarts from
// ReconnectMin after a connection that lasted 30 s.
//
// # Delivery
//
// Sending is at-least-once. SendEvent, SendOutput and twin requests wait for a connection while
// the client reconnects (until their ctx ends) and are sent again if a connection drops before
// they are acknowledged, so the hub may see a message twice.
//
// Receiving is at-least-once too. C2D messages, module inputs and desired patches are handed
// to their callback in arrival order on a goroutine of their own (one per kind; a small pool
// for methods), never on the network goroutine, and the MQTT PUBACK is sent after the callback
// returns. A message whose callback has not returned when the connection drops or the client
// closes is not acknowledged, and the hub delivers it again later, possibly to the same
// callback. Callbacks must therefore tolerate duplicates.
//
// Each kind has a bounded queue (128 messages, 64 method calls). When a callback falls that
// far behind, a new C2D or input message is left unacknowledged for the hub to redeliver, a
// desired patch is replaced by a twin resync, and a method call is not answered (the caller
// times out). A panicking callback is logged; its message is acknowledged and a panicking
// method answers 500.
//
// # Twins
//
// GetTwin and UpdateReported match responses by $rid (unique ids, see ridSource) and give up
// when their ctx ends. IoT Hub does not queue desired patches for a disconnected client, so
// after every connection the client fetches the twin and, if the desired version moved, hands
// OnDesired the whole desired document (plus nulls for properties deleted meanwhile); stale
// notifications (version not above the last delivered) are dropped.
//
// # Environment
//
// NewFromEnvironment reads EdgeHubConnectionString (or IotHubConnectionString) and
// EdgeModuleCACertificateFile, as the Azure SDKs do when the edge runtime injects a connection
// string. Authentication through the IoT Edge workload API (IOTEDGE_WORKLOADURI and friends) is
// not implemented.
//
// # Caveats
//
//   - MQTT over WebSockets (port 443) is not implemented.
//   - Options.Plain (no TLS) exists for tests only.
//   - X.509 authentication needs Options.TLSConfig with the client certificate.
package moduleclient
