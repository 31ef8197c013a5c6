package cli

import "testing"

func TestEnvName(t *testing.T) {
	tests := []struct {
		name, prefix, flag, want string
	}{
		{name: "one word", prefix: "FAKEHUB", flag: "hostname", want: "FAKEHUB_HOSTNAME"},
		{name: "dashes", prefix: "EDGEHUB", flag: "data-dir", want: "EDGEHUB_DATA_DIR"},
		{name: "many dashes", prefix: "EDGEAGENT", flag: "restart-backoff-unit", want: "EDGEAGENT_RESTART_BACKOFF_UNIT"},
		{name: "mixed case", prefix: "EDGEHUB", flag: "maxSize", want: "EDGEHUB_MAXSIZE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EnvName(tt.prefix, tt.flag); got != tt.want {
				t.Errorf("EnvName(%q, %q) = %q, want %q", tt.prefix, tt.flag, got, tt.want)
			}
		})
	}
}
