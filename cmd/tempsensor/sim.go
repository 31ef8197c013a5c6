package main

import (
	"math/rand/v2"
	"time"
)

// simParams are the simulator's bounds; the names of the environment variables that set
// them are Azure's (machineTempMin, ...).
type simParams struct {
	machineTempMin, machineTempMax         float64 // °C; the machine starts (and resets) at the minimum
	machinePressureMin, machinePressureMax float64 // psi, proportional to the temperature between its bounds
	ambientTemp                            float64 // °C, jitters ±0.5
	ambientHumidity                        int     // %, jitters ±1
}

// defaultSimParams are Azure's defaults.
var defaultSimParams = simParams{
	machineTempMin: 21, machineTempMax: 100,
	machinePressureMin: 1, machinePressureMax: 10,
	ambientTemp: 21, ambientHumidity: 25,
}

// reading is one message body: {"machine":{"temperature":..,"pressure":..},
// "ambient":{"temperature":..,"humidity":..},"timeCreated":"RFC 3339"}, Azure's schema.
type reading struct {
	Machine     machine   `json:"machine"`
	Ambient     ambient   `json:"ambient"`
	TimeCreated time.Time `json:"timeCreated"`
}

type machine struct {
	Temperature float64 `json:"temperature"`
	Pressure    float64 `json:"pressure"`
}

type ambient struct {
	Temperature float64 `json:"temperature"`
	Humidity    int     `json:"humidity"`
}

// simulator is Azure's value model: the machine temperature climbs from its minimum by a
// random step in [-0.25, 1.25) (+0.5 on average) until it passes the maximum, then wanders by
// [-0.5, 0.5); the pressure follows the temperature linearly; the ambient values jitter around
// their settings. It is driven by one goroutine.
type simulator struct {
	p    simParams
	rng  *rand.Rand
	temp float64
}

func newSimulator(p simParams, rng *rand.Rand) *simulator {
	return &simulator{p: p, rng: rng, temp: p.machineTempMin}
}

// reset brings the machine back to its baseline temperature, machineTempMin.
func (s *simulator) reset() { s.temp = s.p.machineTempMin }

// next advances the model one step and returns the reading stamped with now (in UTC).
func (s *simulator) next(now time.Time) reading {
	if s.temp > s.p.machineTempMax {
		s.temp += s.rng.Float64() - 0.5
	} else {
		s.temp += -0.25 + s.rng.Float64()*1.5
	}
	return reading{
		Machine: machine{Temperature: s.temp, Pressure: s.pressure(s.temp)},
		Ambient: ambient{
			Temperature: s.p.ambientTemp + s.rng.Float64() - 0.5,
			Humidity:    s.p.ambientHumidity - 1 + s.rng.IntN(3),
		},
		TimeCreated: now.UTC(),
	}
}

// pressure maps a temperature linearly from [machineTempMin, machineTempMax] onto
// [machinePressureMin, machinePressureMax] (extrapolating beyond).
func (s *simulator) pressure(temp float64) float64 {
	p := s.p
	return p.machinePressureMin + (temp-p.machineTempMin)*(p.machinePressureMax-p.machinePressureMin)/(p.machineTempMax-p.machineTempMin)
}
