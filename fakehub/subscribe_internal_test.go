package fakehub

import (
	"slices"
	"testing"

	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestGrantFilters(t *testing.T) {
	dev := sas.Identity{DeviceID: "dev1"}
	mod := sas.Identity{DeviceID: "edge1", ModuleID: "filter"}
	const (
		c2d     = "devices/dev1/messages/devicebound/#"
		c2dAny  = "devices/+/messages/devicebound/#"
		twinRes = "$iothub/twin/res/#"
		desired = "$iothub/twin/PATCH/properties/desired/#"
		methods = "$iothub/methods/POST/#"
	)
	cases := []struct {
		name      string
		id        sas.Identity
		held, req []string
		want      []bool
	}{
		{"device dialect filters", dev, nil, []string{c2d, c2dAny, twinRes, desired, methods}, []bool{true, true, true, true, true}},
		{"module dialect filters", mod, nil,
			[]string{"devices/edge1/modules/filter/inputs/#", "devices/edge1/modules/filter/#", twinRes, desired, methods},
			[]bool{true, true, true, true, true}},
		{"another device's C2D", dev, nil, []string{"devices/dev2/messages/devicebound/#"}, []bool{false}},
		{"C2D for a module", mod, nil, []string{"devices/edge1/messages/devicebound/#", c2dAny}, []bool{false, false}},
		{"another module's inputs", mod, nil, []string{"devices/edge1/modules/other/inputs/#"}, []bool{false}},
		{"module inputs for a device", dev, nil, []string{"devices/dev1/modules/m/inputs/#"}, []bool{false}},
		{"wildcards and other topics", dev, nil, []string{"#", "devices/#", "$iothub/twin/res/+", "devices/dev1/messages/events/#", "$iothub/#"},
			[]bool{false, false, false, false, false}},
		{"sixth filter of one packet refused", dev, nil,
			[]string{c2d, c2dAny, twinRes, desired, "devices/dev1/messages/devicebound/#x", methods},
			[]bool{true, true, true, true, false, true}},
		{"held filters count towards five", dev, []string{"a", "b", "c", "d", "e"}, []string{twinRes, methods}, []bool{false, false}},
		{"resubscribing a held filter at the limit", dev, []string{c2d, c2dAny, twinRes, desired, methods}, []string{twinRes, methods}, []bool{true, true}},
		{"fifth filter granted, sixth refused", dev, []string{"a", "b", "c", "d"}, []string{twinRes, methods}, []bool{true, false}},
		{"repeat in one packet gets one answer", dev, []string{"a", "b", "c", "d"}, []string{twinRes, twinRes, methods}, []bool{true, true, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := grantFilters(tc.id, tc.held, tc.req); !slices.Equal(got, tc.want) {
				t.Fatalf("grantFilters(%v) = %v, want %v", tc.req, got, tc.want)
			}
		})
	}
}
