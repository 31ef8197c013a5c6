package main

import "errors"

// errLost wraps the error of a load client whose connection dropped during a run: a run
// fails with it rather than reconnecting, which would hide the drop in a retry.
var errLost = errors.New("connection lost")
