package agent_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
)

func TestRegistries_RoundTripAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), agent.RegistriesFile)
	if got, err := agent.ReadRegistries(path); err != nil || got != nil {
		t.Fatalf("ReadRegistries(missing) = %v, %v; want nothing, no error", got, err)
	}
	logins := []agent.RegistryLogin{
		{Address: "myacr.azurecr.io", Username: "u2", Password: "p2-secret"},
		{Address: "localhost:5000", Username: "u1", Password: "p1-secret"},
	}
	if err := agent.WriteRegistries(path, logins); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	got, err := agent.ReadRegistries(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []agent.RegistryLogin{logins[1], logins[0]} // sorted by address
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestReadRegistries_Invalid(t *testing.T) {
	tests := []struct {
		name, content, wantErr string
	}{
		{name: "not json", content: `{"registries": [`, wantErr: "not a valid registries file"},
		{name: "unknown field", content: `{"registries": [], "extra": 1}`, wantErr: "not a valid registries file"},
		{name: "wrong type", content: `{"registries": [{"address": "a.io", "password": 12345678}]}`, wantErr: "password"},
		{name: "no address", content: `{"registries": [{"username": "u", "password": "hunter22"}]}`, wantErr: "entry 0 has no address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), agent.RegistriesFile)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := agent.ReadRegistries(path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			for _, secret := range []string{"hunter22", "12345678"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q quotes the file's content", err)
				}
			}
		})
	}
}

func TestPlan_LoginsAreTheFallback(t *testing.T) {
	d := mustDesired(t)
	d.Logins = agent.LoginCredentials([]agent.RegistryLogin{
		{Address: "https://MCR.microsoft.com/", Username: "local", Password: "local-pw"},
		{Address: "myacr.azurecr.io", Username: "local", Password: "local-acr-pw"},
	})
	pulls := map[string]agent.Command{}
	for _, c := range agent.Plan(d, nil, now) {
		if c.Kind == agent.Pull {
			pulls[c.Module] = c
		}
	}
	tests := []struct {
		module, wantCredential, wantPassword string
	}{
		// The deployment has an entry for myacr.azurecr.io: it wins.
		{module: "filter", wantCredential: "acr", wantPassword: password},
		// Nothing in the deployment for mcr.microsoft.com: the login applies.
		{module: "tempSensor", wantCredential: "login:mcr.microsoft.com", wantPassword: "local-pw"},
	}
	for _, tt := range tests {
		t.Run(tt.module, func(t *testing.T) {
			c, ok := pulls[tt.module]
			if !ok {
				t.Fatalf("no pull of %s", tt.module)
			}
			if c.Credential != tt.wantCredential || c.Auth == nil || c.Auth.Password != tt.wantPassword {
				t.Fatalf("pull %s: credential %q auth %+v; want %q", tt.module, c.Credential, c.Auth, tt.wantCredential)
			}
			if strings.Contains(c.String(), tt.wantPassword) {
				t.Errorf("command string %q shows the password", c.String())
			}
		})
	}
}

func TestRun_UsesStoredLoginsAndNeverLeaksThem(t *testing.T) {
	const loginPassword = "l0gin-Pa55word!"
	h := newHarness(t)
	h.opts.RegistryLogins = func() []agent.RegistryLogin {
		return []agent.RegistryLogin{{Address: "mcr.microsoft.com", Username: "op", Password: loginPassword}}
	}
	// A pull error that echoes the password must be redacted in reports and logs.
	h.rt.Fail(agenttest.OpPull, "mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5",
		fmt.Errorf("registry said no to op:%s", loginPassword))
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitStatus("500")
	waitFor(t, "the failed pull reported", func() bool {
		_, desc := lastStatus(h.twin.Reported())
		return strings.Contains(desc, "registry said no")
	})
	h.stop()

	var auth *agent.RegistryLogin
	for _, c := range h.rt.Calls() {
		if c.Op == agenttest.OpPull && strings.HasPrefix(c.Target, "mcr.microsoft.com/") && c.Auth != nil {
			auth = &agent.RegistryLogin{Address: c.Auth.Address, Username: c.Auth.Username, Password: c.Auth.Password}
		}
	}
	if auth == nil || auth.Username != "op" || auth.Password != loginPassword {
		t.Fatalf("tempSensor pulled with %+v, want the stored login", auth)
	}
	rep, _ := json.Marshal(h.twin.Reported())
	for what, text := range map[string]string{"reported": string(rep), "logs": h.logs.String()} {
		if strings.Contains(text, loginPassword) {
			t.Errorf("%s contain the login's password", what)
		}
		if !strings.Contains(text, "op:***") {
			t.Errorf("%s do not show the redacted failure", what)
		}
	}
}
