package hub

import (
	"math/rand/v2"
	"regexp"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/route"
	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestMayPublish(t *testing.T) {
	mod := sas.Identity{DeviceID: "edge1", ModuleID: "m"}
	dev := sas.Identity{DeviceID: "leaf"}
	tests := []struct {
		name  string
		id    sas.Identity
		topic string
		ok    bool
	}{
		{"module telemetry", mod, "devices/edge1/modules/m/messages/events/", true},
		{"module telemetry, no slash", mod, "devices/edge1/modules/m/messages/events", true},
		{"module output with raw slash in bag", mod, "devices/edge1/modules/m/messages/events/%24.on=o&%24.ct=application/json", true},
		{"device telemetry", dev, "devices/leaf/messages/events/a=b", true},
		{"twin GET", mod, "$iothub/twin/GET/?$rid=1", true},
		{"twin reported patch", dev, "$iothub/twin/PATCH/properties/reported/?$rid=2", true},
		{"method response", mod, "$iothub/methods/res/200/?$rid=3", true},

		{"module as its device", mod, "devices/edge1/messages/events/", false},
		{"device as a module of itself", dev, "devices/leaf/modules/m/messages/events/", false},
		{"other module", mod, "devices/edge1/modules/m2/messages/events/", false},
		{"module id prefix", mod, "devices/edge1/modules/m2/messages/events/", false},
		{"events prefix", mod, "devices/edge1/modules/m/messages/eventsX", false},
		{"case differs", dev, "devices/LEAF/messages/events/", false},
		{"C2D topic", dev, "devices/leaf/messages/devicebound/x", false},
		{"input topic", mod, "devices/edge1/modules/m/inputs/i/a=b", false},
		{"twin response", mod, "$iothub/twin/res/200/?$rid=1", false},
		{"desired patch", mod, "$iothub/twin/PATCH/properties/desired/?$version=1", false},
		{"method request", mod, "$iothub/methods/POST/x/?$rid=1", false},
		{"twin GET without rid", mod, "$iothub/twin/GET/", false},
		{"other topic", mod, "foo", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := mayPublish(tt.id, tt.topic); (err == nil) != tt.ok {
				t.Fatalf("mayPublish(%v, %q) = %v, want ok=%v", tt.id, tt.topic, err, tt.ok)
			}
		})
	}
}

func TestMaySubscribe(t *testing.T) {
	mod := sas.Identity{DeviceID: "edge1", ModuleID: "m"}
	dev := sas.Identity{DeviceID: "leaf"}
	tests := []struct {
		name    string
		id      sas.Identity
		filter  string
		held    int
		already bool
		ok      bool
	}{
		{"own inputs", mod, "devices/edge1/modules/m/inputs/#", 0, false, true},
		{"own inputs, C form", mod, "devices/edge1/modules/m/#", 0, false, true},
		{"twin responses", mod, iothub.TwinResponseFilter, 0, false, true},
		{"desired", dev, iothub.DesiredPatchFilter, 0, false, true},
		{"methods", dev, iothub.MethodRequestFilter, 0, false, true},
		{"own C2D", dev, "devices/leaf/messages/devicebound/#", 0, false, true},
		{"any-device C2D", dev, "devices/+/messages/devicebound/#", 0, false, true},
		{"fifth filter", dev, iothub.TwinResponseFilter, 4, false, true},
		{"sixth filter", dev, iothub.TwinResponseFilter, 5, false, false},
		{"held filter again at the limit", dev, iothub.TwinResponseFilter, 5, true, true},

		{"other module's inputs", mod, "devices/edge1/modules/m2/inputs/#", 0, false, false},
		{"other device's module inputs", mod, "devices/edge2/modules/m/inputs/#", 0, false, false},
		{"module C2D", mod, "devices/edge1/messages/devicebound/#", 0, false, false},
		{"device inputs", dev, "devices/leaf/modules/m/inputs/#", 0, false, false},
		{"other device's C2D", dev, "devices/leaf2/messages/devicebound/#", 0, false, false},
		{"wildcard", dev, "#", 0, false, false},
		{"wildcard device", mod, "devices/+/modules/m/inputs/#", 0, false, false},
		{"telemetry", dev, "devices/leaf/messages/events/#", 0, false, false},
		{"a topic name", mod, "devices/edge1/modules/m/inputs/i/a=b", 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := maySubscribe(tt.id, tt.filter, tt.held, tt.already); (err == nil) != tt.ok {
				t.Fatalf("maySubscribe(%v, %q, %d, %v) = %v, want ok=%v", tt.id, tt.filter, tt.held, tt.already, err, tt.ok)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := time.Second, time.Minute
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{0, 800 * time.Millisecond, 1200 * time.Millisecond},
		{1, 1600 * time.Millisecond, 2400 * time.Millisecond},
		{5, 25600 * time.Millisecond, 38400 * time.Millisecond},
		{6, 48 * time.Second, time.Minute}, // 64 s is over the cap: 60 s ± 20 %, capped at 60 s
		{100, 48 * time.Second, time.Minute},
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, tt := range tests {
		for range 50 {
			if d := backoff(tt.n, lo, hi, rnd); d < tt.min || d > tt.max {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", tt.n, d, tt.min, tt.max)
			}
		}
	}
}

func TestEndpointOf(t *testing.T) {
	tests := []struct {
		queue string
		want  route.Endpoint
		ok    bool
	}{
		{"$upstream", route.Endpoint{Kind: route.Upstream}, true},
		{"/modules/m/inputs/i", route.Endpoint{Kind: route.ModuleInput, Module: "m", Input: "i"}, true},
		{"/modules//inputs/i", route.Endpoint{}, false},
		{"/modules/m/inputs/", route.Endpoint{}, false},
		{"/modules/m/x/inputs/i", route.Endpoint{}, false},
		{"other", route.Endpoint{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.queue, func(t *testing.T) {
			got, ok := endpointOf(tt.queue)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("endpointOf(%q) = %v, %v; want %v, %v", tt.queue, got, ok, tt.want, tt.ok)
			}
			if ok && got.ID() != tt.queue {
				t.Fatalf("endpoint %v has ID %q, not the queue name", got, got.ID())
			}
		})
	}
}

func TestInputTopic_BagCarriesSenderNotOutput(t *testing.T) {
	m := iothub.Message{
		Properties: map[string]string{"a b": "c/d"},
		System: map[string]string{
			iothub.SysOutputName: "o", iothub.SysConnDeviceID: "edge1", iothub.SysConnModuleID: "src",
			iothub.SysMessageID: "mid", iothub.SysDiagID: "trace", "custom": "x",
		},
	}
	top := inputTopic("edge1", route.Endpoint{Kind: route.ModuleInput, Module: "dst", Input: "in"}, m)
	s := top.String()
	want := "devices/edge1/modules/dst/inputs/in/%24.mid=mid&%24.cdid=edge1&%24.cmid=src&a%20b=c%2Fd"
	if s != want {
		t.Fatalf("topic\n got %q\nwant %q", s, want)
	}
	back, err := iothub.ParseTopic(s)
	if err != nil || back.Input != "in" {
		t.Fatalf("topic does not parse back: %v", err)
	}
}

func TestStamp(t *testing.T) {
	tests := []struct {
		name   string
		sender sas.Identity
		sys    map[string]string
		retain bool
		want   map[string]string // "" value: must be absent; "*": any non-empty
	}{
		{"module, forged ids", sas.Identity{DeviceID: "e", ModuleID: "m"},
			map[string]string{"cdid": "x", "cmid": "y", "mid": "keep"}, false,
			map[string]string{"cdid": "e", "cmid": "m", "mid": "keep"}},
		{"device, forged module", sas.Identity{DeviceID: "d"},
			map[string]string{"cmid": "y"}, false,
			map[string]string{"cdid": "d", "cmid": "", "mid": "*"}},
		{"empty mid replaced", sas.Identity{DeviceID: "d"},
			map[string]string{"mid": ""}, true,
			map[string]string{"cdid": "d", "mid": "*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := envelope{Sender: tt.sender, Message: iothub.Message{System: tt.sys, Properties: map[string]string{}}}
			stamp(&e, tt.retain)
			for k, v := range tt.want {
				got, ok := e.Message.System[k]
				switch {
				case v == "" && ok:
					t.Errorf("%s = %q, want absent", k, got)
				case v == "*" && got == "":
					t.Errorf("%s empty, want a value", k)
				case v != "" && v != "*" && got != v:
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if got := e.Message.Properties["mqtt-retain"]; (got == "true") != tt.retain {
				t.Errorf("mqtt-retain = %q with retain %v", got, tt.retain)
			}
		})
	}
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if a, b := newMessageID(), newMessageID(); a == b || !uuid4.MatchString(a) || !uuid4.MatchString(b) {
		t.Fatalf("message ids %q, %q: want distinct version 4 UUIDs", a, b)
	}
}
