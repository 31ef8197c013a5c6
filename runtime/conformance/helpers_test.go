package conformance

import (
	"slices"
	"testing"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestContains(t *testing.T) {
	got := normalize(map[string]any{"TemperatureThreshold": 30.0, "Mode": map[string]any{"units": "celsius", "x": 1}, "extra": true})
	tests := []struct {
		name string
		want map[string]any
		ok   bool
	}{
		{name: "int equals float", want: map[string]any{"TemperatureThreshold": 30}, ok: true},
		{name: "nested subset", want: map[string]any{"Mode": map[string]any{"units": "celsius"}}, ok: true},
		{name: "wrong value", want: map[string]any{"TemperatureThreshold": 31}, ok: false},
		{name: "missing property", want: map[string]any{"Other": 1}, ok: false},
		{name: "object expected", want: map[string]any{"extra": map[string]any{"a": 1}}, ok: false},
		{name: "nothing expected", want: map[string]any{}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok := contains(got, normalize(tt.want)); ok != tt.ok {
				t.Errorf("contains = %v, want %v", ok, tt.ok)
			}
		})
	}
}

func TestMissingSeqs(t *testing.T) {
	msg := func(seq string) received {
		m := iothub.Message{Properties: map[string]string{}}
		if seq != "" {
			m.Properties[SeqProperty] = seq
		}
		return received{Msg: m}
	}
	sent := []string{"1", "2", "3"}
	tests := []struct {
		name string
		got  []received
		want []string
	}{
		{name: "all back, with a duplicate", got: []received{msg("2"), msg("1"), msg("2"), msg("3")}, want: nil},
		{name: "one lost", got: []received{msg("1"), msg("3")}, want: []string{"2"}},
		{name: "no sequence numbers: counted", got: []received{msg(""), msg(""), msg("")}, want: nil},
		{name: "no sequence numbers, too few", got: []received{msg("")}, want: []string{"2", "3"}},
		{name: "nothing", got: nil, want: sent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := missingSeqs(sent, tt.got); !slices.Equal(got, tt.want) {
				t.Errorf("missing %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReportOrder(t *testing.T) {
	var rs []Result
	for _, n := range []string{"cpu", "identity", "method/b", "connect", "input/x", "method/a", "inputs", "sigterm"} {
		rs = append(rs, Result{Name: n})
	}
	got := reportOrder(rs)
	want := []string{"connect", "identity", "input/x", "method/b", "method/a", "sigterm", "cpu"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v (an unknown name is left out)", got, want)
	}
}

func TestModuleEnv_InjectedVariablesWin(t *testing.T) {
	cs := sas.ConnectionString{HostName: "localhost", DeviceID: "edge", ModuleID: "m", SharedAccessKey: "a2V5", GatewayHostName: "localhost"}
	env := moduleEnv(cs, "gen-1", "/ca.pem", 40000, map[string]string{"RuntimeLogLevel": "debug", "A": "1", EnvPort: "1"})
	want := map[string]string{
		"EdgeHubConnectionString": cs.String(), "EdgeModuleCACertificateFile": "/ca.pem", "IOTEDGE_MODULEID": "m",
		"IOTEDGE_DEVICEID": "edge", "IOTEDGE_IOTHUBHOSTNAME": "localhost", "IOTEDGE_GATEWAYHOSTNAME": "localhost",
		"IOTEDGE_AUTHSCHEME": "sasToken", "IOTEDGE_MODULEGENERATIONID": "gen-1", EnvPort: "40000",
		"RuntimeLogLevel": "debug", "A": "1",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if len(env) != len(want) {
		t.Errorf("env has %d variables, want %d: %v", len(env), len(want), env)
	}
	for k := range injected {
		if _, ok := env[k]; !ok {
			t.Errorf("injected variable %s missing", k)
		}
	}
}

func TestCheckEndpointName(t *testing.T) {
	for _, ok := range []string{"input1", "a.b-c_D", "x"} {
		if err := checkEndpointName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "a#", "a+", "a b", "é", string(make([]byte, 65))} {
		if err := checkEndpointName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
