package main

import (
	"strings"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

// Environment variables.
const (
	envMessageCount = "MessageCount"
	envRate         = "Rate"
	envMessageSize  = "MessageSize"
	envOutputs      = "Outputs"
	envInFlight     = "InFlight"
)

// Defaults and bounds.
const (
	defaultMessageSize = 1024
	defaultInFlight    = 16
	maxInFlight        = 1024
	// maxMessageSize leaves 1 KB of IoT Hub's 256 KB message limit (which the client
	// enforces, counting properties too) to the properties.
	maxMessageSize = iothub.MaxMessageSize - 1024
)

var defaultOutputs = []string{"output1"}

// config is the generator's configuration.
type config struct {
	count    int      // messages to send; 0 means no limit
	rate     float64  // messages per second; 0 means as fast as InFlight allows
	size     int      // body size in bytes
	outputs  []string // sent to in turn
	inFlight int      // sends awaiting their acknowledgement at most
}

// parseConfig reads the configuration through getenv; the error names every bad variable
// and wraps modulemain.ErrConfig.
func parseConfig(getenv func(string) string) (config, error) {
	e := modulemain.NewEnv(getenv)
	c := config{
		count:    e.Int(envMessageCount, 0),
		rate:     e.Float(envRate, 0),
		size:     e.Int(envMessageSize, defaultMessageSize),
		outputs:  e.List(envOutputs, defaultOutputs),
		inFlight: e.Int(envInFlight, defaultInFlight),
	}
	if c.count < 0 {
		e.Invalid(envMessageCount, "want 0 (no limit) or a positive number of messages")
	}
	if c.rate < 0 {
		e.Invalid(envRate, "want 0 (as fast as possible) or a positive number of messages per second")
	}
	if c.size < 0 || c.size > maxMessageSize {
		e.Invalid(envMessageSize, "want a size in bytes up to 261120 (IoT Hub's 256 KB less room for properties)")
	}
	for _, o := range c.outputs {
		if strings.ContainsAny(o, "/#+") {
			e.Invalid(envOutputs, "an output name cannot contain '/', '#' or '+'")
			break
		}
	}
	if c.inFlight < 1 || c.inFlight > maxInFlight {
		e.Invalid(envInFlight, "want between 1 and 1024 sends in flight")
	}
	if err := e.Err(); err != nil {
		return config{}, err
	}
	return c, nil
}
