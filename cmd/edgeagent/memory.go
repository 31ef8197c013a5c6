package main

import (
	"os"

	"github.com/outpost-edge/outpost/cmd/internal/cli"
)

// init applies the daemons' memory defaults (cli.TuneMemory: GOGC 50 unless GOGC is set,
// no heap profiling unless GODEBUG asks for it) before main runs, so they cover the agent
// and the module supervisors alike: both are this executable (main hands the supervisor
// mode over first thing). The agent serves no profiles.
func init() {
	cli.TuneMemory(os.Getenv, false)
}
