// Package cli holds the settings, environment and logging plumbing shared by the daemons in
// cmd/ (edgehub, edgeagent, fakehub).
//
// # Settings
//
// A daemon's settings are its flags. Settings fills them from layers, highest precedence
// first, each layer setting only what no higher layer did:
//
//  1. the command line;
//  2. the daemon's environment variables, named after its prefix and the flag (EnvName:
//     EDGEHUB_DATA_DIR for --data-dir);
//  3. fallback variables, for edgehub the ones Azure's edge agent injects into edgeHub
//     (IOTEDGE_DEVICEID for --edge-device-id, ...);
//  4. layers of the daemon's own (Fill: edgeagent's edge.json);
//  5. the TOML configuration file named by a flag (--config-file), whose keys are the flag
//     names: data-dir = "/var/lib/outpost";
//  6. the flags' defaults.
//
// Load runs 1, 2, 3 and 5. Mistakes are errors that name their source: the variable and its
// value, or the file, the key's line and the key (an unknown key, a value of the wrong TOML
// type, a value the flag rejects). Settings remembers where each value came from (Origin):
// Annotate adds it to a daemon's own validation errors, WriteTOML prints the effective
// configuration (--print-config), and CheckSample keeps the documented sample files
// (docs/config) true to the flags' defaults. docs/configuration.md is the operator's guide.
//
// # Logging
//
// The daemons share the --log-format text|json and --log-level debug|info|warn|error flags:
// CheckLogFormat and ParseLevel validate them, and NewLogger builds the slog logger they ask
// for.
//
// The sample modules use package modulemain instead: their settings and log level come from
// the environment variables of Azure's module contract, not from flags.
package cli
