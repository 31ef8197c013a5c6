// Package conformance is Outpost's conformance kit for third-party modules: it runs a
// module against a real edge hub (package hub, wired in-process as cmd/edgehub wires it)
// and a fake IoT Hub (package fakehub), checks what the module does, and reports each
// check as a named test with a verdict (PASS, FAIL, SKIP) and the evidence, as text,
// JUnit XML and JSON. edgectl conformance is its command line; docs/conformance.md
// describes the spec file and the checks for module authors.
//
// # Basics
//
//	spec, err := conformance.ReadSpec("module.json")
//	rep, err := conformance.Run(ctx, conformance.Options{
//		Spec: spec, Runner: &conformance.ProcessRunner{Path: "./mymodule"},
//	})
//	rep.WriteText(os.Stdout)
//	if !rep.OK() { ... }
//
// An image runs the same way with a DockerRunner (an engine client of the caller's, the
// image already in the engine):
//
//	Runner: &conformance.DockerRunner{Image: "registry.example.com/mymodule:1.0", Client: cli}
//
// # Runners
//
// ProcessRunner starts an executable as a child process in its own process group; the
// resource checks read its /proc entry, the sigterm check signals it. DockerRunner creates
// a container of the image on a Docker Engine on this host, in the host's network (the
// edge hub listens on loopback, under the name in its certificate), with the run's edge CA
// bind-mounted read-only at ContainerCAFile, labelled LabelOwner=Owner (not the edge
// agent's owner label); the sigterm check stops it with docker stop, the resource checks
// read docker stats, and the container is removed at the end of the run whatever
// happened. A run that was killed outright leaves its container behind: the next
// DockerRunner start on the host removes it.
//
// # A run
//
//	setup:  work dir -> fake IoT Hub (random loopback ports) -> edge device, the module's
//	        and the probe's identities -> $edgeHub routes (probe -> inputs, outputs ->
//	        probe) -> edge hub (fresh edge CA, TLS on a random loopback port) -> probe
//	        connected
//	   |
//	   v
//	module started (Runner) with the agent's injected environment; /proc sampled
//	   |
//	   v
//	connect -> input/* -> output/* -> twin -> method/* -> reconnect (edge hub stopped and
//	started again on the same address and data) -> sigterm -> identity, memory, cpu
//	(judged on the whole run)
//	   |
//	   v
//	teardown: module killed if still running, probe, edge hub, fake IoT Hub, work dir
//
// The checks run in that order, each bounded by the spec's timeouts; when the module
// never connects, the checks that need a connection are skipped. The edge hub runs
// in-process rather than as a cmd/edgehub subprocess so that the checks read its counters
// (Stats) and its log lines about each client (the record of connections, refusals and
// their reasons) directly, and a restart is a stop and a start of the same wiring.
//
// # What each check observes
//
//   - connect: the hub's "client connected" for {edge}/{module}. The hub serves TLS only,
//     with a certificate of an edge CA made for the run; the module learns the CA only from
//     EdgeModuleCACertificateFile and its key only from EdgeHubConnectionString.
//   - identity: the hub's refusals of the module's publishes and subscriptions (not its
//     own topics), and connections under any other client id, over the whole run.
//   - input/{i}: a sample sent by the probe through a route is acknowledged by the module
//     (the hub counts a delivery only after the module's PUBACK).
//   - output/{o}: a message routed from the output to the probe, within maxBytes; no
//     publish of the module refused as malformed or too large.
//   - twin: desired properties patched through the fake IoT Hub's service API; the
//     reported properties read back from it.
//   - method/{m}: a direct method invoked through the fake IoT Hub's service API.
//   - reconnect: after the hub's restart, a new "client connected" within the bound; every
//     sample sent across the restart comes out of the output that declares it.
//   - sigterm: SIGTERM (a container: docker stop), then exit code 0 within the grace
//     period (else SIGKILL).
//   - memory, cpu: the module process's peak VmRSS and average CPU over the run (a
//     container: its cgroup's, from docker stats).
//
// # Caveats
//
//   - The module must reach the hub on its random port: Outpost's modules read
//     OUTPOST_MQTT_PORT; others need the hub on 8883 (not offered yet).
//   - Only an executable's own process is sampled, not its children (a container's
//     cgroup counts every process in it).
//   - The Docker Engine must run on this host (host network, a bind mount of a local
//     file); the runner does not pull images.
//   - Runs share nothing, so several may run at once (each has its own ports and dirs).
package conformance
