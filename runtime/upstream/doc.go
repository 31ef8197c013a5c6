// Package upstream is the edge hub's link to IoT Hub: ONE MQTT connection, as the module
// identity "{edge}/$edgeHub", that carries every local client (design.md section 4). It
// speaks Outpost's on-behalf-of extension of the IoT Hub dialect (topics and bodies in
// runtime/iothub obo*.go, protocol in docs/upstream.md), which the fake hub implements.
//
// # Basics
//
//	up, err := upstream.New(upstream.Options{ConnectionString: cs, CAFile: caFile, Logger: log})
//	up.OnDesired(func(id sas.Identity, patch []byte, version int64) { ... })
//	up.OnMethod(func(id sas.Identity, name, rid string, payload []byte) { ... })
//	up.OnC2D(func(id sas.Identity, m iothub.Message) error { ...store it...; return nil })
//	go up.Run(ctx)                                    // owns the connection until ctx ends
//	rec, err := up.Authenticate(ctx, leaf, password)  // first connect of a client: keys to cache
//	err = up.Attach(ctx, leaf, upstream.Subscriptions{Desired: true, Methods: true, C2D: true})
//	err = up.Send(ctx, leaf, msg)                     // one message, waits for its PUBACK
//	s := up.SendAsync(ctx, leaf, msg); <-s.Done(); err = s.Err() // many in flight, in order
//
// Send has the signature of the hub's Upstream interface (runtime/hub); the wiring maps
// ErrRejected onto hub.ErrRejected so that the pump dead-letters what IoT Hub will never take. The hub owns its interfaces
// (style.md rule 3); a second implementation, one plain IoT Hub connection per local client
// for a hub without the extension, can stand behind the same ones later.
//
// # What goes over the link
//
//   - Authenticate / AuthenticateThumbprint: a client's credentials, checked by IoT Hub; the
//     answer is the identity record with its keys and generation id, which the hub caches so
//     that the client keeps authenticating locally while the cloud is unreachable
//     (edge-runtime-behaviour.md F.7). GetIdentity refreshes a record.
//   - Attach / Detach: a client connected to or left the hub; IoT Hub marks it Connected and
//     forwards what Subscriptions ask for: desired patches (OnDesired), method requests
//     (OnMethod, answered with RespondMethod), C2D messages for leaves (OnC2D).
//   - GetTwin / UpdateReported: twin traffic on a client's behalf.
//   - Send, SendAsync: telemetry on behalf of any identity in scope, attached or not.
//     SendAsync keeps many messages in flight on the connection, in call order (the hub's
//     $upstream pump drains a backlog with a window of them).
//
// Every request is answered by IoT Hub; the status maps onto the sentinels of errors.go
// (401 ErrUnauthorized, 403 ErrOutOfScope, 404 ErrNotFound, 429 ErrThrottled, others a
// *StatusError). Nothing waits for the link: while it is down every operation fails at once
// with ErrOffline, and the hub keeps what it must (stored messages, pending reported
// properties, cached identities) and tries again when States says the link is back.
//
// # Lifecycle
//
//	New --Run(ctx)--> dialing --CONNACK + SUBACK--> connected: re-attach all, serve requests
//	                   ^   |                          |            |
//	                   |   | refused or failed        | link lost  | token at 80% of TokenTTL
//	                   |   v                          v            v
//	                   +-- back-off (jitter) <--------+        renewing: new operations wait,
//	                   |   (operations: ErrOffline)             those in flight get <= 5 s
//	                   +----------------------------------------------+ (redial at once)
//
//	any state --ctx ends--> disconnect; Run returns nil
//
// Each connection is a new paho client with a freshly signed token (paho's own
// auto-reconnect is off), CleanSession=1, subscribed to "$edgehub/#" and
// "devices/+/messages/devicebound/#". After every (re)connection the client attaches again
// every identity it was told to Attach and not to Detach, so IoT Hub's view (Connections,
// connectionState, what it forwards) comes back without the hub doing anything. The back-off
// after a failure or a loss is capped exponential with jitter: attempt n waits a random
// time in [c/2, c] with c = ReconnectMin·2^n capped at UnreachableMax while IoT Hub cannot
// be reached or after the link was lost (1 s..3 s by default: the link is back within about
// 3 s of the network), and at ReconnectMax after IoT Hub refused the connection (CONNACK
// 0x05, 0x03: 1 s..30 s), starting again from ReconnectMin after a connection that lasted
// 30 s. A silent link is noticed within about 1.75 × KeepAlive (10 s by default); a closed
// socket at once.
//
// Connected reports the state; States delivers changes, coalesced (a planned token renewal
// is not a change: operations wait for it instead of failing).
//
// # Inbound handlers
//
// Answers are matched to their request by $rid on paho's goroutine. Desired patches, method
// requests and C2D messages go through bounded queues to goroutines of the client, so a slow
// handler never stalls the link: desired patches one at a time in order, methods on a few
// workers, C2D one at a time in order and acknowledged (PUBACK) only after the handler
// returned nil. A handler that panics is logged; its C2D message is not acknowledged.
//
// # Caveats
//
//   - Send waits for each PUBACK; SendAsync pipelines instead (up to 4096 messages in flight
//     per connection). Several messages per PUBLISH (batching) is not part of the dialect.
//   - A message IoT Hub drops without a PUBACK (throttling) fails with ErrTimeout after
//     RequestTimeout, but paho keeps its packet id until the connection ends: a window
//     of messages timing out again and again on one connection uses ids up (65535).
//   - X.509 authentication of the link itself (the edge hub's own certificate) is not
//     implemented: the connection string must carry a SharedAccessKey.
//   - A handler that never returns holds its worker (desired and C2D have one each).
//
// # Writer and acker
//
// Each connection has two goroutines of its own (writer.go): the writer, the only caller of
// paho's Publish, which hands every PUBLISH (telemetry, requests, method answers) to paho in
// submission order; and the acker, which decides the outcome of each telemetry message in
// that order. Paho's Publish can block for its whole WriteTimeout when the link dies under
// load; only the writer waits there. When the connection is lost (paho's connection-lost
// handler, or a Publish paho refuses) every message in flight fails at once with ErrOffline
// and the writer publishes nothing more, so a caller that sends the failed messages again on
// the next connection keeps each sender's order.
//
// # Lock order
//
// An identity lock (attach.go, ordering one identity's attach and detach requests) before
// Client.mu before conn.mu; Client.stateMu and conn.outMu are leaves. Only identity locks
// are held while publishing or waiting for an answer.
package upstream
