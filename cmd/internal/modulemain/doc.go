// Package modulemain is the plumbing shared by Outpost's sample modules (cmd/tempsensor,
// cmd/filter, cmd/relayer, cmd/loadgen): signal handling, the slog logger, reading settings
// from environment variables, and creating and connecting the module client from the
// environment the edge agent gives a module.
//
// # Shape of a module
//
// Every sample's main is one line, modulemain.Main(run), and all the work is in
//
//	func run(ctx context.Context, getenv func(string) string, stderr io.Writer) int
//
// so that tests call run in-process with a fake environment and a context of their own.
// Main cancels ctx on SIGTERM (what docker stop and the edge agent send) or SIGINT; run then
// closes its client and returns ExitOK, well within the second a clean stop should take.
//
// # Environment
//
// The connection comes from the variables the Azure SDKs read (see NewClient):
//
//	EdgeHubConnectionString      module connection string (or IotHubConnectionString)
//	EdgeModuleCACertificateFile  PEM file with the CA that signed the edge hub's certificate
//	OUTPOST_MQTT_PORT            MQTT/TLS port of the hub; default 8883 (Outpost only)
//	RuntimeLogLevel              debug|verbose|trace, info|information, warn|warning,
//	                             error|fatal|critical; default info
//
// # Exit codes
//
//	0 (ExitOK)      stopped by a signal, or finished its work
//	1 (ExitFailure) could not connect, or failed while running
//	2 (ExitConfig)  bad configuration: the message names the variable and what is wrong
package modulemain
