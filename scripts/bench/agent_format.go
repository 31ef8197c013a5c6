package main

import (
	"runtime"
	"strconv"
	"time"
)

// runtimeLabel names a runtime in the report: "process", "Docker".
func runtimeLabel(rt string) string {
	if rt == runtimeDocker {
		return "Docker"
	}
	return rt
}

// human formats a duration for the report's prose: "25 ms", "2.5 s", "10 s".
func human(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

// machineLoad measures how busy the whole machine was over a scenario: the device under
// test, the harness and whatever else ran meanwhile.
type machineLoad struct {
	start time.Time
	busy  time.Duration
	err   error
}

func startMachineLoad() machineLoad {
	b, err := machineBusy()
	return machineLoad{start: time.Now(), busy: b, err: err}
}

// note is the report line: CPU busy over the wall time, in % of one core.
func (m machineLoad) note() string {
	b, err := machineBusy()
	wall := time.Since(m.start)
	if m.err != nil || err != nil || wall <= 0 {
		return "The machine's CPU use could not be read."
	}
	return "The whole machine (the device under test, the harness, and anything else running) used " +
		strconv.FormatFloat(100*float64(b-m.busy)/float64(wall), 'f', 0, 64) + "% of one core on average over this section (" +
		strconv.Itoa(runtime.NumCPU()) + " cores), over " + wall.Round(time.Second).String() + "."
}
