package agent_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestDeriveModuleKey(t *testing.T) {
	const dev = "ZGV2aWNlLWtleS0wMTIzNDU2Nzg5MDEyMzQ1Njc4OQ=="
	a1, err := agent.DeriveModuleKey(dev, "filter")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := agent.DeriveModuleKey(dev, "filter")
	b, _ := agent.DeriveModuleKey(dev, "$edgeHub")
	other, _ := agent.DeriveModuleKey("b3RoZXIgZGV2aWNlIGtleQ==", "filter")
	switch {
	case a1 != a2:
		t.Error("not deterministic")
	case a1 == b:
		t.Error("two modules got the same key")
	case a1 == other:
		t.Error("two devices gave a module the same key")
	}
	if _, err := sas.Sign("h/devices/d/modules/filter", a1, "", time.Now().Add(time.Hour)); err != nil {
		t.Errorf("derived key cannot sign: %v", err)
	}
	for _, bad := range []string{"", "not base64!"} {
		if _, err := agent.DeriveModuleKey(bad, "filter"); !errors.Is(err, sas.ErrInvalidKey) {
			t.Errorf("device key %q: %v, want ErrInvalidKey", bad, err)
		}
	}
}

func TestIdentityOf(t *testing.T) {
	for name, want := range map[string]string{"edgeAgent": "$edgeAgent", "edgeHub": "$edgeHub", "filter": "filter"} {
		if got := agent.IdentityOf(name); got != want {
			t.Errorf("IdentityOf(%q) = %q, want %q", name, got, want)
		}
	}
}

// hubClient is an HTTP client trusting the fake hub's CA.
func hubClient(t testing.TB, s *fakehub.Server) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
}

func mustIdentities(t testing.TB, s *fakehub.Server, deviceCS string) *agent.HubIdentities {
	t.Helper()
	cs, err := sas.ParseConnectionString(deviceCS)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := agent.NewHubIdentities(cs, "https://"+s.HTTPAddress(), hubClient(t, s), nil)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestHubIdentities_EnsureModule(t *testing.T) {
	s := fakehubtest.New(t)
	_, edgeCS := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	ids := mustIdentities(t, s, edgeCS)
	ctx := context.Background()

	for _, id := range []string{"filter", "$edgeAgent", "$edgeHub"} { // new, and existing with other keys
		t.Run(id, func(t *testing.T) {
			gen, err := ids.EnsureModule(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			m, err := s.GetModule("edge1", id)
			if err != nil {
				t.Fatal(err)
			}
			key, _ := ids.ModuleKey(id)
			if m.Authentication.SymmetricKey == nil || m.Authentication.SymmetricKey.PrimaryKey != key {
				t.Error("the hub's primary key is not the derived key")
			}
			if m.GenerationID != gen || gen == "" {
				t.Errorf("generation id %q, hub has %q", gen, m.GenerationID)
			}
			etag := m.Etag
			if gen2, err := ids.EnsureModule(ctx, id); err != nil || gen2 != gen {
				t.Errorf("second EnsureModule = %q, %v", gen2, err)
			}
			if m, _ := s.GetModule("edge1", id); m.Etag != etag {
				t.Error("a second EnsureModule rewrote an identity that was already right")
			}
		})
	}

	t.Run("the derived key connects", func(t *testing.T) {
		cs, err := ids.ConnectionString("filter", "")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(s.MQTTAddress())
		c, err := moduleclient.New(cs, moduleclient.Options{CAFile: s.CAFile(), Port: atoi(t, port)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := c.Connect(cctx); err != nil {
			t.Fatalf("connect as edge1/filter with the derived key: %v", err)
		}
	})
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestHubIdentities_Errors(t *testing.T) {
	s := fakehubtest.New(t)
	_, edgeCS := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, leafCS := fakehubtest.MustDevice(t, s, "leaf1")
	edge, _ := sas.ParseConnectionString(edgeCS)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	wrongKey := edge
	wrongKey.SharedAccessKey = "d3Jvbmcga2V5IGZvciBlZGdlMQ=="
	unknown := edge
	unknown.DeviceID = "edge9"
	for _, tc := range []struct {
		name     string
		cs       func() string
		url      string
		rejected bool
	}{
		{"not an edge device", func() string { return leafCS }, "", true},
		{"wrong device key", wrongKey.String, "", true},
		{"unknown device", unknown.String, "", true},
		{"hub unreachable", func() string { return edgeCS }, "https://127.0.0.1:1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, _ := sas.ParseConnectionString(tc.cs())
			url := tc.url
			if url == "" {
				url = "https://" + s.HTTPAddress()
			}
			ids, err := agent.NewHubIdentities(cs, url, hubClient(t, s), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ids.EnsureModule(ctx, "filter")
			if err == nil {
				t.Fatal("EnsureModule succeeded")
			}
			if errors.Is(err, agent.ErrRejected) != tc.rejected {
				t.Errorf("error %v: ErrRejected = %v, want %v", err, !tc.rejected, tc.rejected)
			}
			if key := cs.SharedAccessKey; key != "" && (strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "sig=")) {
				t.Errorf("error quotes a secret: %v", err)
			}
		})
	}
}

func TestNewHubIdentities_Invalid(t *testing.T) {
	good := sas.ConnectionString{HostName: "h", DeviceID: "edge1", SharedAccessKey: "a2V5"}
	for _, tc := range []struct {
		name string
		cs   sas.ConnectionString
		url  string
	}{
		{"module string", sas.ConnectionString{HostName: "h", DeviceID: "edge1", ModuleID: "m", SharedAccessKey: "a2V5"}, "https://h"},
		{"x509 device", sas.ConnectionString{HostName: "h", DeviceID: "edge1", X509: true}, "https://h"},
		{"bad key", sas.ConnectionString{HostName: "h", DeviceID: "edge1", SharedAccessKey: "%%%"}, "https://h"},
		{"bad url", good, "ftp://h"},
		{"no host", good, "https://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := agent.NewHubIdentities(tc.cs, tc.url, nil, nil); err == nil {
				t.Error("accepted")
			}
		})
	}
}
