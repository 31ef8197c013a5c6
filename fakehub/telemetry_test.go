package fakehub_test

import (
	"testing"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
)

func TestTelemetry_CapturedWithStampedProperties(t *testing.T) {
	s := fakehubtest.New(t)
	dev, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := dial(t, pahoOptions(t, s, cs))
	publish(t, c, "devices/dev1/messages/events/%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true", 1, `{"t":21}`)
	waitFor(t, "one event", func() bool { return len(s.Events(0, 0)) == 1 })
	ev := s.Events(0, 0)[0]
	if ev.DeviceID != "dev1" || string(ev.Body) != `{"t":21}` || ev.Properties["alert"] != "true" {
		t.Fatalf("event = %+v", ev)
	}
	for k, want := range map[string]string{
		"message-id":                           "m1",
		"content-type":                         "application/json",
		"content-encoding":                     "utf-8",
		"iothub-connection-device-id":          "dev1",
		"iothub-connection-auth-generation-id": dev.GenerationID,
		"iothub-connection-auth-method":        `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
		"iothub-message-source":                "Telemetry",
	} {
		if got := ev.SystemProperties[k]; got != want {
			t.Errorf("system property %s = %q, want %q", k, got, want)
		}
	}
}
