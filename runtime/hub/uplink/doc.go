// Package uplink connects the edge hub (package hub) to IoT Hub through the upstream link
// (package upstream): it implements the hub's interfaces for what crosses the link, and
// keeps the identity cache (package identities) in step with IoT Hub's registry.
//
//   - hub.PipelinedUpstream: telemetry of the $upstream pump, many messages in flight
//     (SendAsync), with upstream's errors mapped onto the hub's: ErrRejected (IoT Hub will
//     never take the message: dead-letter it) and ErrOffline (wait for LinkState);
//   - hub.IdentityResolver: a client the cache cannot verify is authenticated by IoT Hub on
//     its behalf, and the answer (keys, generation id, status) is cached on disk, so that
//     the client can reconnect later while the cloud is unreachable, also with a renewed
//     token (design.md section 4, edge-runtime-behaviour.md F.7);
//   - hub.Presence: connected clients are attached on the one upstream connection, with the
//     subscriptions they hold locally, and detached when they leave.
//
// # Basics
//
//	up, _ := upstream.New(upstream.Options{ConnectionString: cs, CAFile: ca})
//	ids, _ := identities.Open(identities.Options{Path: filepath.Join(dir, "identities.db")})
//	l := uplink.New(up, ids, uplink.Options{Logger: log})
//	srv, _ := hub.New(hubOpts, hub.Deps{Store: st, Identities: ids, IdentityChanges: ids.Changes(),
//		Upstream: l, Resolver: l, Presence: l})
//	go up.Run(ctx)
//	go l.Run(ctx) // follows the link state, refreshes the cache
//	srv.Run(ctx)
//
// # Lifecycle
//
//	New --Run(ctx)--> following up.States(): LinkState changes wake the $upstream pump
//	                  refreshing: when the link first comes up, then every RefreshInterval
//	                  (RetryInterval after a round cut short, or at once when the link returns)
//	ctx ends --> Run returns nil
//
// Run is the only reader of the upstream client's States channel: others use LinkState.
//
// # Refresh
//
// A refresh round asks IoT Hub for the current record of every cached identity (one
// identity GET each, one at a time) and applies decide's rule:
//
//	IoT Hub answers                      cache
//	record, same keys/status/generation  kept
//	record that differs                  replaced (rolled keys, disabled, re-created)
//	record without symmetric keys        removed (the hub verifies SAS tokens only)
//	404 (deleted), 403 (out of scope)    removed
//	offline                              round stops; again when the link returns
//	other errors (429, timeout, 5xx)     kept; round incomplete, again after RetryInterval
//
// Every change is a Put or Delete on the cache, which signals its Changes channel: the hub
// then checks every connected client again and disconnects those whose identity was
// disabled or removed, or whose token the new keys do not verify.
//
// # Caveats
//
//   - A module that authenticates with its device's token (the edge device's own key) is
//     refused through the cloud: the edge device's identity is outside the scope the link
//     may ask about, so its keys cannot be cached. Modules use their own keys.
//   - A client presenting a token for the gateway host name can be verified locally, but
//     not by IoT Hub (its audience is IoT Hub's host): its first connection is refused.
//   - Every failed local verification of a token that is not expired, malformed or for
//     another audience goes to IoT Hub; nothing limits the rate of such requests yet.
package uplink
