package main

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
)

// Environment variables. MessageCount, MessageDelay and the simulator bounds are Azure's
// names; SendInterval is also the name of Azure's twin setting.
const (
	envMessageCount       = "MessageCount"
	envSendInterval       = "SendInterval"
	envMessageDelay       = "MessageDelay"
	envSeed               = "Seed"
	envMachineTempMin     = "machineTempMin"
	envMachineTempMax     = "machineTempMax"
	envMachinePressureMin = "machinePressureMin"
	envMachinePressureMax = "machinePressureMax"
	envAmbientTemp        = "ambientTemp"
	envAmbientHumidity    = "ambientHumidity"
)

// Defaults, Azure's.
const (
	defaultMessageCount = 500
	defaultInterval     = 5 * time.Second
)

// config is the module's start-up configuration.
type config struct {
	// messageCount is how many messages to send; negative means no limit.
	messageCount int
	// interval is the wait between two messages; the twin's SendInterval can change it.
	interval time.Duration
	// seed seeds the simulator's random numbers.
	seed uint64
	sim  simParams
}

// parseConfig reads the configuration through getenv. Every malformed variable is reported
// in the error, which wraps modulemain.ErrConfig.
func parseConfig(getenv func(string) string) (config, error) {
	e := modulemain.NewEnv(getenv)
	c := config{
		messageCount: e.Int(envMessageCount, defaultMessageCount),
		interval:     defaultInterval,
		seed:         rand.Uint64(),
		sim: simParams{
			machineTempMin:     e.Float(envMachineTempMin, defaultSimParams.machineTempMin),
			machineTempMax:     e.Float(envMachineTempMax, defaultSimParams.machineTempMax),
			machinePressureMin: e.Float(envMachinePressureMin, defaultSimParams.machinePressureMin),
			machinePressureMax: e.Float(envMachinePressureMax, defaultSimParams.machinePressureMax),
			ambientTemp:        e.Float(envAmbientTemp, defaultSimParams.ambientTemp),
			ambientHumidity:    e.Int(envAmbientHumidity, defaultSimParams.ambientHumidity),
		},
	}
	// SendInterval is the Outpost name, MessageDelay Azure's; both take any form
	// modulemain.ParseDuration reads. Giving both is ambiguous.
	switch {
	case e.Set(envSendInterval) && e.Set(envMessageDelay):
		e.Invalid(envMessageDelay, "set either "+envSendInterval+" or "+envMessageDelay+", not both")
	case e.Set(envMessageDelay):
		c.interval = e.Duration(envMessageDelay, defaultInterval)
	default:
		c.interval = e.Duration(envSendInterval, defaultInterval)
	}
	if e.Set(envSeed) {
		s := e.String(envSeed, "")
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			c.seed = uint64(n)
		} else if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			c.seed = u
		} else {
			e.Invalid(envSeed, "want an integer")
		}
	}
	if c.sim.machineTempMax <= c.sim.machineTempMin {
		e.Invalid(envMachineTempMax, "must be above "+envMachineTempMin)
	}
	if c.sim.ambientHumidity < 1 || c.sim.ambientHumidity > 99 {
		e.Invalid(envAmbientHumidity, "want a percentage between 1 and 99")
	}
	if err := e.Err(); err != nil {
		return config{}, err
	}
	return c, nil
}
