package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// maxBodyShown bounds a body that is not a temperature reading.
const maxBodyShown = 100

// viaEdgeHub reports whether the edge hub sent e on its sender's behalf: IoT Hub then
// stamps the sender's authentication with issuer edgeHub.
func viaEdgeHub(e event) bool {
	var m struct {
		Issuer string `json:"issuer"`
	}
	return json.Unmarshal([]byte(e.SystemProperties["iothub-connection-auth-method"]), &m) == nil && m.Issuer == "edgeHub"
}

// formatEvent renders one message as a line:
//
//	12:00:01  demo-edge/tempSensor  via edgeHub  temperatureOutput  machine 21.84 °C, ambient 20.93 °C
func formatEvent(e event) string {
	sender := e.DeviceID
	if e.ModuleID != "" {
		sender += "/" + e.ModuleID
	}
	via := "direct"
	if viaEdgeHub(e) {
		via = "via edgeHub"
	}
	output := e.SystemProperties["$.on"]
	if output == "" {
		output = "-"
	}
	body := describeBody(e.Body)
	if e.Properties["MessageType"] == "Alert" {
		body = "ALERT " + body
	}
	return fmt.Sprintf("%s  %-22s %-11s  %-17s  %s", e.EnqueuedTime.Local().Format("15:04:05"), sender, via, output, body)
}

// describeBody shortens a tempsensor reading to its temperatures; other bodies are shown
// as text (cut at maxBodyShown) or as their size.
func describeBody(body []byte) string {
	var r struct {
		Machine *struct {
			Temperature float64 `json:"temperature"`
		} `json:"machine"`
		Ambient *struct {
			Temperature float64 `json:"temperature"`
		} `json:"ambient"`
	}
	if json.Unmarshal(body, &r) == nil && r.Machine != nil && r.Ambient != nil {
		return fmt.Sprintf("machine %.2f °C, ambient %.2f °C", r.Machine.Temperature, r.Ambient.Temperature)
	}
	if !utf8.Valid(body) {
		return fmt.Sprintf("(%d bytes)", len(body))
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > maxBodyShown {
		s = s[:maxBodyShown] + "…"
	}
	return s
}

// formatStatus renders the modules' status as the edge agent reported it:
//
//	-- module status (reported by demo-edge's edge agent): edgeAgent running, edgeHub running, filter running, tempSensor running
func formatStatus(device string, rep reportedAgent) string {
	var parts []string
	for _, group := range []map[string]reportedModule{rep.SystemModules, rep.Modules} {
		names := make([]string, 0, len(group))
		for n := range group {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			parts = append(parts, n+" "+group[n].RuntimeStatus)
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("-- module status: %v", errNoReport)
	}
	return fmt.Sprintf("-- module status (reported by %s's edge agent): %s", device, strings.Join(parts, ", "))
}
