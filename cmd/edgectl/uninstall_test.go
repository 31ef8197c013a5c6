package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRemovableDataDir(t *testing.T) {
	home, _ := os.UserHomeDir()
	withSetup := setUpDevice(t)
	withAgentDB := t.TempDir()
	os.WriteFile(filepath.Join(withAgentDB, "agent.db"), nil, 0o600)
	tests := []struct {
		name, dir, wantErr string
	}{
		{name: "set up", dir: withSetup},
		{name: "agent state", dir: withAgentDB},
		{name: "missing", dir: filepath.Join(t.TempDir(), "gone")},
		{name: "unrelated", dir: t.TempDir(), wantErr: "holds no Outpost setup"},
		{name: "root", dir: "/", wantErr: "refusing"},
		{name: "home", dir: home, wantErr: "refusing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := removableDataDir(tt.dir)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("removableDataDir(%s) = %v, want %q", tt.dir, err, tt.wantErr)
			}
		})
	}
}

func TestUninstall_AsksFirst(t *testing.T) {
	dir := setUpDevice(t)
	for _, answer := range []string{"", "n\n", "maybe\n"} {
		code, out, errOut := cli(t, env{Stdin: strings.NewReader(answer)}, "--data-dir", dir, "uninstall")
		if code != exitFailed || !strings.Contains(out, "Continue? [y/N]") || !strings.Contains(errOut, "cancelled") {
			t.Errorf("answer %q: uninstall = %d\n%s%s", answer, code, out, errOut)
		}
		if _, err := os.Stat(filepath.Join(dir, setupFile)); err != nil {
			t.Fatalf("answer %q removed the setup: %v", answer, err)
		}
	}
	code, out, errOut := cli(t, env{Stdin: strings.NewReader("y\n")}, "--data-dir", dir, "uninstall")
	if code != 0 || !strings.Contains(out, "Runtime uninstalled successfully.") {
		t.Fatalf("uninstall answered y = %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data directory left: %v", err)
	}
}

func TestUninstall_RefusesAForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "precious.txt")
	os.WriteFile(keep, []byte("x"), 0o600)
	code, _, errOut := cli(t, env{}, "--data-dir", dir, "uninstall", "--yes")
	if code != exitFailed || !strings.Contains(errOut, "holds no Outpost setup") {
		t.Errorf("uninstall = %d %s", code, errOut)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a foreign file was removed: %v", err)
	}
}

func TestUninstall_WithoutSetup(t *testing.T) {
	t.Run("agent state only", func(t *testing.T) {
		dir := t.TempDir()
		writeConfig(t, testConfig(dir))
		code, out, errOut := cli(t, env{}, "--data-dir", dir, "uninstall", "--yes")
		if code != 0 || !strings.Contains(out, "Runtime uninstalled successfully.") {
			t.Fatalf("uninstall = %d\n%s%s", code, out, errOut)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("data directory left: %v", err)
		}
	})
	t.Run("an agent not started by edgectl runs", func(t *testing.T) {
		dir, _ := device(t) // config.json and a management API that answers
		code, _, errOut := cli(t, env{}, "--data-dir", dir, "uninstall", "--yes")
		if code != exitFailed || !strings.Contains(errOut, "not started by edgectl start") {
			t.Errorf("uninstall = %d %s", code, errOut)
		}
		if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
			t.Errorf("the data directory was touched: %v", err)
		}
	})
}
