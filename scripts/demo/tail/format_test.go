package main

import (
	"strings"
	"testing"
	"time"
)

const (
	viaEdgeHubAuth = `{"scope":"module","type":"sas","issuer":"edgeHub","acceptingIpFilterRule":null}`
	directAuth     = `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`
	reading        = `{"machine":{"temperature":22.614,"pressure":1.2},"ambient":{"temperature":20.987,"humidity":25},"timeCreated":"2026-01-02T03:04:05Z"}`
)

func TestFormatEvent(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
	tests := []struct {
		name string
		e    event
		want string
	}{
		{"reading through the edge hub", event{DeviceID: "edge", ModuleID: "tempSensor", Body: []byte(reading), EnqueuedTime: at,
			SystemProperties: map[string]string{"iothub-connection-auth-method": viaEdgeHubAuth, "$.on": "temperatureOutput"}},
			"03:04:05  edge/tempSensor        via edgeHub  temperatureOutput  machine 22.61 °C, ambient 20.99 °C"},
		{"alert", event{DeviceID: "edge", ModuleID: "filter", Body: []byte(reading), EnqueuedTime: at,
			Properties:       map[string]string{"MessageType": "Alert"},
			SystemProperties: map[string]string{"iothub-connection-auth-method": viaEdgeHubAuth, "$.on": "alertOutput"}},
			"03:04:05  edge/filter            via edgeHub  alertOutput        ALERT machine 22.61 °C, ambient 20.99 °C"},
		{"device sending directly", event{DeviceID: "dev", Body: []byte("hello\n  world"), EnqueuedTime: at,
			SystemProperties: map[string]string{"iothub-connection-auth-method": directAuth}},
			"03:04:05  dev                    direct       -                  hello world"},
		{"binary body", event{DeviceID: "dev", Body: []byte{0xff, 0xfe}, EnqueuedTime: at},
			"03:04:05  dev                    direct       -                  (2 bytes)"},
		{"long body", event{DeviceID: "dev", Body: []byte(strings.Repeat("x", 150)), EnqueuedTime: at},
			"03:04:05  dev                    direct       -                  " + strings.Repeat("x", maxBodyShown) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatEvent(tt.e); got != tt.want {
				t.Fatalf("formatEvent\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestWatcherCount(t *testing.T) {
	w := &watcher{device: "edge"}
	sys := func(auth, output string) map[string]string {
		return map[string]string{"iothub-connection-auth-method": auth, "$.on": output}
	}
	for _, e := range []event{
		{DeviceID: "edge", ModuleID: "tempSensor", SystemProperties: sys(viaEdgeHubAuth, "temperatureOutput")},
		{DeviceID: "edge", ModuleID: "tempSensor", SystemProperties: sys(directAuth, "temperatureOutput")}, // not through the edge hub
		{DeviceID: "other", ModuleID: "tempSensor", SystemProperties: sys(viaEdgeHubAuth, "temperatureOutput")},
		{DeviceID: "edge", ModuleID: "filter", SystemProperties: sys(viaEdgeHubAuth, "alertOutput")},
		{DeviceID: "edge", ModuleID: "filter", SystemProperties: sys(viaEdgeHubAuth, "otherOutput")},
	} {
		w.count(e)
	}
	if w.readings != 1 || w.alerts != 1 {
		t.Fatalf("counted %d reading(s) and %d alert(s), want 1 and 1", w.readings, w.alerts)
	}
}

func TestFormatStatus(t *testing.T) {
	rep := reportedAgent{
		SystemModules: map[string]reportedModule{"edgeHub": {RuntimeStatus: "running"}, "edgeAgent": {RuntimeStatus: "running"}},
		Modules:       map[string]reportedModule{"tempSensor": {RuntimeStatus: "backoff"}, "filter": {RuntimeStatus: "running"}},
	}
	want := "-- module status (reported by edge's edge agent): edgeAgent running, edgeHub running, filter running, tempSensor backoff"
	if got := formatStatus("edge", rep); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if got := formatStatus("edge", reportedAgent{}); !strings.Contains(got, errNoReport.Error()) {
		t.Fatalf("without a report: %q", got)
	}
}
