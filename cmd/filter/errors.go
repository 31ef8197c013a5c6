package main

import "errors"

// Why a message is dropped instead of checked against the threshold.
var (
	errMalformed     = errors.New("body is not a JSON object")
	errNoTemperature = errors.New("body has no numeric machine.temperature")
)

// errBadThreshold reports a TemperatureThreshold desired property that is not a number.
var errBadThreshold = errors.New("TemperatureThreshold is not a number")
