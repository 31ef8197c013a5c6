package cli

import (
	"strings"
	"testing"
)

func TestCheckSample(t *testing.T) {
	complete := `data-dir = "./data"
mqtt-port = 8883
max-bytes = 0
count = 1
ratio = 0.5
log-events = false
period = "1m"
device = []
`
	tests := []struct {
		name    string
		sample  string
		wantErr []string // substrings of the error; none for success
	}{
		{name: "complete", sample: complete},
		{name: "same values written otherwise", sample: strings.NewReplacer(`"1m"`, `"60s"`, "0.5", "5e-1", "8883", "0x22B3").Replace(complete)},
		{name: "missing settings", sample: strings.Replace(strings.Replace(complete, "count = 1\n", "", 1), "device = []\n", "", 1),
			wantErr: []string{"setting count is missing (its default: 1)", "setting device is missing (its default: [])"}},
		{name: "wrong default", sample: strings.Replace(complete, `"./data"`, `"/var/data"`, 1),
			wantErr: []string{`line 1: data-dir = "/var/data", but the default is "./data"`}},
		{name: "wrong list default", sample: strings.Replace(complete, "device = []", `device = ["x"]`, 1),
			wantErr: []string{`device = ["x"], but the default is []`}},
		{name: "unknown key", sample: complete + "nope = 1\n", wantErr: []string{"nope: not a setting"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s settings
			err := CheckSample(testFlags(&s), testOptions(nil), writeFile(t, "sample.toml", tt.sample))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("CheckSample: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckSample passed, want an error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant one mentioning %q", err, w)
				}
			}
		})
	}
}
