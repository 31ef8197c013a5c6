package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// controlInput is the input on which Azure's sensor takes commands.
const controlInput = "control"

// errBadControl reports a control message that is not a command.
var errBadControl = errors.New("control message is not {\"command\":\"reset\"} or a list of them")

// parseControl reads a control message: {"command":"reset"} or a list of such objects, as
// Azure's sensor does (the command may also be its enum number, 0 for reset and 1 for no
// operation). It reports whether any command is a reset.
func parseControl(body []byte) (reset bool, err error) {
	type command struct {
		Command json.RawMessage `json:"command"`
	}
	var cmds []command
	if err := json.Unmarshal(body, &cmds); err != nil {
		var one command
		if err := json.Unmarshal(body, &one); err != nil {
			return false, errBadControl
		}
		cmds = []command{one}
	}
	for _, c := range cmds {
		isReset, err := commandIsReset(c.Command)
		if err != nil {
			return false, err
		}
		reset = reset || isReset
	}
	return reset, nil
}

func commandIsReset(raw json.RawMessage) (bool, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch strings.ToLower(s) {
		case "reset":
			return true, nil
		case "nooperation":
			return false, nil
		}
		return false, fmt.Errorf("%w: unknown command %q", errBadControl, s)
	}
	var n int
	if json.Unmarshal(raw, &n) == nil && (n == 0 || n == 1) {
		return n == 0, nil
	}
	return false, fmt.Errorf("%w: command %s", errBadControl, raw)
}
