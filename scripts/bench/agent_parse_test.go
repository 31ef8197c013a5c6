package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		line string
		want logLine
	}{
		{
			name: "module started (process runtime)",
			line: `{"time":"t","level":"INFO","msg":"module started","component":"process","module":"sensor1","pid":42,"run":1}`,
			want: logLine{Msg: "module started", Module: "sensor1"},
		},
		{
			name: "command done (the command's group)",
			line: `{"time":"t","level":"INFO","msg":"module command done","component":"agent","command":{"kind":"create","module":"edgeHub","cause":"added","image":"x"}}`,
			want: logLine{Msg: "module command done", Module: "edgeHub", Kind: "create"},
		},
		{
			name: "new deployment: modules is a count, not a name",
			line: `{"time":"t","level":"INFO","msg":"new deployment","component":"agent","version":2,"modules":3}`,
			want: logLine{Msg: "new deployment"},
		},
		{
			name: "a module attribute that is not a string is ignored",
			line: `{"msg":"odd","module":{"name":"x"},"command":"start"}`,
			want: logLine{Msg: "odd"},
		},
		{name: "not JSON", line: `panic: runtime error`, want: logLine{}},
		{name: "empty", line: ``, want: logLine{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseLogLine(tt.line, at)
			tt.want.At, tt.want.Text = at, tt.line
			if got != tt.want {
				t.Fatalf("parseLogLine\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseAgentTwin(t *testing.T) {
	twin := `{"deviceId":"benchedge","moduleId":"$edgeAgent","properties":{
		"desired":{"schemaVersion":"1.1","$version":7,"modules":{"sensor3":{"version":"1.0"}}},
		"reported":{"lastDesiredVersion":6,"lastDesiredStatus":{"code":200},
			"systemModules":{"edgeAgent":{"runtimeStatus":"running"},"edgeHub":{"runtimeStatus":"running","restartCount":0}},
			"modules":{"sensor2":{"runtimeStatus":"backoff","restartCount":3,"exitCode":137}},
			"$version":12}}}`
	got, err := parseAgentTwin([]byte(twin))
	if err != nil {
		t.Fatal(err)
	}
	want := agentReported{DesiredVersion: 7, LastDesiredVersion: 6, LastDesiredCode: 200, Modules: map[string]moduleReported{
		"edgeAgent": {RuntimeStatus: "running"},
		"edgeHub":   {RuntimeStatus: "running"},
		"sensor2":   {RuntimeStatus: "backoff", RestartCount: 3},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseAgentTwin\n got %+v\nwant %+v", got, want)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"version 6 applied", got.applied(6)},
		{"version 7 not yet applied", !got.applied(7)},
		{"an absent module has no status", got.status("sensor3") == ""},
		{"a module's status", got.status("sensor2") == "backoff"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Fatalf("%s: false of %+v", c.name, got)
			}
		})
	}

	t.Run("a twin the agent never reported on", func(t *testing.T) {
		r, err := parseAgentTwin([]byte(`{"properties":{"desired":{"$version":1},"reported":{"$version":1}}}`))
		if err != nil || r.LastDesiredVersion != 0 || len(r.Modules) != 0 || r.applied(1) {
			t.Fatalf("got %+v, %v", r, err)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		if _, err := parseAgentTwin([]byte(`<html>`)); err == nil || !strings.Contains(err.Error(), "$edgeAgent twin") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestParseEvents(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	body := `[{"seq":7,"deviceId":"benchedge","moduleId":"sensor1","body":"e30=","properties":{"sequenceNumber":"1","batchId":"b"},
		"systemProperties":{"$.on":"temperatureOutput"}},
		{"seq":8,"deviceId":"benchedge","moduleId":"sensor1","properties":{"sequenceNumber":"2"}},
		{"seq":9,"deviceId":"dev1"}]`
	got, err := parseEvents([]byte(body), at)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d events, want 3", len(got))
	}
	tests := []struct {
		name  string
		e     hubEvent
		seq   int64
		first bool
	}{
		{name: "first reading of a run", e: got[0], seq: 7, first: true},
		{name: "a later reading", e: got[1], seq: 8, first: false},
		{name: "no properties", e: got[2], seq: 9, first: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.e.Seq != tt.seq || !tt.e.At.Equal(at) || tt.e.firstOfRun() != tt.first {
				t.Fatalf("got %+v (first %v), want seq %d first %v at %v", tt.e, tt.e.firstOfRun(), tt.seq, tt.first, at)
			}
		})
	}
	if _, err := parseEvents([]byte(`{"seq":1}`), at); err == nil {
		t.Fatal("an object instead of an array was accepted")
	}
}

func TestParseFakehubReady(t *testing.T) {
	tests := []struct {
		name string
		line string
		want fakehubReady
		ok   bool
	}{
		{
			name: "ready",
			line: `{"time":"t","level":"INFO","msg":"fakehub ready","hostname":"localhost","mqtt_address":"127.0.0.1:40001","plain_mqtt_address":"","http_address":"127.0.0.1:40002","plain_http_address":"127.0.0.1:40003"}`,
			want: fakehubReady{MQTT: "127.0.0.1:40001", HTTP: "127.0.0.1:40002", PlainHTTP: "127.0.0.1:40003"},
			ok:   true,
		},
		{name: "no plain HTTP listener", line: `{"msg":"fakehub ready","mqtt_address":"127.0.0.1:1","http_address":"127.0.0.1:2","plain_http_address":""}`},
		{name: "another line", line: `{"msg":"device ready","mqtt_address":"127.0.0.1:1","http_address":"127.0.0.1:2","plain_http_address":"127.0.0.1:3"}`},
		{name: "text log", line: `time=t level=INFO msg="fakehub ready" mqtt_address=127.0.0.1:1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseFakehubReady(tt.line)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestPortOf(t *testing.T) {
	tests := []struct {
		addr    string
		want    int
		wantErr bool
	}{
		{addr: "127.0.0.1:8883", want: 8883},
		{addr: "[::1]:443", want: 443},
		{addr: "127.0.0.1", wantErr: true},
		{addr: "127.0.0.1:0", wantErr: true},
		{addr: "127.0.0.1:70000", wantErr: true},
		{addr: "127.0.0.1:http", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			got, err := portOf(tt.addr)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("portOf(%q) = %d, %v; want %d, error %v", tt.addr, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseStatStart(t *testing.T) {
	// Fields 3 to 22 after the command name; 22 is starttime.
	rest := " S 1 100 100 0 -1 4194560 500 0 0 0 12 34 0 0 20 0 8 0 987654 123456 789 18446744073709551615"
	tests := []struct {
		name, stat string
		want       uint64
		wantErr    string
	}{
		{name: "plain name", stat: "4242 (edgeagent)" + rest, want: 987654},
		{name: "name with spaces and parentheses", stat: "4242 (a (b) c)" + rest, want: 987654},
		{name: "truncated", stat: "4242 (x) S 1 100", wantErr: "fields after the command name"},
		{name: "no name", stat: "4242 x S", wantErr: "no command name"},
		{name: "bad number", stat: "4242 (x)" + strings.Replace(rest, " 987654", " soon", 1), wantErr: "starttime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatStart(tt.stat)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestParseModuleRecord(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    moduleRecord
		wantErr string
	}{
		{
			name: "running",
			file: `{"version":1,"name":"sensor1","image":"outpost/tempsensor:dev","env":["A=1"],"exec":{"path":"/bin/tempsensor","args":["-x"],"env":["A=1","PATH=/bin"]},
				"state":"running","run":2,"pid":300,"pidStart":11,"supervisor":299,"supervisorStart":10,"startedAt":"2026-01-02T03:04:05.5Z","exitCode":0}`,
			want: moduleRecord{State: "running", Pid: 300, PidStart: 11, Supervisor: 299, SupervisorStart: 10,
				StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC)},
		},
		{name: "exited", file: `{"version":1,"state":"exited","exitCode":137}`, want: moduleRecord{State: "exited"}},
		{name: "running without a pid", file: `{"state":"running","supervisor":3}`, wantErr: "without a pid"},
		{name: "not JSON", file: `{`, wantErr: "module state file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseModuleRecord([]byte(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "running" {
				tt.want.Exec.Path, tt.want.Exec.Args, tt.want.Exec.Env = "/bin/tempsensor", []string{"-x"}, []string{"A=1", "PATH=/bin"}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestManifestContent(t *testing.T) {
	m := benchManifest{
		EdgeHub: benchModule{Name: "edgeHub", Image: "outpost/edgehub:dev", Env: map[string]any{"EDGEHUB_TLS_ADDR": "127.0.0.1:1"}},
		Modules: []benchModule{{Name: "sensor1", Image: "r/tempsensor:dev", Env: map[string]any{"MessageCount": -1},
			CreateOptions: map[string]any{"HostConfig": map[string]any{"NetworkMode": "host"}}, RestartPolicy: "on-failure"}},
		Routes: map[string]string{"up": "FROM /messages/* INTO $upstream"},
	}
	content, err := m.content()
	if err != nil {
		t.Fatal(err)
	}
	// Through JSON, as the fake hub receives it.
	b, err := json.Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		ModulesContent struct {
			Agent struct {
				Desired struct {
					SchemaVersion string `json:"schemaVersion"`
					SystemModules map[string]struct {
						Status        string `json:"status"`
						RestartPolicy string `json:"restartPolicy"`
						Settings      map[string]string
						Env           map[string]struct{ Value any }
					} `json:"systemModules"`
					Modules map[string]struct {
						Version       string `json:"version"`
						RestartPolicy string `json:"restartPolicy"`
						Settings      map[string]string
						Env           map[string]struct{ Value any }
					} `json:"modules"`
				} `json:"properties.desired"`
			} `json:"$edgeAgent"`
			Hub struct {
				Desired struct {
					Routes map[string]string `json:"routes"`
				} `json:"properties.desired"`
			} `json:"$edgeHub"`
		} `json:"modulesContent"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	agent := doc.ModulesContent.Agent.Desired
	hub, sensor := agent.SystemModules["edgeHub"], agent.Modules["sensor1"]
	checks := []struct {
		name      string
		got, want any
	}{
		{"schema version", agent.SchemaVersion, "1.1"},
		{"edge hub image", hub.Settings["image"], "outpost/edgehub:dev"},
		{"edge hub restart policy defaults to always", hub.RestartPolicy, "always"},
		{"edge hub desired status", hub.Status, "running"},
		{"edge hub has no createOptions", hub.Settings["createOptions"], ""},
		{"edge hub env wrapped in value", hub.Env["EDGEHUB_TLS_ADDR"].Value, "127.0.0.1:1"},
		{"module version", sensor.Version, "1.0"},
		{"module restart policy", sensor.RestartPolicy, "on-failure"},
		{"createOptions is a JSON string", sensor.Settings["createOptions"], `{"HostConfig":{"NetworkMode":"host"}}`},
		{"number env stays a number", sensor.Env["MessageCount"].Value, float64(-1)},
		{"edge agent is a system module", len(agent.SystemModules), 2},
		{"routes", doc.ModulesContent.Hub.Desired.Routes["up"], "FROM /messages/* INTO $upstream"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Fatalf("got %#v, want %#v", c.got, c.want)
			}
		})
	}

	bad := []struct {
		name    string
		m       benchManifest
		wantErr string
	}{
		{name: "module twice", m: benchManifest{EdgeHub: m.EdgeHub, Modules: []benchModule{m.Modules[0], m.Modules[0]}}, wantErr: "twice"},
		{name: "no image", m: benchManifest{EdgeHub: benchModule{Name: "edgeHub"}}, wantErr: "name and image"},
		{name: "createOptions that cannot be JSON", m: benchManifest{EdgeHub: m.EdgeHub, Modules: []benchModule{{Name: "x", Image: "i",
			CreateOptions: map[string]any{"f": func() {}}}}}, wantErr: "createOptions"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.m.content(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestRSSPeaks(t *testing.T) {
	var p rssPeaks
	for _, s := range []rssSample{
		{Agent: 10, Hub: 20, Supervisors: 5},
		{Agent: 14, Hub: 15, Supervisors: 7},
		{Agent: 12, Hub: 19, Supervisors: 6},
	} {
		p.add(s)
	}
	// The highest sum of one reading (31, the last) is not the sum of the peaks (34).
	want := rssPeaks{Agent: 14, Hub: 20, AgentHub: 31, Supervisors: 7, Samples: 3}
	if p != want {
		t.Fatalf("got %+v, want %+v", p, want)
	}
}

func TestParsePss(t *testing.T) {
	tests := []struct {
		name, rollup string
		want         int64
		wantErr      string
	}{
		{name: "rollup", rollup: "5605f72b4000-7fffa4a9d000 ---p 00000000 00:00 0 [rollup]\nRss:  1744 kB\nPss:   223 kB\nPss_Dirty:  112 kB\n", want: 223 << 10},
		{name: "Pss_Anon is not Pss", rollup: "Rss: 1 kB\nPss_Anon: 5 kB\n", wantErr: "no Pss line"},
		{name: "unit", rollup: "Pss: 223 MB\n", wantErr: "unexpected"},
		{name: "number", rollup: "Pss: many kB\n", wantErr: "Pss"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePss(tt.rollup)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestHuman(t *testing.T) {
	tests := map[time.Duration]string{
		25 * time.Millisecond:   "25 ms",
		100 * time.Millisecond:  "100 ms",
		time.Second:             "1 s",
		2500 * time.Millisecond: "2.5 s",
		10 * time.Second:        "10 s",
	}
	for d, want := range tests {
		t.Run(want, func(t *testing.T) {
			if got := human(d); got != want {
				t.Fatalf("human(%v) = %q, want %q", d, got, want)
			}
		})
	}
}

func TestIsFlockOf(t *testing.T) {
	const lock = "/tmp/outpost-docker.lock"
	tests := []struct {
		name string
		argv []string
		want bool
	}{
		{name: "plain", argv: []string{"flock", lock, "go", "run", "./scripts/bench"}, want: true},
		{name: "path to flock", argv: []string{"/usr/bin/flock", lock, "cmd"}, want: true},
		{name: "options first", argv: []string{"flock", "-o", "-n", lock, "cmd"}, want: true},
		{name: "options with values", argv: []string{"flock", "-w", "120", "-E", "75", lock, "cmd"}, want: true},
		{name: "another lock", argv: []string{"flock", "/tmp/outpost-bench.lock", "flock", lock, "cmd"}, want: false},
		{name: "the lock as the command's argument", argv: []string{"flock", "/tmp/x.lock", "cat", lock}, want: false},
		{name: "not flock", argv: []string{"bash", lock}, want: false},
		{name: "flock alone", argv: []string{"flock"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isFlockOf(tt.argv, lock); got != tt.want {
				t.Fatalf("isFlockOf(%q) = %v, want %v", tt.argv, got, tt.want)
			}
		})
	}
}

func TestExitReported(t *testing.T) {
	running := moduleReported{RuntimeStatus: "running", RestartCount: 1, LastStart: "2026-01-02T03:04:05Z", LastExit: "2026-01-02T03:04:00Z"}
	tests := []struct {
		name string
		now  moduleReported
		want bool
	}{
		{name: "nothing yet", now: running, want: false},
		{name: "in back-off", now: moduleReported{RuntimeStatus: "backoff", RestartCount: 1, LastStart: running.LastStart, LastExit: "2026-01-02T03:04:09Z"}, want: true},
		{name: "restarted in the same reconcile, count reset", now: moduleReported{RuntimeStatus: "running", RestartCount: 1,
			LastStart: "2026-01-02T03:04:12Z", LastExit: "2026-01-02T03:04:09Z"}, want: true},
		{name: "only the restart count changed", now: moduleReported{RuntimeStatus: "running", RestartCount: 0, LastStart: running.LastStart, LastExit: running.LastExit}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitReported(running, tt.now); got != tt.want {
				t.Fatalf("exitReported = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRSSSplit(t *testing.T) {
	tests := []struct {
		name, status string
		want         rssSplit
		wantErr      string
	}{
		{name: "status", status: "Name:\tedgeagent\nVmHWM:\t  17000 kB\nVmRSS:\t  16000 kB\nRssAnon:\t    7000 kB\nRssFile:\t    9000 kB\nRssShmem:\t 0 kB\n",
			want: rssSplit{Anon: 7000 << 10, File: 9000 << 10}},
		{name: "kernel without the split", status: "VmRSS:\t 16000 kB\n", wantErr: "no RssAnon"},
		{name: "unit", status: "RssAnon:\t 7 MB\nRssFile:\t 9 kB\n", wantErr: "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRSSSplit(tt.status)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
