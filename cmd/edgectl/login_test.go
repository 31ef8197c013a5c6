package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/runtime/agent"
)

func TestLogin_StoresWithMode0600AndNeverShowsThePassword(t *testing.T) {
	const password = "hunter2-registry-token"
	dir := filepath.Join(t.TempDir(), "data")
	login := func(stdin string, args ...string) (int, string, string) {
		return cli(t, env{Stdin: strings.NewReader(stdin)}, append([]string{"--data-dir", dir, "login"}, args...)...)
	}
	code, out, errOut := login(password+"\n", "--address", "myacr.azurecr.io", "--username", "myacr", "--password-stdin")
	if code != 0 || !strings.Contains(out, "Login stored for myacr.azurecr.io as myacr") {
		t.Fatalf("login = %d\n%s%s", code, out, errOut)
	}
	path := filepath.Join(dir, agent.RegistriesFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want 0600", path, err, fi.Mode())
	}
	code, out2, errOut2 := login("other-password\n", "--address", "https://MyACR.azurecr.io/", "--username", "robot", "--password-stdin")
	if code != 0 || !strings.Contains(out2, "Login replaced") {
		t.Fatalf("second login = %d\n%s%s", code, out2, errOut2)
	}
	if code, _, _ := login("p3-secret\n", "--address", "localhost:5000", "--username", "u", "--password-stdin"); code != 0 {
		t.Fatal("third login failed")
	}
	logins, err := agent.ReadRegistries(path)
	if err != nil || len(logins) != 2 {
		t.Fatalf("stored %+v (%v), want two logins", logins, err)
	}
	for _, l := range logins {
		if agent.SameRegistry(l.Address, "myacr.azurecr.io") && (l.Username != "robot" || l.Password != "other-password") {
			t.Errorf("myacr login = %+v, want the replacement", l)
		}
	}

	t.Run("config shows logins redacted", func(t *testing.T) {
		ec := testConfig(dir)
		writeConfig(t, ec)
		for _, format := range []string{"text", "json"} {
			code, out, errOut := cli(t, env{}, "--data-dir", dir, "-o", format, "config")
			if code != 0 || !strings.Contains(out, "localhost:5000 (user u, password ***)") {
				t.Errorf("config -o %s = %d\n%s%s", format, code, out, errOut)
			}
			if strings.Contains(out, "other-password") || strings.Contains(out, "p3-secret") {
				t.Errorf("config -o %s shows a password:\n%s", format, out)
			}
		}
	})
	t.Run("no password anywhere in the output", func(t *testing.T) {
		for _, text := range []string{out, errOut, out2, errOut2} {
			if strings.Contains(text, password) || strings.Contains(text, "other-password") {
				t.Errorf("output shows a password: %s", text)
			}
		}
	})
	t.Run("logout", func(t *testing.T) {
		code, out, errOut := cli(t, env{}, "--data-dir", dir, "logout", "--address", "localhost:5000")
		if code != 0 || !strings.Contains(out, "removed") {
			t.Fatalf("logout = %d\n%s%s", code, out, errOut)
		}
		if logins, _ := agent.ReadRegistries(path); len(logins) != 1 {
			t.Errorf("after logout: %+v", logins)
		}
		if code, _, errOut := cli(t, env{}, "--data-dir", dir, "logout", "--address", "localhost:5000"); code != exitFailed || !strings.Contains(errOut, "no login stored") {
			t.Errorf("second logout = %d %s", code, errOut)
		}
	})
}

func TestLogin_BadUsage(t *testing.T) {
	tests := []struct {
		name, stdin string
		args        []string
		wantCode    int
		wantErr     string
	}{
		{name: "no password-stdin", args: []string{"--address", "a.io", "--username", "u"}, wantCode: exitUsage, wantErr: "--password-stdin"},
		{name: "no address", args: []string{"--username", "u", "--password-stdin"}, stdin: "p\n", wantCode: exitUsage, wantErr: "--address"},
		{name: "empty stdin", args: []string{"--address", "a.io", "--username", "u", "--password-stdin"}, wantCode: exitFailed, wantErr: "no password"},
		{name: "password flag", args: []string{"--address", "a.io", "--username", "u", "--password", "secret"}, wantCode: exitUsage, wantErr: "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			code, _, errOut := cli(t, env{Stdin: strings.NewReader(tt.stdin)}, append([]string{"--data-dir", dir, "login"}, tt.args...)...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("login = %d %q, want %d mentioning %q", code, errOut, tt.wantCode, tt.wantErr)
			}
			if _, err := os.Stat(filepath.Join(dir, agent.RegistriesFile)); !os.IsNotExist(err) {
				t.Error("a refused login wrote the file")
			}
		})
	}
}

func TestLogin_JSON(t *testing.T) {
	dir := t.TempDir()
	code, out, _ := cli(t, env{Stdin: strings.NewReader("pw-secret")}, "--data-dir", dir, "-o", "json", "login", "--address", "a.io", "--username", "u", "--password-stdin")
	var got loginOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || got.Result != "stored" || got.Address != "a.io" {
		t.Fatalf("login -o json = %d %+v %v", code, got, err)
	}
	if strings.Contains(out, "pw-secret") {
		t.Errorf("json shows the password: %s", out)
	}
}
