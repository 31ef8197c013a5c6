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
//	}, hub.Deps{Store: st, Identities: cache, IdentityChanges: cache.Changes(),
//		Upstream: link, Resolver: link, Presence: link}) // link: *uplink.Link (package uplink)
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
// minutes of skew; signed with a key Deps.Identities returns for the signer. When that
// fails for an unknown or disabled identity or a signature the cached keys do not match,
// Deps.Resolver (if set) asks the cloud, which caches the identity, and the token is
// verified again (auth_upstream.go). Any failure gets CONNACK 0x05 (MQTT 3.1 gets 0x01, MQTT 5 the v5 code 0x84). One connection per
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
// Twin requests and method responses go to the relay (below).
//
// # Ingest and PUBACK (ingest.go)
//
// A telemetry PUBLISH is parsed (topic and property bag), stamped by the hub ($.cdid and
// $.cmid overwritten with the authenticated sender, $.mid added when absent, enqueued
// time), routed (source /messages/ for a device, /messages/modules/{m}[/outputs/{o}]/
// for a module), and appended to the store once, with every matched endpoint queue as a
// target. The PUBACK is written only after that append has committed, and in receive
// order: OnPublish hands the append to the store without waiting and returns
// ErrRejectPacket (so mochi writes no PUBACK of its own); the connection's acknowledger
// (ingest_acks.go) writes the PUBACK once this and every earlier publish of the client are
// committed, so a client's pipelined publishes (up to Options.IngestWindow) share group
// commits. After a failed append the client gets no further PUBACK and its connection is
// closed. A message no route matches is acknowledged (in order) and dropped, as edgeHub
// does.
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
// # Delivery (deliver.go, pump.go, pump_window.go)
//
// One pump per endpoint (/modules/{m}/inputs/{i}, $upstream) reads its store queue in the
// store's order (priorities as the store schedules them, then append order); the $upstream
// pump serves one queue per sender (below). A module input goes out as
// devices/{edge}/modules/{m}/inputs/{i}/{bag} at QoS 1 (the bag carrying %24.cdid and
// %24.cmid), with up to Options.InputWindow PUBLISHes awaiting their PUBACK (counted from
// the oldest unacknowledged one), written several at a time; the store is acknowledged
// up to the last message of the acknowledged prefix only, so a PUBACK that overtakes an
// older one acknowledges nothing yet. While the module is not connected or not
// subscribed, the pump waits (woken when it connects or subscribes, and by a capped
// back-off tick). When the oldest delivery is not acknowledged (no PUBACK within
// Options.AckTimeout, or the connection closed), the rest of the window is given up and,
// after a back-off, everything from that message on is sent again in order, with DUP,
// one message at a time until a PUBACK comes back; after Options.MaxDeliveryAttempts
// failures of the same message it is dead-lettered (counted) so that the queue does not
// stay blocked. The $upstream pump calls Deps.Upstream.Send; a failure leaves the message
// stored and retried with back-off (1 s doubling to 60 s, with jitter), an ErrRejected
// dead-letters it. The pump runs the loop of pump_upstream.go with a window of one message
// for such an Upstream. Delivery is at least once: a crash between a PUBACK and the
// store's ack commit delivers the message again.
//
// # The upstream link (pump_upstream.go, auth_upstream.go, presence.go)
//
// Messages routed to $upstream are stored in one queue per sender, "$upstream/{device}" or
// "$upstream/{device}/{module}" (upstream_lanes.go), and the $upstream pump serves those
// queues in turn, at most 64 messages (upstreamTurn) from one sender before the next sender
// with messages waiting: after an outage every sender's backlog drains in order while
// another sender's live messages keep flowing, each waiting for at most one turn of every
// backlog rather than behind a million stored messages. Within one sender's queue the
// store's scheduling of priorities applies; across senders, turns do (a sender's priority 5
// backlog and another's priority 0 messages share the link evenly). The queue "$upstream"
// of earlier versions is drained as one more sender. A sender's queue stays in the store
// after the sender is gone, until it is drained or its messages expire (TTL); an empty
// queue costs a lane record on disk. Stats.Sent and the metrics report all of them under
// "$upstream".
//
// When Deps.Upstream is a PipelinedUpstream (package uplink's is), the $upstream pump keeps
// Options.UpstreamWindow messages in flight on the one link, shared by all senders, handed
// over in turn and acknowledged in the store in each sender's order as their outcomes
// arrive, so that a backlog drains at the link's throughput, not at one round trip per
// message (BenchmarkDrainUpstream), and live messages go out as soon as they are stored.
// ErrRejected dead-letters a message; ErrOffline makes that sender wait for the link
// (LinkState) without counting a failure; any other failure stops that sender only: the
// rest of its messages in flight finish and it starts again, after a back-off, from its
// first unacknowledged message, so messages reach the cloud in order per sender (with
// duplicates only of those whose acknowledgement was lost) while the other senders go on.
// A message without an answer after a second holds back new ones until it has its outcome:
// the cloud may have dropped it.
//
// Deps.Presence is told which clients are connected and what they subscribed to
// (desired patches, methods, C2D), so that the cloud shows them connected and forwards
// those over the link: attached when the session is established and again when the
// subscriptions change, detached when the client leaves (not on a takeover by a newer
// connection of the same identity). It is level-triggered and per identity in order, on
// the hub's goroutines.
//
// # Twins, methods, C2D, configuration (twin*.go, method*.go, c2d*.go, config_*.go)
//
// With Deps.Twins (package twincache) and Deps.Cloud (the upstream link):
//
//   - Twin GET: answered from IoT Hub when the link is up (and cached), else from the
//     cache, else with an empty twin. Reported PATCH: validated (twin limits, merged size;
//     400 with an IoT Hub errorCode), merged into the cached twin and queued on disk before
//     the PUBACK, answered 204 (with IoT Hub's &$version when it was sent at once), and sent
//     upstream in order, composed, at most every Options.ReportedSyncInterval per identity,
//     also after a restart.
//   - Desired patches go to subscribed clients; after a version gap, on every
//     subscription to desired patches and for every subscribed client when the link comes
//     back, the hub GETs the twin and sends the difference from what the client last
//     received, so changes made while it or the hub was away always arrive, even to a
//     client that never asked for its twin.
//   - Direct methods from IoT Hub reach the client at QoS 0 on
//     $iothub/methods/POST/{name}/?$rid={hub's rid}; its answer, 404 (not connected or not
//     subscribed) or 504 (Options.MethodTimeout) goes back upstream. Modules call each
//     other through the HTTPS API on Options.HTTPSAddr (MethodHandler, protocol notes 6.4).
//   - C2D messages for leaf devices are stored ("/devices/{d}/messages/devicebound" queue)
//     before the link acknowledges them to IoT Hub, delivered at QoS 1 when the leaf is
//     connected and subscribed, and removed on its PUBACK.
//   - The hub's own module twin ({edge}/$edgeHub) carries its configuration: desired ->
//     deployment.ParseHub -> ApplyConfig, reported lastDesiredStatus 200, or 400 with the
//     previous configuration kept; the last good one is cached and applied at the start of
//     Run, before serving. Its reported properties also list the clients (B.3).
//
// Reconnection is noticed by polling Cloud.Connected, or at once through
// Server.CloudStateChanged.
//
// # Lock order
//
// registry.mu, deliverer.mu, pumpSet.mu, presence.mu and Server.ctxMu are leaves: none is
// held while taking another (except deliverer.mu around putting a PUBACK into an
// ackInbox, whose mu is a leaf) or while calling into mochi or the store. So are the relay's twinSync.mu,
// twinSync.flushMu, methodCalls.mu, c2dPumps.mu, configSync.mu and hubReport.mu; a
// twinSync flush lock (one identity's flushes) is held across cloud and cache calls.
//
// # Caveats
//
//   - Will messages (IoT Hub forwards them as telemetry) and X.509 client authentication
//     are not implemented yet.
//   - storeLimits.maxSizeBytes of the $edgeHub configuration applies at once to a Store
//     that has SetMaxBytes (*store.Store); with another Store it applies at the next start
//     (cmd/edgehub reads CachedConfig) and the hub says so in
//     lastDesiredStatus.description. A configuration without it leaves the cap unchanged.
//   - Upstream turns are per sender, not per priority: a sender's low-priority backlog
//     shares the link evenly with another sender's high-priority messages. One sender's
//     own live messages still go out behind its own backlog of the same priority (its
//     order is kept). Right after an upgrade, a sender's messages left in the shared
//     "$upstream" queue may reach the cloud after its newer ones.
//   - Sessions (CleanSession=0 subscriptions) live in memory only: after a hub restart
//     clients are told sessionPresent=0 and must subscribe again, which the SDKs do.
//   - A client's publishes are committed one after another (see ingestHook).
package hub
