package features

import (
	"os/exec"
	"strings"
	"time"
)

// backoffFlag is one of the edge agent's restart back-off settings: the
// flag that sets it, the short value the scenarios use, and the agent's
// default (restart package: Azure's cool-off unit, cap and intensive-care
// time) in force when the agent has no such flag.
type backoffFlag struct {
	flag     string
	test     time.Duration
	fallback time.Duration
}

// The back-off settings the scenarios run the agent with. Short, so that a
// restart scenario takes seconds; the cap is above unit × 2^3 so that
// "the back-off doubles" can watch three restarts, and the reset time is
// above the whole crash loop of the reset scenario.
var (
	flagUnit       = backoffFlag{flag: "restart-backoff-unit", test: time.Second, fallback: 10 * time.Second}
	flagCap        = backoffFlag{flag: "restart-backoff-cap", test: 16 * time.Second, fallback: 300 * time.Second}
	flagResetAfter = backoffFlag{flag: "restart-reset-after", test: 4 * time.Second, fallback: 10 * time.Minute}
)

// backoff is the restart back-off in force in the scenarios' agents.
type backoff struct {
	unit, cap, resetAfter time.Duration
	// set lists the flags given to the agent; missing those it lacks (their
	// defaults are then in force).
	set, missing []string
}

// detectBackoff asks the agent binary (edgeagent -h) which back-off flags
// it has, and returns the settings to run it with.
func detectBackoff(agentBinary string) backoff {
	out, _ := exec.Command(agentBinary, "-h").CombinedOutput() // -h exits 0; the text is what matters
	help := string(out)
	var b backoff
	pick := func(f backoffFlag) time.Duration {
		if strings.Contains(help, "-"+f.flag+" ") {
			b.set = append(b.set, "--"+f.flag+"="+f.test.String())
			return f.test
		}
		b.missing = append(b.missing, "--"+f.flag)
		return f.fallback
	}
	b.unit = pick(flagUnit)
	b.cap = pick(flagCap)
	b.resetAfter = pick(flagResetAfter)
	return b
}

// flags are the agent flags that set the back-off.
func (b backoff) flags() []string { return b.set }

// delay is the back-off before restart n+1: min(unit × 2^n, cap), the
// agent's documented rule.
func (b backoff) delay(n int) time.Duration {
	d := b.unit
	for i := 0; i < n && d < b.cap; i++ {
		d *= 2
	}
	return min(d, b.cap)
}

// describe says what is in force, for the run's log.
func (b backoff) describe() string {
	s := "restart back-off: unit " + b.unit.String() + ", cap " + b.cap.String() + ", reset after " + b.resetAfter.String()
	if len(b.missing) > 0 {
		s += "; the edge agent has no " + strings.Join(b.missing, ", ") +
			" flag, so its defaults are in force: the restart scenarios are slow and those tagged " + shortBackoffTag + " are skipped"
	}
	return s
}
