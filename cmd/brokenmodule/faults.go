package main

import (
	"fmt"
	"strings"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
)

// envFaults names the faults to switch on.
const envFaults = "BROKEN_FAULTS"

// faults are the switched-on faults.
type faults struct {
	identity, sigterm, reconnect, memory bool
}

// parseFaults reads BROKEN_FAULTS: a comma-separated list of identity, sigterm,
// reconnect and memory (blank: none).
func parseFaults(s string) (faults, error) {
	var f faults
	for _, name := range strings.Split(s, ",") {
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "":
		case "identity":
			f.identity = true
		case "sigterm":
			f.sigterm = true
		case "reconnect":
			f.reconnect = true
		case "memory":
			f.memory = true
		default:
			return faults{}, fmt.Errorf("%w: environment variable %s=%q: unknown fault %q (want identity, sigterm, reconnect or memory)",
				modulemain.ErrConfig, envFaults, s, strings.TrimSpace(name))
		}
	}
	return f, nil
}

// String lists the faults, "none" for none.
func (f faults) String() string {
	var out []string
	for _, x := range []struct {
		on   bool
		name string
	}{{f.identity, "identity"}, {f.sigterm, "sigterm"}, {f.reconnect, "reconnect"}, {f.memory, "memory"}} {
		if x.on {
			out = append(out, x.name)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}
