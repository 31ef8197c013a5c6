package hub_test

import (
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

func TestACL_Subscribe(t *testing.T) {
	e := newEnv(t)
	a := e.connect(modA)
	l := e.connect(leaf)
	tests := []struct {
		name   string
		c      *client
		filter string
		want   byte
	}{
		{"module: own inputs", a, "devices/edge1/modules/modA/inputs/#", 1},
		{"module: own inputs, C# form", a, "devices/edge1/modules/modA/#", 1},
		{"module: twin responses", a, iothub.TwinResponseFilter, 1},
		{"module: another module's inputs", a, "devices/edge1/modules/modB/inputs/#", 0x80},
		{"module: C2D", a, "devices/edge1/messages/devicebound/#", 0x80},
		{"module: wildcard everything", a, "#", 0x80},
		{"module: another device's telemetry", a, "devices/leaf1/messages/events/#", 0x80},
		{"module: $SYS", a, "$SYS/#", 0x80},
		{"device: own C2D", l, "devices/leaf1/messages/devicebound/#", 1},
		{"device: embedded C SDK C2D", l, "devices/+/messages/devicebound/#", 1},
		{"device: another device's C2D", l, "devices/leaf2/messages/devicebound/#", 0x80},
		{"device: module inputs", l, "devices/leaf1/modules/x/inputs/#", 0x80},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.subscribe(t, tt.filter); got != tt.want {
				t.Fatalf("SUBACK %#x, want %#x", got, tt.want)
			}
		})
	}
	if !a.IsConnectionOpen() || !l.IsConnectionOpen() {
		t.Fatal("a refused subscription closed the connection")
	}
	// QoS 2 is granted as QoS 1.
	tok := l.Subscribe(iothub.DesiredPatchFilter, 2, nil)
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("no SUBACK")
	}
	if got := tok.(interface{ Result() map[string]byte }).Result()[iothub.DesiredPatchFilter]; got != 1 {
		t.Fatalf("QoS 2 subscription granted %#x, want 1", got)
	}
}

func TestACL_AtMostFiveFilters(t *testing.T) {
	e := newEnv(t)
	l := e.connect(leaf)
	filters := []string{
		"devices/leaf1/messages/devicebound/#", "devices/+/messages/devicebound/#",
		iothub.TwinResponseFilter, iothub.DesiredPatchFilter, iothub.MethodRequestFilter,
	}
	for _, f := range filters {
		if got := l.subscribe(t, f); got != 1 {
			t.Fatalf("filter %q: SUBACK %#x, want 1", f, got)
		}
	}
	// Subscribing again to a held filter is fine; a sixth one is not.
	if got := l.subscribe(t, filters[0]); got != 1 {
		t.Fatalf("re-subscribing: SUBACK %#x, want 1", got)
	}
	l.Unsubscribe(filters[1]).Wait()
	if got := l.subscribe(t, filters[1]); got != 1 {
		t.Fatalf("after an unsubscribe: SUBACK %#x, want 1", got)
	}
	m := e.connect(modA)
	for _, f := range []string{iothub.InputFilter(edgeID, "modA"), "devices/edge1/modules/modA/#",
		iothub.TwinResponseFilter, iothub.DesiredPatchFilter, iothub.MethodRequestFilter} {
		m.subscribe(t, f)
	}
	// The C SDK sends its filters in one SUBSCRIBE: each gets its own SUBACK code.
	l2 := e.connect(modB)
	tok := l2.SubscribeMultiple(map[string]byte{
		iothub.InputFilter(edgeID, "modB"): 1, "devices/edge1/modules/modB/#": 1, iothub.TwinResponseFilter: 1,
		iothub.DesiredPatchFilter: 1, iothub.MethodRequestFilter: 1, "devices/edge1/modules/modA/#": 1,
	}, nil)
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("no SUBACK")
	}
	refused := 0
	for f, code := range tok.(interface{ Result() map[string]byte }).Result() {
		if code == 0x80 {
			refused++
			if f != "devices/edge1/modules/modA/#" {
				t.Errorf("filter %q refused, want only modA's", f)
			}
		}
	}
	if refused != 1 {
		t.Fatalf("%d filters refused, want 1", refused)
	}
}

func TestACL_PublishRefusalsCloseTheConnection(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		qos   byte
		stat  func(s statsView) int64
	}{
		{"another module's telemetry", "devices/edge1/modules/modB/messages/events/", 1, refusedACL},
		{"another module's telemetry at QoS 0", "devices/edge1/modules/modB/messages/events/", 0, refusedACL},
		{"the edge device's telemetry", "devices/edge1/messages/events/", 1, refusedACL},
		{"a module input topic", "devices/edge1/modules/modB/inputs/in1/a=b", 1, refusedACL},
		{"a desired patch", "$iothub/twin/PATCH/properties/desired/?$version=3", 1, refusedACL},
		{"an arbitrary topic", "sensors/temp", 1, refusedACL},
		{"a prefix of its own topic", "devices/edge1/modules/modA/messages/eventsX", 1, refusedACL},
		{"malformed bag", "devices/edge1/modules/modA/messages/events/=x", 1, refusedMalformed},
		{"QoS 2", "devices/edge1/modules/modA/messages/events/", 2, refusedQoS2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withRoutes(map[string]string{"all": "FROM /messages/* INTO $upstream"}))
			a := e.connect(modA)
			tok := a.Publish(tt.topic, tt.qos, false, "x")
			a.waitLost(t)
			if tt.qos > 0 && tok.WaitTimeout(50*time.Millisecond) && tok.Error() == nil {
				t.Fatal("refused publish was acknowledged")
			}
			if got := tt.stat(e.hub.Stats()); got != 1 {
				t.Fatalf("refusal counter = %d, want 1 (%+v)", got, e.hub.Stats())
			}
			if e.hub.Stats().Stored != 0 {
				t.Fatal("a refused publish was stored")
			}
			// The hub keeps serving.
			e.connect(modA).send(t, "", nil, "after")
		})
	}
}

type statsView = hub.Stats

func refusedACL(s statsView) int64       { return s.RefusedACL }
func refusedMalformed(s statsView) int64 { return s.RefusedMalformed }
func refusedQoS2(s statsView) int64      { return s.RefusedQoS2 }
