// Package hub is the edge hub's MQTT side: a local broker (mochi-mqtt) that speaks Azure
// IoT Hub's device/module dialect, so that modules and leaf devices connect to it exactly
// as they would to IoT Hub; plus the routes, the store-and-forward ingest path and the
// endpoint pumps that deliver stored messages to module inputs and upstream. The wire
// rules are those of docs/iothub-mqtt-protocol.md; routing and store-and-forward follow
// docs/edge-runtime-behaviour.md sections E and F.
//
// # Basics
//
//	srv, err := hub.New(hub.Options{
//		IoTHubHostName: "contoso.azure-devices.net", GatewayHostName: "edge1.local",
//		EdgeDeviceID: "edge1", TLSAddr: ":8883", TLS: certManager.TLSConfig(), // *certs.Manager
//	}, hub.Deps{Store: st, Identities: cache, Upstream: up, IdentityChanges: cache.Changes()})
//	err = srv.ApplyConfig(hubConfig) // *deployment.HubConfig; a bad route -> *deployment.Error 400
//	err = srv.Run(ctx)               // until ctx ends
//
// The caller owns and runs the store (store.Open, store.Run), the identity cache
// (package identities) and the upstream link, and wires them by hand (cmd/edgehub).
//
// # Lifecycle
//
//	New (listeners bound, nothing served) --ApplyConfig*--> (routes set)
//	     |
//	     | Run(ctx)
//	     v
//	serving: mochi accepts clients; one pump per endpoint; tokens rechecked every
//	RevalidateInterval and on Deps.IdentityChanges; ApplyConfig swaps routes at any time
//	     |
//	     | ctx ends
//	     v
//	sockets closed -> mochi closed -> pumps returned -> Run returns nil
//
// # Connections (iothub-mqtt-protocol.md 1, 10)
//
// MQTT 3.1.1 only, over TLS (plus an optional plain listener). A CONNECT is accepted when
// the client id is "{d}" or "{d}/{m}", the username names the same identity (both the
// "?api-version=" and the legacy form; its host part is not checked), and the password is a
// SAS token that sas.Verify accepts: issued for the identity or, for a module, for its
// device; for the IoT Hub host name or the gateway host name; not expired beyond 5
// minutes of skew; signed with a key Deps.Identities returns for the signer. Any failure
// gets CONNACK 0x05 (MQTT 3.1 gets 0x01, MQTT 5 the v5 code 0x84). One connection per
// identity: a newer CONNECT takes over and the older connection is closed. Tokens are
// checked again every Options.RevalidateInterval and whenever Deps.IdentityChanges fires;
// a connection whose identity was removed or disabled, whose keys changed, or whose token
// expired is closed.
//
// # What a client may do (acl.go)
//
// Publish its own telemetry (devices/{d}[/modules/{m}]/messages/events[/bag]), twin GET
// and reported PATCH, and method responses. Subscribe to its own module inputs (modules),
// its own C2D (devices, "devices/+/messages/devicebound/#" included), twin responses,
// desired patches and method requests; at most 5 filters; QoS granted min(requested, 1).
// Twin and method requests are acknowledged and ignored in this version.
//
// # Ingest and PUBACK (ingest.go)
//
// A telemetry PUBLISH is parsed (topic and property bag), stamped by the hub ($.cdid and
// $.cmid overwritten with the authenticated sender, $.mid added when absent, enqueued
// time), routed (source /messages/ for a device, /messages/modules/{m}[/outputs/{o}]/
// for a module), and appended to the store once, with every matched endpoint queue as a
// target. The PUBACK is written only after that append has committed: mochi calls the
// OnPublish hook synchronously in the client's read goroutine, before it writes the
// PUBACK, so the hook just waits (see ingestHook for the details and the cost). A
// message no route matches is acknowledged and dropped, as edgeHub does.
//
// # Refusals
//
// IoT Hub closes the connection of a client that breaks its rules, and so does the hub,
// without a PUBACK, logging one line that says why and counting it in Stats:
//
//   - a publish on a topic that is not the client's own (also at QoS 0, which mochi alone
//     would drop silently), a malformed topic or property bag, a QoS 2 publish;
//   - a message larger than Options.MaxLocalMessageSize, or routed to $upstream and
//     larger than Options.MaxUpstreamMessageSize (256 KB, IoT Hub's limit). The MQTT
//     maximum packet size is set just above the local limit (limit + the largest topic +
//     the PUBLISH header); a packet beyond it is refused by mochi, which closes the
//     connection before reading it, and the hub logs it;
//   - a message the store cannot take: store full (store.ErrFull under the reject-new
//     policy), store failure, or no commit within Options.StoreTimeout.
//
// What the client sees is its connection closing with its publish unacknowledged. SDKs
// that connect with CleanSession=0 publish it again after reconnecting, with their own
// back-off: for a full store that is the intended back-pressure, and nothing is lost. For
// an oversized or malformed message it means the client is disconnected again each time
// it retries; the log line and the counters name the cause. A refused subscription gets
// the SUBACK failure code 0x80 and the connection stays open.
//
// # Delivery (deliver.go, pump.go)
//
// One pump per endpoint queue ($upstream, /modules/{m}/inputs/{i}) reads the store in its
// order (priorities as the store schedules them, then append order) and sends one message
// at a time. A module input goes out as devices/{edge}/modules/{m}/inputs/{i}/{bag} at
// QoS 1 (the bag carrying %24.cdid and %24.cmid) and is acknowledged in the store only
// after the module's PUBACK. While the module is not connected or not subscribed, the pump
// waits (woken when it connects or subscribes, and by a capped back-off tick); an
// unacknowledged delivery is retried with back-off, and after Options.MaxDeliveryAttempts
// the message is dead-lettered (counted) so that the queue does not stay blocked. The
// $upstream pump calls Deps.Upstream.Send; a failure leaves the message stored and retried
// with back-off (1 s doubling to 60 s, with jitter), an ErrRejected dead-letters it.
// Delivery is at least once: a crash between a PUBACK and the store's ack commit delivers
// the message again.
//
// # Lock order
//
// registry.mu, deliverer.mu, pumpSet.mu and Server.ctxMu are leaves: none is held while
// taking another or while calling into mochi or the store.
//
// # Caveats
//
//   - Twins, direct methods, C2D, Will messages (IoT Hub forwards them as telemetry) and
//     X.509 client authentication are not implemented yet.
//   - Sessions (CleanSession=0 subscriptions) live in memory only: after a hub restart
//     clients are told sessionPresent=0 and must subscribe again, which the SDKs do.
//   - A client's publishes are committed one after another (see ingestHook).
package hub
