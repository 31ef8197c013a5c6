// Package cli holds the flag, environment and logging plumbing shared by the daemons in cmd/
// (edgehub, edgeagent, fakehub).
//
// Every flag of a daemon can also be set by an environment variable named after the
// daemon's prefix and the flag (EnvName); ApplyEnv sets them before the command line is
// parsed, so that the command line wins. The daemons share the --log-format text|json and
// --log-level debug|info|warn|error flags: CheckLogFormat and ParseLevel validate them, and
// NewLogger builds the slog logger they ask for.
//
// The sample modules use package modulemain instead: their settings and log level come from
// the environment variables of Azure's module contract, not from flags.
package cli
