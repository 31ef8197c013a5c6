// Command edgectl is the operator's tool for an Outpost edge device, after
// Azure's iotedge: it lists, restarts and shows the logs of the modules the
// edge agent runs, tells whether the agent runs, checks the device's
// configuration and connectivity (also offline, saying what to do about
// each problem), shows the agent's effective configuration, and deploys a
// manifest through IoT Hub's service API, following it until every module
// runs.
//
// Usage:
//
//	edgectl [--data-dir DIR] [--socket PATH] [--output text|json] COMMAND
//
//	setup --connection-string CS [--runtime process|docker] [--edge-hostname NAME] [--force] ...
//	start | stop | restart        the runtime: the agent (under a watchdog or in
//	                              the edgeAgent container) and its modules
//	login --address R --username U --password-stdin
//	uninstall [--yes]             remove the runtime, its modules and data
//	install-service [--dry-run]   a systemd unit running the agent
//	list                          modules: NAME STATUS DESCRIPTION CONFIG
//	logs MODULE [--tail N] [--since T] [--until T] [--follow] [--timestamps]
//	restart MODULE                stop and start a running module
//	status                        RUNNING, STOPPED or UNAVAILABLE, with the reason
//	check [--verbose] [--dont-run IDS] [--warnings-as-errors] ...
//	config                        the agent's effective configuration
//	deploy MANIFEST --service-connection-string-file FILE [--device ID] ...
//
// edgectl talks to the agent over its management socket, mgmt.sock in the
// agent's data directory (--data-dir, default EDGEAGENT_DATA_DIR or
// ./edgeagent-data, as edgeagent's), and reads config.json there when the
// agent is not running. docs/edgectl.md describes every command with
// example output.
//
// Exit status: 0 success; 1 the command failed (an error from the agent or
// the hub, a check that raised an error, a rejected manifest, a module that
// failed to deploy); 2 bad usage (flags, arguments, a malformed connection
// string); 3 deploy timed out; 4 the agent is not running or its socket
// cannot be used; 5 setup refused to change an existing setup without
// --force.
//
// setup writes the device's configuration in the data directory (edge.json,
// which edgeagent reads with --config; the connection string in its own
// 0600 file; the edge certificates in certs/). start runs the agent: with
// the process runtime under a watchdog, a detached "edgectl
// supervise-agent" that restarts it when it dies; with Docker as the
// container edgeAgent, restart policy unless-stopped. The modules outlive
// the agent either way and are adopted by the next one.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
