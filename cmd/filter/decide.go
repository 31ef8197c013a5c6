package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// defaultThreshold is the threshold until the twin sets one, as in Azure's filter sample.
const defaultThreshold = 25.0

// decide reads a sensor message body ({"machine":{"temperature":...},...}, tempsensor's
// schema) and reports whether it is an alert: machine.temperature strictly above threshold.
// It returns errMalformed for a body that is not a JSON object and errNoTemperature when
// machine.temperature is missing, null or not a number.
func decide(body []byte, threshold float64) (alert bool, temperature float64, err error) {
	var msg struct {
		Machine *struct {
			Temperature *float64 `json:"temperature"`
		} `json:"machine"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return false, 0, fmt.Errorf("%w: %s is a %s", errNoTemperature, typeErr.Field, typeErr.Value)
		}
		return false, 0, errMalformed
	}
	if msg.Machine == nil || msg.Machine.Temperature == nil {
		return false, 0, errNoTemperature
	}
	t := *msg.Machine.Temperature
	return t > threshold, t, nil
}

// parseThreshold reads the TemperatureThreshold desired property: a number, or null (the
// property was deleted) for the default.
func parseThreshold(v any) (float64, error) {
	var f float64
	switch x := v.(type) {
	case nil:
		return defaultThreshold, nil
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return 0, fmt.Errorf("%w: %s", errBadThreshold, x)
		}
	case float64:
		f = x
	default:
		return 0, fmt.Errorf("%w: %v", errBadThreshold, v)
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%w: %v", errBadThreshold, v)
	}
	return f, nil
}
