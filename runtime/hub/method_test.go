package hub_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/certs"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestMethods_FromTheCloudToALocalModule(t *testing.T) {
	fc := newFakeCloud()
	r := newRelayEnv(t, fc, withOptions(func(o *hub.Options) { o.MethodTimeout = 300 * time.Millisecond }))
	a := r.connect(modA)
	methodsOf(t, a, func(name string, payload []byte) (int, string) {
		switch name {
		case "echo":
			return 201, `{"got":` + string(payload) + `}`
		case "empty":
			return 200, ""
		}
		return 0, "" // "slow": never answers
	})
	r.connect(modB) // connected, not subscribed to methods

	tests := []struct {
		name         string
		id           sas.Identity
		method, body string
		status       int
		payload      string // exact, or a substring for errors
	}{
		{"round trip", modA, "echo", `{"x":1}`, 201, `{"got":{"x":1}}`},
		{"an empty answer is null", modA, "empty", `null`, 200, `null`},
		{"not subscribed to methods", modB, "echo", `{}`, 404, `"errorCode":404103`},
		{"not connected", leaf, "echo", `{}`, 404, `"errorCode":404103`},
		{"no answer in time", modA, "slow", `{}`, 504, `"errorCode":504101`},
		{"name with a slash refused", modA, "echo/x", `{}`, 400, `"errorCode":400004`},
		{"name with a wildcard refused", modA, "echo#", `{}`, 400, `"errorCode":400004`},
		{"empty name refused", modA, "", `{}`, 400, `"errorCode":400004`},
		{"name with a control character refused", modA, "echo\n", `{}`, 400, `"errorCode":400004`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rid := "cloud-" + strconv.Itoa(i)
			fc.onMethod(tt.id, tt.method, rid, []byte(tt.body))
			ans := fc.answer(t)
			if ans.id != tt.id || ans.rid != rid || ans.status != tt.status {
				t.Fatalf("answer %+v, want status %d for %v rid %s", ans, tt.status, tt.id, rid)
			}
			if tt.status < 300 && ans.payload != tt.payload || tt.status >= 300 && !strings.Contains(ans.payload, tt.payload) {
				t.Fatalf("payload %s, want %s", ans.payload, tt.payload)
			}
		})
	}
}

// methodAPI starts a hub serving the method API over TLS and returns it with an HTTPS
// client that trusts the edge CA.
func methodAPI(t *testing.T, cloud hub.Cloud) (*relayEnv, *http.Client, string) {
	t.Helper()
	return methodAPIOn(t, newRelayEnv(t, cloud))
}

// methodAPIOn restarts r's hub with the method API on a TLS listener.
func methodAPIOn(t *testing.T, r *relayEnv) (*relayEnv, *http.Client, string) {
	t.Helper()
	dir := t.TempDir()
	tlsCerts, err := certs.New(certs.Options{Dir: dir, Names: certs.Names(edgeHost)})
	if err != nil {
		t.Fatal(err)
	}
	r.opts.HTTPSAddr, r.opts.TLS = "127.0.0.1:0", tlsCerts.TLSConfig()
	r.restart()
	pem, err := os.ReadFile(filepath.Join(dir, certs.DefaultCAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: edgeHost}}}
	t.Cleanup(hc.CloseIdleConnections)
	return r, hc, "https://" + r.hub.HTTPSAddr()
}

// sdkModule connects a module with the project's SDK over the hub's plain listener.
func sdkModule(t *testing.T, r *relayEnv, id sas.Identity, setup func(*moduleclient.Client)) *moduleclient.Client {
	t.Helper()
	host, portText, _ := strings.Cut(r.hub.PlainAddr(), ":")
	port, _ := strconv.Atoi(portText)
	cs, err := sas.ParseConnectionString("HostName=" + hubHost + ";DeviceId=" + id.DeviceID + ";ModuleId=" + id.ModuleID +
		";SharedAccessKey=" + keyOf(id) + ";GatewayHostName=" + host)
	if err != nil {
		t.Fatal(err)
	}
	c, err := moduleclient.New(cs, moduleclient.Options{Plain: true, Port: port, Now: r.clock.Now, Logger: testLogger(t),
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %v: %v", id, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestMethodAPI_ModuleToModule(t *testing.T) {
	r, hc, base := methodAPI(t, nil)
	sdkModule(t, r, modA, func(c *moduleclient.Client) {
		c.HandleMethod("echo", func(_ context.Context, p []byte) (int, []byte) {
			return 200, append([]byte(`{"echo":`), append(p, '}')...)
		})
		c.HandleMethod("text", func(_ context.Context, p []byte) (int, []byte) { return 202, []byte("plain text") })
		c.HandleMethod("slow", func(ctx context.Context, _ []byte) (int, []byte) { <-ctx.Done(); return 500, nil })
	})
	expiry := r.clock.Now().Add(time.Hour)
	tokB := r.token(hubHost, modB, keyModB, expiry)
	tokEdge := r.token(hubHost, sas.Identity{DeviceID: edgeID}, keyEdge, expiry)
	call := `{"methodName":"echo","payload":{"n":1},"responseTimeoutInSeconds":10}`
	tests := []struct {
		name         string
		target       sas.Identity
		header, auth string
		body         string
		status       int
		want         string
	}{
		{"round trip", modA, "edge1/modB", tokB, call, 200, `{"payload":{"echo":{"n":1}},"status":200}`},
		{"the edge device's token authenticates its modules", modA, "edge1/modB", tokEdge, call, 200, `{"payload":{"echo":{"n":1}},"status":200}`},
		{"a text answer becomes a JSON string", modA, "edge1/modB", tokB, `{"methodName":"text"}`, 200, `{"payload":"plain text","status":202}`},
		{"a wrong key", modA, "edge1/modB", r.token(hubHost, modB, keyBad, expiry), call, 401, "does not authenticate"},
		{"the header names another module than the token", modA, "edge1/modA", tokB, call, 401, "does not authenticate"},
		{"an expired token", modA, "edge1/modB", r.token(hubHost, modB, keyModB, r.clock.Now().Add(-time.Hour)), call, 401, "does not authenticate"},
		{"no token", modA, "edge1/modB", "", call, 401, "Authorization"},
		{"a leaf device as caller", modA, "leaf1", r.token(hubHost, leaf, keyLeaf, expiry), call, 401, "Only modules on the same device"},
		{"a module of another device", modA, "other/modB", tokB, call, 401, "Only modules on the same device"},
		{"no header", modA, "", tokB, call, 400, "x-ms-edge-moduleId"},
		{"a malformed header", modA, "edge1/modB/x", tokB, call, 400, "x-ms-edge-moduleId"},
		{"no method name", modA, "edge1/modB", tokB, `{"payload":1}`, 400, "methodName"},
		{"a response timeout below 5 s", modA, "edge1/modB", tokB, `{"methodName":"echo","responseTimeoutInSeconds":1}`, 400, "responseTimeoutInSeconds"},
		{"not JSON", modA, "edge1/modB", tokB, `{`, 400, "body"},
		{"a target that is not connected", leaf, "edge1/modB", tokB, call, 404, "not connected"},
		{"no answer in time", modA, "edge1/modB", tokB, `{"methodName":"slow","responseTimeoutInSeconds":5}`, 504, "did not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := callMethod(t, hc, base, tt.target, tt.header, tt.auth, tt.body)
			if status != tt.status {
				t.Fatalf("status %d %s, want %d", status, body, tt.status)
			}
			if status == 200 {
				if got := canon(t, []byte(body)); got != tt.want {
					t.Fatalf("body %s, want %s", got, tt.want)
				}
				return
			}
			var e struct{ Message string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Message, tt.want) {
				t.Fatalf("body %s, want a message containing %q", body, tt.want)
			}
		})
	}
}

func TestMethodAPI_WaitsForTheTargetWithinConnectTimeout(t *testing.T) {
	r, hc, base := methodAPI(t, nil)
	tokB := r.token(hubHost, modB, keyModB, r.clock.Now().Add(time.Hour))
	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	written := make(chan struct{})
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { close(written) },
	})
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/twins/edge1/modules/modA/methods",
			strings.NewReader(`{"methodName":"ping","connectTimeoutInSeconds":20}`))
		req.Header.Set("x-ms-edge-moduleId", "edge1/modB")
		req.Header.Set("Authorization", tokB)
		resp, err := hc.Do(req)
		if err != nil {
			done <- result{0, err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b)}
	}()
	// The target connects (and subscribes) once the call is on its way.
	<-written
	a := r.connect(modA)
	methodsOf(t, a, func(string, []byte) (int, string) { return 200, `"pong"` })
	select {
	case res := <-done:
		if res.status != 200 || canon(t, []byte(res.body)) != `{"payload":"pong","status":200}` {
			t.Fatalf("status %d body %s", res.status, res.body)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the call did not complete after the target subscribed")
	}
}
