package fakehub_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// TestSecurity_SecondConnectPasswordNotLogged (finding F2): mochi logs "error processing
// packet" at WARN with the whole packet (pk); for a second CONNECT on a live connection
// that includes the CONNECT's password, a valid SAS token, printed as a byte list by a text
// handler and as base64 by a JSON handler. The edge hub drops pk (runtime/hub/logging.go);
// the fake hub hands its logger to mochi unfiltered.
func TestSecurity_SecondConnectPasswordNotLogged(t *testing.T) {
	var logs lockedBuffer
	s := fakehubtest.New(t, fakehubtest.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	keys, err := s.IdentityKeys(sas.Identity{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.Sign("localhost/devices/dev1", keys.Primary, "", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c := connectRaw(t, s, cs)
	body := append(mqttString("MQTT"), 4, 0xc0, 0, 60)
	body = append(body, mqttString("dev1")...)
	body = append(body, mqttString(iothub.FormatUsername("localhost", "dev1", "", nil))...)
	c.send(0x10, append(body, mqttString(tok)...))
	c.expectClosed()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if printed := strings.Trim(fmt.Sprint([]byte(tok)), "[]"); strings.Contains(logs.String(), printed) {
		t.Fatal("the second CONNECT's SAS token is in the logs (as a printed byte slice)")
	}
}
