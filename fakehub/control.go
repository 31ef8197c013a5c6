package fakehub

import (
	"fmt"
	"net/http"
	"time"
)

// Test controls of the fake-only API (design.md section 7), the HTTP face of the Go
// methods of the same names:
//
//	GET  /fake/health                   200 {"status":"ok"}; needs no token (readiness probes)
//	GET  /fake/connections              200 [Connection, ...]
//	POST /fake/control/network/cut      204; CutNetwork
//	POST /fake/control/network/restore  204; RestoreNetwork
//	PUT  /fake/control/auth             {"refuse":true}     204; SetRefuseAuth
//	PUT  /fake/control/delay            {"delay":"200ms"}   204; SetDelay
//	PUT  /fake/control/throttle         {"enabled":true}    204; SetThrottle
//
// None of them is throttled, so a test can always switch throttling off again.

func (a *restAPI) health(w http.ResponseWriter, r *http.Request) {
	a.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *restAPI) connections(w http.ResponseWriter, r *http.Request) {
	conns := a.s.Connections()
	if conns == nil {
		conns = []Connection{}
	}
	a.writeJSON(w, http.StatusOK, conns)
}

func (a *restAPI) cutNetwork(w http.ResponseWriter, r *http.Request) {
	a.s.CutNetwork()
	a.logger().Info("test control: network cut")
	w.WriteHeader(http.StatusNoContent)
}

func (a *restAPI) restoreNetwork(w http.ResponseWriter, r *http.Request) {
	a.s.RestoreNetwork()
	a.logger().Info("test control: network restored")
	w.WriteHeader(http.StatusNoContent)
}

func (a *restAPI) setRefuseAuth(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Refuse *bool `json:"refuse"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		a.writeError(w, r, err)
		return
	}
	if body.Refuse == nil {
		a.writeError(w, r, argumentInvalid(`"refuse" is required: {"refuse":true} or {"refuse":false}`))
		return
	}
	a.s.SetRefuseAuth(*body.Refuse)
	a.logger().Info("test control: refuse auth", "refuse", *body.Refuse)
	w.WriteHeader(http.StatusNoContent)
}

func (a *restAPI) setDelay(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Delay *string `json:"delay"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		a.writeError(w, r, err)
		return
	}
	if body.Delay == nil {
		a.writeError(w, r, argumentInvalid(`"delay" is required, as a Go duration: {"delay":"200ms"}; "0s" removes the delay`))
		return
	}
	d, err := time.ParseDuration(*body.Delay)
	if err != nil || d < 0 {
		a.writeError(w, r, argumentInvalid(fmt.Sprintf(`"delay" is %s; want a non-negative Go duration such as "200ms" or "0s"`, quote(*body.Delay))))
		return
	}
	a.s.SetDelay(d)
	a.logger().Info("test control: delay", "delay", d)
	w.WriteHeader(http.StatusNoContent)
}

func (a *restAPI) setThrottle(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		a.writeError(w, r, err)
		return
	}
	if body.Enabled == nil {
		a.writeError(w, r, argumentInvalid(`"enabled" is required: {"enabled":true} or {"enabled":false}`))
		return
	}
	a.s.SetThrottle(*body.Enabled)
	a.logger().Info("test control: throttle", "enabled", *body.Enabled)
	w.WriteHeader(http.StatusNoContent)
}
