package moduleclient

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/twin"
)

const (
	deviceCS = "HostName=hub.example;DeviceId=dev1;SharedAccessKey=" + testKey
	moduleCS = "HostName=hub.example;DeviceId=edge1;ModuleId=filter;SharedAccessKey=" + testKey
)

func mustNew(t *testing.T, cs string, opts Options) *Client {
	t.Helper()
	c, err := NewFromConnectionString(cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNew_RejectsUnusableConfiguration(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cs   sas.ConnectionString
		opts Options
	}{
		{"service string", sas.ConnectionString{HostName: "h", SharedAccessKeyName: "iothubowner", SharedAccessKey: testKey}, Options{}},
		{"no host", sas.ConnectionString{DeviceID: "d", SharedAccessKey: testKey}, Options{}},
		{"slash in device id", sas.ConnectionString{HostName: "h", DeviceID: "a/b", SharedAccessKey: testKey}, Options{}},
		{"wildcard in module id", sas.ConnectionString{HostName: "h", DeviceID: "d", ModuleID: "m#", SharedAccessKey: testKey}, Options{}},
		{"no credential", sas.ConnectionString{HostName: "h", DeviceID: "d"}, Options{}},
		{"key not base64", sas.ConnectionString{HostName: "h", DeviceID: "d", SharedAccessKey: "!!!"}, Options{}},
		{"x509 without client certificate", sas.ConnectionString{HostName: "h", DeviceID: "d", X509: true}, Options{}},
		{"x509 over plain MQTT", sas.ConnectionString{HostName: "h", DeviceID: "d", X509: true}, Options{Plain: true}},
		{"missing CA file", sas.ConnectionString{HostName: "h", DeviceID: "d", SharedAccessKey: testKey}, Options{CAFile: "/nonexistent.pem"}},
		{"CA file without PEM", sas.ConnectionString{HostName: "h", DeviceID: "d", SharedAccessKey: testKey}, Options{CAFile: notPEM}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cs, tt.opts)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New() = %v, %v; want ErrInvalidConfig", c, err)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q leaks the key", err)
			}
		})
	}
}

func TestNewFromConnectionString_MalformedIsInvalidConfig(t *testing.T) {
	_, err := NewFromConnectionString("HostName=h;DeviceId=d;SharedAccessKey=", Options{})
	if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, sas.ErrMalformedConnectionString) {
		t.Fatalf("err = %v, want ErrInvalidConfig wrapping sas.ErrMalformedConnectionString", err)
	}
}

func TestNew_ConnectParameters(t *testing.T) {
	cert := tls.Certificate{Certificate: [][]byte{{1}}}
	tests := []struct {
		name         string
		cs           string
		opts         Options
		wantClientID string
		wantUser     string // prefix up to the query
		wantParams   map[string]string
		wantBroker   string
		wantSNI      string
		wantRenew    bool
	}{
		{
			name: "device", cs: deviceCS,
			wantClientID: "dev1", wantUser: "hub.example/dev1/?", wantBroker: "ssl://hub.example:8883",
			wantSNI: "hub.example", wantRenew: true,
		},
		{
			name: "module through a gateway", cs: moduleCS + ";GatewayHostName=edgehub.local", opts: Options{Port: 18883},
			wantClientID: "edge1/filter", wantUser: "hub.example/edge1/filter/?",
			wantBroker: "ssl://edgehub.local:18883", wantSNI: "edgehub.local", wantRenew: true,
		},
		{
			name: "model id", cs: deviceCS, opts: Options{ModelID: "dtmi:com:example:Thermostat;1"},
			wantClientID: "dev1", wantUser: "hub.example/dev1/?",
			wantParams: map[string]string{iothub.ParamModelID: "dtmi:com:example:Thermostat;1"},
			wantBroker: "ssl://hub.example:8883", wantSNI: "hub.example", wantRenew: true,
		},
		{
			name: "plain MQTT", cs: deviceCS, opts: Options{Plain: true, Port: 1883},
			wantClientID: "dev1", wantUser: "hub.example/dev1/?", wantBroker: "tcp://hub.example:1883", wantRenew: true,
		},
		{
			name: "IPv6 gateway", cs: deviceCS + ";GatewayHostName=::1",
			wantClientID: "dev1", wantUser: "hub.example/dev1/?", wantBroker: "ssl://[::1]:8883", wantSNI: "::1", wantRenew: true,
		},
		{
			name:         "ready-made token is not renewed",
			cs:           "HostName=hub.example;DeviceId=dev1;SharedAccessSignature=SharedAccessSignature sr=hub.example%2Fdevices%2Fdev1&sig=abc&se=4102444800",
			wantClientID: "dev1", wantUser: "hub.example/dev1/?", wantBroker: "ssl://hub.example:8883", wantSNI: "hub.example",
		},
		{
			name: "x509 with a client certificate", cs: "HostName=hub.example;DeviceId=dev1;x509=true",
			opts:         Options{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, ServerName: "explicit"}},
			wantClientID: "dev1", wantUser: "hub.example/dev1/?", wantBroker: "ssl://hub.example:8883", wantSNI: "explicit",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustNew(t, tt.cs, tt.opts)
			if c.clientID != tt.wantClientID {
				t.Errorf("client id %q, want %q", c.clientID, tt.wantClientID)
			}
			if !strings.HasPrefix(c.username, tt.wantUser) {
				t.Errorf("username %q does not start with %q", c.username, tt.wantUser)
			}
			u, err := iothub.ParseUsername(c.username)
			if err != nil {
				t.Fatalf("username %q does not parse: %v", c.username, err)
			}
			if u.APIVersion() == "" || !strings.HasPrefix(u.Params[iothub.ParamDeviceClientType], "outpost-moduleclient/") {
				t.Errorf("username params %v lack api-version or DeviceClientType", u.Params)
			}
			for k, v := range tt.wantParams {
				if u.Params[k] != v {
					t.Errorf("username param %s = %q, want %q", k, u.Params[k], v)
				}
			}
			if c.broker != tt.wantBroker {
				t.Errorf("broker %q, want %q", c.broker, tt.wantBroker)
			}
			if tt.wantSNI == "" {
				if c.tls != nil {
					t.Errorf("plain client has a TLS config")
				}
			} else if c.tls == nil || c.tls.ServerName != tt.wantSNI {
				t.Errorf("TLS ServerName = %v, want %q", c.tls, tt.wantSNI)
			}
			if c.renewable != tt.wantRenew {
				t.Errorf("renewable = %v, want %v", c.renewable, tt.wantRenew)
			}
		})
	}
}

func TestNew_Defaults(t *testing.T) {
	c := mustNew(t, deviceCS, Options{})
	o := c.opts
	if o.TokenTTL != time.Hour || o.KeepAlive != 60*time.Second || o.Port != 8883 ||
		o.ReconnectMin != time.Second || o.ReconnectMax != time.Minute || o.Now == nil || o.Logger == nil {
		t.Errorf("defaults not applied: %+v", o)
	}
	if c.renewAfter != 48*time.Minute {
		t.Errorf("renewAfter = %v, want 80%% of 1h", c.renewAfter)
	}
}

func TestConnectError_MapsCONNACKCodes(t *testing.T) {
	c := mustNew(t, deviceCS, Options{})
	netErr := errors.New("dial tcp: connection refused")
	tests := []struct {
		name string
		rc   byte
		want error
	}{
		{"0x01", packets.ErrRefusedBadProtocolVersion, ErrProtocolVersion},
		{"0x02", packets.ErrRefusedIDRejected, ErrIdentifierRejected},
		{"0x03", packets.ErrRefusedServerUnavailable, ErrServerUnavailable},
		{"0x04", packets.ErrRefusedBadUsernameOrPassword, ErrBadCredentials},
		{"0x05", packets.ErrRefusedNotAuthorised, ErrNotAuthorized},
		{"other code", 0x42, ErrRefused},
		{"network error", packets.ErrNetworkError, netErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.connectError(tt.rc, netErr)
			if !errors.Is(err, tt.want) {
				t.Errorf("connectError(%#x) = %v, want it to wrap %v", tt.rc, err, tt.want)
			}
			if !strings.Contains(err.Error(), "dev1") {
				t.Errorf("error %q does not name the identity", err)
			}
		})
	}
}

func TestWantedFilters(t *testing.T) {
	noop := func(context.Context, []byte) (int, []byte) { return 200, nil }
	tests := []struct {
		name     string
		cs       string
		register func(c *Client)
		want     map[string]byte
	}{
		{"nothing registered", deviceCS, func(*Client) {}, map[string]byte{"$iothub/twin/res/#": 1}},
		{"device with everything", deviceCS, func(c *Client) {
			c.OnC2D(func(iothub.Message) {})
			c.OnInput(func(string, iothub.Message) {}) // ignored on a device
			c.OnDesired(func(map[string]any, int64) {})
			c.HandleMethod("", noop)
		}, map[string]byte{
			"$iothub/twin/res/#": 1, "$iothub/twin/PATCH/properties/desired/#": 1,
			"$iothub/methods/POST/#": 0, "devices/dev1/messages/devicebound/#": 1,
		}},
		{"module with everything", moduleCS, func(c *Client) {
			c.OnC2D(func(iothub.Message) {}) // ignored on a module
			c.OnInput(func(string, iothub.Message) {})
			c.HandleMethod("reset", noop)
		}, map[string]byte{
			"$iothub/twin/res/#": 1, "$iothub/methods/POST/#": 0, "devices/edge1/modules/filter/inputs/#": 1,
		}},
		{"method removed again", deviceCS, func(c *Client) {
			c.HandleMethod("reset", noop)
			c.HandleMethod("reset", nil)
		}, map[string]byte{"$iothub/twin/res/#": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustNew(t, tt.cs, Options{})
			tt.register(c)
			if got := c.wantedFilters(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("wantedFilters() = %v, want %v", got, tt.want)
			}
			for f := range c.wantedFilters() {
				if _, err := iothub.ParseFilter(f); err != nil {
					t.Errorf("filter %q is not one the hub accepts: %v", f, err)
				}
			}
		})
	}
}

func TestClient_OperationsBeforeConnect(t *testing.T) {
	dev := mustNew(t, deviceCS, Options{})
	mod := mustNew(t, moduleCS, Options{})
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"SendEvent", func() error { return dev.SendEvent(ctx, iothub.Message{Body: []byte("x")}) }, ErrNotConnected},
		{"GetTwin", func() error { _, _, err := dev.GetTwin(ctx); return err }, ErrNotConnected},
		{"UpdateReported", func() error { _, err := dev.UpdateReported(ctx, map[string]any{"a": 1}); return err }, ErrNotConnected},
		{"SendOutput on a device", func() error { return dev.SendOutput(ctx, "out", iothub.Message{}) }, ErrNotModule},
		{"SendOutput without a name", func() error { return mod.SendOutput(ctx, "", iothub.Message{}) }, ErrInvalidArgument},
		{"body over 256 KB", func() error {
			return dev.SendEvent(ctx, iothub.Message{Body: make([]byte, iothub.MaxMessageSize+1)})
		}, ErrTooLarge},
		{"properties push it over 256 KB", func() error {
			return dev.SendEvent(ctx, iothub.Message{Body: make([]byte, iothub.MaxMessageSize-2), Properties: map[string]string{"k": "vv"}})
		}, ErrTooLarge},
		{"topic over the MQTT limit", func() error {
			return dev.SendEvent(ctx, iothub.Message{Properties: map[string]string{"k": strings.Repeat("$", 30000)}})
		}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestClient_Closed(t *testing.T) {
	c := mustNew(t, deviceCS, Options{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
	if err := c.Connect(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Connect after Close = %v, want ErrClosed", err)
	}
	if err := c.SendEvent(context.Background(), iothub.Message{}); !errors.Is(err, ErrClosed) {
		t.Errorf("SendEvent after Close = %v, want ErrClosed", err)
	}
}

func TestConnect_NothingListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := mustNew(t, "HostName=127.0.0.1;DeviceId=dev1;SharedAccessKey="+testKey, Options{Port: port, Plain: true})
	err = c.Connect(context.Background())
	if err == nil {
		t.Fatal("Connect succeeded with nothing listening")
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error %q does not name the address", err)
	}
	// A failed Connect leaves the client usable for another attempt.
	if err := c.SendEvent(context.Background(), iothub.Message{}); !errors.Is(err, ErrNotConnected) {
		t.Errorf("SendEvent after failed Connect = %v, want ErrNotConnected", err)
	}
}

func TestConnect_CancelledWhileHandshaking(t *testing.T) {
	// A listener that accepts and never answers: the CONNECT hangs until ctx ends.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	c := mustNew(t, "HostName=127.0.0.1;DeviceId=dev1;SharedAccessKey="+testKey,
		Options{Port: l.Addr().(*net.TCPAddr).Port, Plain: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Connect(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Connect took %v to notice the cancelled context", d)
	}
}

func TestWithDeletions(t *testing.T) {
	tests := []struct {
		name      string
		prev, doc string
		want      string
	}{
		{"no previous document", `null`, `{"a":1}`, `{"a":1}`},
		{"nothing removed", `{"a":1}`, `{"a":2,"b":3}`, `{"a":2,"b":3}`},
		{"top-level key removed", `{"a":1,"b":2}`, `{"a":1}`, `{"a":1,"b":null}`},
		{"nested key removed", `{"o":{"x":1,"y":2}}`, `{"o":{"x":1}}`, `{"o":{"x":1,"y":null}}`},
		{"object replaced by scalar", `{"o":{"x":1}}`, `{"o":5}`, `{"o":5}`},
		{"everything removed", `{"a":1,"o":{"x":1}}`, `{}`, `{"a":null,"o":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev, doc, want := decode(t, tt.prev), decode(t, tt.doc), decode(t, tt.want)
			got := withDeletions(prev, doc)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("withDeletions = %v, want %v", got, want)
			}
			// The property OnDesired promises: merging the patch into the previous document
			// gives the new one.
			merged := twin.Clone(prev)
			if merged == nil {
				merged = map[string]any{}
			}
			twin.Merge(merged, got)
			if !reflect.DeepEqual(merged, doc) {
				t.Errorf("Merge(prev, withDeletions) = %v, want %v", merged, doc)
			}
		})
	}
}

func TestParseTwin(t *testing.T) {
	tests := []struct {
		name                      string
		body                      string
		wantDesired, wantReported string
		wantErr                   bool
	}{
		{"current form", `{"desired":{"a":1,"$version":3},"reported":{"$version":1}}`,
			`{"a":1,"$version":3}`, `{"$version":1}`, false},
		{"2017 properties wrapper", `{"properties":{"desired":{"$version":2},"reported":{"b":true,"$version":5}}}`,
			`{"$version":2}`, `{"b":true,"$version":5}`, false},
		{"missing reported", `{"desired":{"$version":1}}`, `{"$version":1}`, `{}`, false},
		{"not JSON", `nope`, "", "", true},
		{"desired not an object", `{"desired":[1],"reported":{}}`, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, r, err := parseTwin([]byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("err = %v, want ErrProtocol", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(d, decode(t, tt.wantDesired)) || !reflect.DeepEqual(r, decode(t, tt.wantReported)) {
				t.Errorf("parseTwin = %v, %v", d, r)
			}
		})
	}
}

func TestApplyDesired_Versions(t *testing.T) {
	type delivery struct {
		patch   string
		version int64
	}
	type update struct {
		patch   string
		version int64
		full    bool
	}
	tests := []struct {
		name    string
		updates []update
		want    []delivery
	}{
		{
			name:    "initial document then patches",
			updates: []update{{`{"a":1}`, 1, true}, {`{"b":2}`, 2, false}, {`{"a":null}`, 3, false}},
			want:    []delivery{{`{"a":1}`, 1}, {`{"b":2}`, 2}, {`{"a":null}`, 3}},
		},
		{
			name:    "stale and repeated notifications are dropped",
			updates: []update{{`{"a":1}`, 5, true}, {`{"a":0}`, 4, false}, {`{"a":1}`, 5, false}, {`{"a":2}`, 6, false}},
			want:    []delivery{{`{"a":1}`, 5}, {`{"a":2}`, 6}},
		},
		{
			name: "resync after changes made while disconnected carries deletions",
			updates: []update{
				{`{"a":1,"b":{"x":1,"y":2}}`, 1, true},
				{`{"a":1,"b":{"x":1},"c":3}`, 4, true}, // b.y deleted, c added while offline
			},
			want: []delivery{{`{"a":1,"b":{"x":1,"y":2}}`, 1}, {`{"a":1,"b":{"x":1,"y":null},"c":3}`, 4}},
		},
		{
			name:    "resync with no change delivers nothing",
			updates: []update{{`{"a":1}`, 2, true}, {`{"a":1}`, 2, true}},
			want:    []delivery{{`{"a":1}`, 2}},
		},
		{
			name: "patches before the first document, then the same version as a document",
			updates: []update{
				{`{"a":1}`, 2, false},
				{`{"a":1,"b":2}`, 2, true}, // adopted as reference, not delivered
				{`{"a":1}`, 3, true},       // b deleted
			},
			want: []delivery{{`{"a":1}`, 2}, {`{"a":1,"b":null}`, 3}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustNew(t, deviceCS, Options{})
			var got []delivery
			c.OnDesired(func(patch map[string]any, version int64) {
				b, err := json.Marshal(patch)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, delivery{string(b), version})
			})
			acks := 0
			for _, u := range tt.updates {
				c.applyDesired(desiredUpdate{patch: decode(t, u.patch), version: u.version, full: u.full, ack: func() { acks++ }})
			}
			if acks != len(tt.updates) {
				t.Errorf("%d of %d updates acknowledged", acks, len(tt.updates))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("delivered %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].version != tt.want[i].version || !jsonEqual(t, got[i].patch, tt.want[i].patch) {
					t.Errorf("delivery %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestStatusError(t *testing.T) {
	tests := []struct {
		status    int
		retryable bool
	}{{400, false}, {404, false}, {429, true}, {500, true}, {503, true}}
	for _, tt := range tests {
		e := &StatusError{Status: tt.status, Body: []byte(`{"message":"x"}`)}
		if e.Retryable() != tt.retryable {
			t.Errorf("status %d: Retryable() = %v", tt.status, e.Retryable())
		}
		if !strings.Contains(e.Error(), `"message":"x"`) {
			t.Errorf("Error() = %q lacks the body", e.Error())
		}
	}
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	if s == "null" {
		return nil
	}
	m, err := twin.DecodePatch([]byte(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

func TestConnect_FailureReleasesWaitingOperations(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accept and never answer
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	c := mustNew(t, "HostName=127.0.0.1;DeviceId=dev1;SharedAccessKey="+testKey,
		Options{Port: l.Addr().(*net.TCPAddr).Port, Plain: true})
	ctx, cancel := context.WithCancel(context.Background())
	connectErr := make(chan error, 1)
	go func() { connectErr <- c.Connect(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		st := c.state
		c.mu.Unlock()
		if st == stateConnecting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Connect never started")
		}
		time.Sleep(time.Millisecond)
	}
	sendErr := make(chan error, 1)
	go func() { sendErr <- c.SendEvent(context.Background(), iothub.Message{Body: []byte("x")}) }()
	waitForStack(t, "moduleclient.(*Client).acquire") // SendEvent is waiting for the connection
	cancel()
	if err := <-connectErr; err == nil {
		t.Fatal("Connect succeeded")
	}
	select {
	case err := <-sendErr:
		if !errors.Is(err, ErrNotConnected) {
			t.Errorf("SendEvent waiting for the failed Connect = %v, want ErrNotConnected", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SendEvent still waiting after Connect failed")
	}
}

// waitForStack polls the goroutine dump until some goroutine is inside fn.
func waitForStack(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.Stack(buf, true)
		if strings.Contains(string(buf[:n]), fn) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine reached %s", fn)
		}
		time.Sleep(time.Millisecond)
	}
}
