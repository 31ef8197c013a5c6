package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
)

// Desired properties of the module twin, Azure's: SendInterval (seconds) and SendData.
const (
	desiredSendInterval = "SendInterval"
	desiredSendData     = "SendData"
)

// settings are what the twin can change while the module runs.
type settings struct {
	interval time.Duration
	sendData bool
}

// apply returns s with a desired-properties patch applied. A property set to null (deleted)
// goes back to its value in defaults. A malformed value is left out, and reported in the
// error, while the other properties of the patch still apply.
func (s settings) apply(patch map[string]any, defaults settings) (settings, error) {
	var errs []error
	if v, ok := patch[desiredSendInterval]; ok {
		d, err := intervalValue(v, defaults.interval)
		if err != nil {
			errs = append(errs, fmt.Errorf("desired property %s=%v: %w", desiredSendInterval, v, err))
		} else {
			s.interval = d
		}
	}
	if v, ok := patch[desiredSendData]; ok {
		switch b := v.(type) {
		case nil:
			s.sendData = defaults.sendData
		case bool:
			s.sendData = b
		default:
			errs = append(errs, fmt.Errorf("desired property %s=%v: want true or false", desiredSendData, v))
		}
	}
	return s, errors.Join(errs...)
}

// intervalValue reads SendInterval: a number of seconds as Azure has it, or a duration
// string ("500ms", "00:00:05"); null means def.
func intervalValue(v any, def time.Duration) (time.Duration, error) {
	switch x := v.(type) {
	case nil:
		return def, nil
	case json.Number:
		return modulemain.ParseDuration(x.String())
	case float64:
		return modulemain.ParseDuration(fmt.Sprint(x))
	case string:
		return modulemain.ParseDuration(x)
	}
	return 0, errors.New("want a number of seconds")
}

// reported renders s as the reported properties Azure's sensor sends back.
func (s settings) reported() map[string]any {
	return map[string]any{desiredSendData: s.sendData, desiredSendInterval: s.interval.Seconds()}
}
