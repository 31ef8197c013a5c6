package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// setUpDevice runs edgectl setup in a new data directory with extra flags.
func setUpDevice(t *testing.T, extra ...string) string {
	t.Helper()
	return setUpDeviceAt(t, time.Now(), extra...)
}

// setUpDeviceAt is setUpDevice with the clock at now.
func setUpDeviceAt(t *testing.T, now time.Time, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	args := append([]string{"--data-dir", dir, "setup", "--connection-string", testCS("edge1", testKey), "--edge-hostname", "edge1.local"}, extra...)
	if code, out, errOut := cli(t, setupEnv(now), args...); code != 0 {
		t.Fatalf("setup = %d\n%s%s", code, out, errOut)
	}
	return dir
}

func TestInstallService(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "edgeagent")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		setup       []string
		want, avoid []string
	}{
		{name: "process", want: []string{"Restart=always", "KillMode=process", "WantedBy=multi-user.target", "After=network-online.target\n"},
			avoid: []string{"docker.service"}},
		{name: "docker", setup: []string{"--runtime", "docker"}, want: []string{"Restart=always", "KillMode=process", "Requires=docker.service", "After=network-online.target docker.service"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := setUpDevice(t, tt.setup...)
			code, out, errOut := cli(t, env{}, "--data-dir", dir, "install-service", "--dry-run", "--agent-binary", bin)
			if code != 0 {
				t.Fatalf("install-service --dry-run = %d\n%s", code, errOut)
			}
			want := append(tt.want, "ExecStart="+bin+" --config "+filepath.Join(dir, setupFile)+"\n")
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("unit lacks %q:\n%s", w, out)
				}
			}
			for _, a := range tt.avoid {
				if strings.Contains(out, a) {
					t.Errorf("unit has %q:\n%s", a, out)
				}
			}
			unit := filepath.Join(t.TempDir(), "systemd", "outpost-edge.service")
			code, msg, errOut := cli(t, env{}, "--data-dir", dir, "install-service", "--path", unit, "--agent-binary", bin)
			if code != 0 || !strings.Contains(msg, "systemctl daemon-reload && systemctl enable --now outpost-edge") {
				t.Fatalf("install-service = %d\n%s%s", code, msg, errOut)
			}
			b, err := os.ReadFile(unit)
			if err != nil || string(b) != out {
				t.Errorf("written unit differs from --dry-run's (%v):\n%s", err, b)
			}
			if fi, err := os.Stat(unit); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("unit mode %v (%v), want 0644", fi.Mode(), err)
			}
		})
	}
	t.Run("not set up", func(t *testing.T) {
		code, _, errOut := cli(t, env{}, "--data-dir", t.TempDir(), "install-service", "--dry-run")
		if code != exitFailed || !strings.Contains(errOut, "setup") {
			t.Errorf("install-service without setup = %d %s", code, errOut)
		}
	})
}

func TestSystemdQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/usr/bin/edgeagent", "/usr/bin/edgeagent"},
		{"/opt/my dir/edgeagent", `"/opt/my dir/edgeagent"`},
		{`/a"b`, `"/a\"b"`},
		{"/var/lib/100%", `"/var/lib/100%%"`},
		{"/x/$HOME", `"/x/$$HOME"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := systemdQuote(tc.in); got != tc.want {
				t.Errorf("systemdQuote(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}
