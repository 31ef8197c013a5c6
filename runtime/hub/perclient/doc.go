// Package perclient connects the edge hub (package hub) to an IoT Hub that does not speak
// Outpost's $edgehub extension (docs/upstream.md), such as Azure IoT Hub: one plain IoT Hub
// MQTT connection per local identity, in the dialect of docs/iothub-mqtt-protocol.md,
// authenticated with the client's own SAS token, as Microsoft's edgeHub does over MQTT
// (ClientTokenCloudConnection). cmd/edgehub chooses it with --upstream-mode per-client;
// the default, package uplink over package upstream, multiplexes every client on one
// connection and needs the extension.
//
// One *Link implements what the hub asks of its upstream:
//
//   - hub.PipelinedUpstream: a client's telemetry goes on that client's connection, at QoS
//     1, many messages in flight; the PUBACK is the outcome;
//   - hub.IdentityResolver and hub.Identities: the client's token opens its connection
//     (see Authentication);
//   - hub.Presence: what a connected client subscribed to locally (desired patches,
//     methods, C2D) is subscribed to on its connection;
//   - hub.Cloud (Link.Cloud): twins, method answers and C2D per identity, and the hub's own
//     twin on the edge hub's own connection ({edge}/$edgeHub, signed with its key).
//
// # Basics
//
//	ids, _ := identities.Open(identities.Options{Path: ...}) // holds the clients' keys
//	l, _ := perclient.New(perclient.Options{Hub: cs, Keys: ids, KeyChanges: ids.Changes(),
//		CAFile: ca, OnLinkChange: func(up bool) { srv.CloudStateChanged(up) }})
//	srv, _ := hub.New(hubOpts, hub.Deps{Store: st, Identities: l, IdentityChanges: l.Changes(),
//		Upstream: l, Resolver: l, Presence: l, Twins: twins, Cloud: l.Cloud()})
//	go l.Run(ctx)
//	srv.Run(ctx)
//
// # Sessions
//
// Each identity has a session: its token, its subscriptions and one goroutine keeping one
// connection (a paho client per connection) open:
//
//	(none) --Resolve--> connecting --CONNACK 0--> up <--back-off-- down <--lost--+
//	                        |                      |                              |
//	                        |                      +------------------------------+
//	                        +--CONNACK 0x04/0x05--> refused ---+
//	up/down --token expired--> expired ------------------------+--Resolve (new token)--> connecting
//	up/down --detached and unused for IdleTimeout--> idle --a send (token still valid)--> connecting
//
// Refused and expired sessions wait for their client to connect to the hub again with a
// fresh token; while they wait, their messages stay stored (ErrOffline). The edge hub's own
// session signs its tokens and renews them by reconnecting after RenewFraction of
// HubTokenTTL.
//
// # Authentication
//
// The hub verifies every client's token itself against Deps.Identities' keys, calls its
// IdentityResolver only when that fails, and verifies again against the keys after the
// resolver returned nil. So, with today's hub:
//
//   - The clients' keys must be in the identity cache: per-client mode has no way to learn
//     them from IoT Hub (edgeHub uses the device-scope REST API, which neither Azure's MQTT
//     dialect nor the fake hub offers to a module), so they come from cmd/edgehub's --config
//     identities (or an earlier run in extension mode). Resolve refuses a token the cache
//     cannot verify (ErrNoKeys) without asking IoT Hub.
//   - The link is the hub's Identities (Link.Keys): it answers the cache's keys for an
//     identity only while its session vouches for it, so that the hub calls Resolve, with
//     the token, on a client's first connection in each run, and again whenever its
//     session was refused, expired or reached RenewFraction of its token's remaining
//     lifetime (Changes then makes the hub check its clients: the client is disconnected
//     and reconnects with its current token, which renews its connection to IoT Hub). A
//     client's local reconnection with a new token before that is not seen (the hub does
//     not say which token a client presented when the keys verify it); it costs one forced
//     local reconnection per token lifetime.
//   - Resolve connects as the client with its token: CONNACK 0 vouches for it; a refusal
//     refuses it (ErrRefused). When IoT Hub cannot be reached within the hub's
//     authentication deadline (less a second), the cache's verification stands, as for a
//     known client of the extension link while offline, and the connection keeps trying;
//     a later refusal withdraws the vouch (Changes) and the hub disconnects the client.
//   - A client never seen (no keys) cannot connect while offline, nor online. A known one
//     can connect while offline with any token its keys verify. Tokens are not cached on
//     disk: after a restart every client goes through Resolve again.
//   - Tokens issued for the gateway host name verify locally but IoT Hub refuses them
//     (audience): Resolve refuses them (ErrNoKeys, wrapping sas.ErrAudience).
//
// With the hub change proposed in the Caveats (a resolver that vouches for a token by
// itself), the keys would no longer be needed and Azure's CacheTokens behaviour could be
// had instead: offline, a known client accepted only with the token last accepted online.
//
// # Telemetry and LinkState
//
// SendAsync publishes on the sender's connection; messages of one sender stay in order
// (one connection, and the pump's in-order resend after a failure). A message whose sender
// has no connection up fails with ErrOffline and marks the sender unreachable; LinkState is
// down while any sender is unreachable and its channel closes at every change of any
// session, so that the pump retries as soon as something may have come back. A message
// IoT Hub would refuse (over 256 KB) and the message of an identity the cache no longer
// knows, without a connection, are rejected (dead-lettered).
//
// The hub keeps one $upstream queue per sender (runtime/hub's upstream lanes), so a sender
// whose connection is down waits alone: its lane parks until LinkState changes, the
// others go on (TestPerClient_ExpiredTokenWaitsForClient). With the single shared
// $upstream queue of earlier hub versions, such a message held back every message after
// it, of every sender, as it does in Microsoft's edgeHub (its CloudEndpoint fails it as
// transient and the endpoint's executor retries it).
//
// # Twins, methods, C2D
//
// Twin GETs and reported patches go on the identity's connection (an identity without one
// fails with upstream.ErrOffline: the hub answers from its cache and flushes later).
// Desired patches, method requests (with IoT Hub's own $rid: RespondMethod answers it on
// the same identity's connection) and C2D messages arrive on the identity's connection and
// go to the hub's handlers in order, one identity at a time; a C2D message is
// acknowledged only once the hub's handler returned nil. When an identity's connection
// comes back after a loss, OnLinkChange gets false then true (coalesced), so that the hub
// resynchronises desired properties and flushes reported ones.
//
// # Caveats
//
// Hub changes that would make this mode complete (runtime/hub is not this package's):
//
//  1. Authentication without keys: an optional interface on the resolver, e.g.
//     VouchToken(ctx, id, password string, tok sas.Token) error, called by
//     authenticator.check after the checks that need no key (form, expiry, audience) and
//     by Revalidate with the stored password, instead of sas.Verify against Identities.
//     It would pass every client's token to the link (no forced reconnection for renewal)
//     and remove the need for local keys.
//  2. The reported-properties flusher ends its round at the first failure
//     (twin_reported.go runFlusher: failed = true; break) and starts the next round, after
//     a back-off, from the first identity in the cache's order: an identity whose
//     connection stays down (expired, its client gone) with patches pending starves the
//     patches of every identity after it, until each of them sends a patch of its own
//     (which is flushed on its own path). The round should skip an identity whose error
//     matches upstream.ErrOffline and go on.
//  3. A per-identity CloudStateChanged(id, up) would replace the false/true pulse.
//  4. The per-sender $upstream lanes (see Telemetry) are what keeps an offline sender from
//     holding back the others; this package relies on them.
//
// Also: the client's own MQTT keep-alive and will are not carried (the link uses its own
// keep-alive; wills are not implemented by the hub); X.509 clients are not supported; each
// identity costs one TLS connection to IoT Hub (Azure limits connections per device to
// one, which is what this is, and IoT Hub's per-unit connection quotas apply); a session
// is kept for every identity seen in the run (its memory, not a connection).
package perclient
