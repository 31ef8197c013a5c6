// Package docker runs the agent's modules as Docker containers: Runtime
// implements agent.Runtime on the Docker Engine API
// (github.com/docker/docker/client, API version negotiated, so that Debian's
// engine 20.10 with API 1.41 works).
//
// # Containers
//
// A module is a container named after the module (edgeHub, tempSensor; no
// prefix), carrying the labels of its agent.ModuleSpec. List returns only
// the containers labelled agent.LabelOwner = agent.Owner. Containers get the
// Docker restart policy "no": the agent alone decides restarts.
//
// The container is built from the module's createOptions, the Docker Engine
// create body (see Runtime.Create for what is kept and what is replaced).
// Every module joins the bridge network Options.Network ("azure-iot-edge")
// unless its createOptions names networks in NetworkingConfig.EndpointsConfig;
// the network is created when missing. edgeHub gets the gateway host name
// as a network alias, so that the other modules reach it by the name in
// IOTEDGE_GATEWAYHOSTNAME (edge-runtime-behaviour D.4).
//
// # States
//
//	created ──start──▶ running ◀──▶ paused, restarting (all "running")
//	   │                  │
//	   │                stop / exit
//	   │                  ▼
//	   └────remove──── exited, removing ("exited") ── remove ──▶ (gone)
//	                   dead ("dead": the agent removes and recreates it)
//
// Health comes from the container's health check (a Healthcheck in
// createOptions): starting, healthy or unhealthy.
//
// # Images and registries
//
// Pull sends the deployment's registry credential to the engine (the
// X-Registry-Auth header); the agent chooses it (agent.Credential). An image
// pinned by digest is checked against the pulled image's RepoDigests, and
// Options.RequireDigest refuses images that are not pinned.
//
// # Exit watch
//
// WatchExits (agent.ExitWatcher) follows the engine's events API, filtered
// to type=container, event=die and the owner label, and sends the module's
// name for each. When the stream breaks it reconnects (100 ms doubling to
// 5 s) and asks for the events since the last one seen, so that an exit
// during the gap is not lost.
//
// # Errors
//
// The engine's 404 and 409 answers become agent.ErrNotFound,
// agent.ErrExists and agent.ErrImageNotFound; refused credentials
// ErrUnauthorized. The runtime talks to the engine through a small
// unexported interface, so that the unit tests can produce these answers
// with a fake; the integration tests run against a real engine with images
// built by package dockertest.
package docker
