package fakehub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// consoleScreenshot keeps a copy of the browser test's screenshot, to look at it:
//
//	go test ./fakehub -run TestConsole_Browser -console-screenshot /tmp/console.png
var consoleScreenshot = flag.String("console-screenshot", "", "also write the console screenshot to this PNG file")

// TestConsole_ServesFilesWithoutAuthorization checks the static side: the page and its
// modules are served to anyone, with the right types and a same-origin security policy,
// while the API they call still needs a token.
func TestConsole_ServesFilesWithoutAuthorization(t *testing.T) {
	s := fakehubtest.New(t)
	base := "http://" + s.PlainHTTPAddress()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	tests := []struct {
		name        string
		path        string
		status      int    // a single digit means any status of that class
		contentType string // prefix
		contains    string
		location    string // for redirects (ServeMux's choice of 301 or 307 does not matter)
	}{
		{name: "page", path: "/console/", status: 200, contentType: "text/html", contains: `<script type="module" src="app.js">`},
		{name: "entry module", path: "/console/app.js", status: 200, contentType: "text/javascript", contains: "parseConnectionString"},
		{name: "signing module", path: "/console/sas.js", status: 200, contentType: "text/javascript", contains: "crypto.subtle"},
		{name: "stylesheet", path: "/console/style.css", status: 200, contentType: "text/css", contains: "--bar"},
		{name: "without slash", path: "/console", status: 3, location: "/console/"},
		{name: "unknown asset", path: "/console/nope.js", status: 404},
		{name: "api still guarded", path: "/devices", status: 401, contains: "IotHubUnauthorizedAccess"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Get(base + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status && resp.StatusCode/100 != tt.status {
				t.Fatalf("GET %s: status %d, want %d; body %.200s", tt.path, resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("GET %s: Content-Type %q, want %q...", tt.path, ct, tt.contentType)
			}
			if !bytes.Contains(body, []byte(tt.contains)) {
				t.Errorf("GET %s: body does not contain %q", tt.path, tt.contains)
			}
			if got := resp.Header.Get("Location"); got != tt.location {
				t.Errorf("GET %s: Location %q, want %q", tt.path, got, tt.location)
			}
			if tt.status == 200 {
				csp := resp.Header.Get("Content-Security-Policy")
				for _, want := range []string{"default-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
					if !strings.Contains(csp, want) {
						t.Errorf("GET %s: Content-Security-Policy %q lacks %q", tt.path, csp, want)
					}
				}
			}
		})
	}
}

// TestConsole_Browser drives the console in headless Chromium against a hub with an edge
// device whose agent reports a running module and a device sending telemetry. It signs in
// with the service connection string, then checks that live data appears: the module table
// follows the agent's reports, the message list shows a message sent after the page had
// loaded, and the chart counts it; then it uses each form (method, twin, deployment) and
// checks the hub saw the change.
//
// It runs over plain HTTP (a secure context only because the host is 127.0.0.1) and over
// HTTPS, where Chrome and Go speak HTTP/2 and the event stream is an HTTP/2 stream.
func TestConsole_Browser(t *testing.T) {
	chromium := chromiumPath(t)
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) { testConsoleBrowser(t, chromium, scheme) })
	}
}

func testConsoleBrowser(t *testing.T, chromium, scheme string) {
	s := fakehubtest.New(t)
	addr := s.PlainHTTPAddress()
	if scheme == "https" {
		addr = s.HTTPAddress()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, devCS := fakehubtest.MustDevice(t, s, "dev1")
	fakehubtest.MustDevice(t, s, "offline1")
	if err := s.ApplyConfigurationContent("edge1", map[string]json.RawMessage{
		"$edgeAgent": json.RawMessage(`{"properties.desired":{"schemaVersion":"1.1",
			"runtime":{"type":"docker","settings":{}},
			"systemModules":{"edgeAgent":{"type":"docker","settings":{"image":"test/agent:1"}},
				"edgeHub":{"type":"docker","status":"running","restartPolicy":"always","settings":{"image":"test/hub:1"}}},
			"modules":{"tempSensor":{"type":"docker","status":"running","restartPolicy":"always","settings":{"image":"test/tempsensor:1"}}}}}`),
	}); err != nil {
		t.Fatalf("apply deployment: %v", err)
	}

	// The edge agent: there is no service API for reported properties, so a real client
	// reports them over MQTT, as the agent does; it also answers a direct method.
	agentCS, err := s.ModuleConnectionString("edge1", "$edgeAgent")
	if err != nil {
		t.Fatal(err)
	}
	agent := consoleClient(t, s, agentCS, func(c *moduleclient.Client) {
		c.HandleMethod("ping", func(_ context.Context, payload []byte) (int, []byte) {
			return 200, []byte(`{"pong":` + string(payload) + `}`)
		})
	})
	report := func(status string, restarts int) {
		t.Helper()
		_, err := agent.UpdateReported(ctx, map[string]any{
			"schemaVersion":      "1.0",
			"lastDesiredVersion": 2,
			"lastDesiredStatus":  map[string]any{"code": 200, "description": ""},
			"systemModules": map[string]any{
				"edgeAgent": map[string]any{"runtimeStatus": "running", "settings": map[string]any{"image": "test/agent:1"}},
				"edgeHub":   map[string]any{"runtimeStatus": "running", "restartCount": 0, "settings": map[string]any{"image": "test/hub:1"}},
			},
			"modules": map[string]any{
				"tempSensor": map[string]any{"runtimeStatus": status, "statusDescription": status + " (test)",
					"restartCount": restarts, "settings": map[string]any{"image": "test/tempsensor:1"}},
			},
		})
		if err != nil {
			t.Fatalf("report %s: %v", status, err)
		}
	}
	report("running", 0)

	dev := consoleClient(t, s, devCS, nil)
	send := func(body string) {
		t.Helper()
		err := dev.SendEvent(ctx, iothub.Message{
			Body:       []byte(body),
			Properties: map[string]string{"kind": "test"},
			System:     map[string]string{iothub.SysContentType: "application/json"},
		})
		if err != nil {
			t.Fatalf("send %s: %v", body, err)
		}
	}
	for i := 1; i <= 3; i++ {
		send(fmt.Sprintf(`{"before":%d}`, i))
	}

	b := startBrowser(t, chromium)
	b.navigate(scheme + "://" + addr + "/console/")
	b.waitUntil("the sign-in form", `document.readyState === "complete" && document.getElementById("conn")`)

	// The page signs exactly the token the Go implementation signs.
	serviceCS := s.ServiceConnectionString()
	cs, err := sas.ParseConnectionString(serviceCS)
	if err != nil {
		t.Fatal(err)
	}
	const expiry = 2000000000
	want, err := sas.Sign(cs.HostName, cs.SharedAccessKey, cs.SharedAccessKeyName, time.Unix(expiry, 0))
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := b.eval(fmt.Sprintf(`import(new URL("sas.js", location.href).href).then((m) => m.signToken(%q, %q, %q, %d))`,
		cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, expiry), &got); err != nil {
		b.fatalf("%v", err)
	}
	if got != want {
		t.Errorf("token signed in the page:\n%s\nwant (sas.Sign):\n%s", got, want)
	}

	// A wrong key is refused at the sign-in form.
	badCS := strings.Replace(serviceCS, "SharedAccessKey="+cs.SharedAccessKey, "SharedAccessKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 1)
	b.do(fmt.Sprintf(`document.getElementById("conn").value = %q; document.getElementById("login-form").requestSubmit();`, badCS))
	b.waitUntil("the sign-in error", `!document.getElementById("login-error").hidden && document.getElementById("login-error").textContent.includes("401")`)

	b.do(fmt.Sprintf(`document.getElementById("conn").value = %q; document.getElementById("login-form").requestSubmit();`, serviceCS))
	b.waitUntil("the console", `!document.getElementById("console").hidden`)
	var proto string
	_ = b.eval(`performance.getEntriesByType("navigation")[0]?.nextHopProtocol ?? ""`, &proto)
	t.Logf("console loaded over %s", proto)

	moduleStatus := `document.querySelector('tr[data-device="edge1"][data-module="tempSensor"] .runtime-status')?.textContent`
	b.waitUntil("tempSensor running in the module table", moduleStatus+` === "running"`)
	b.waitUntil("dev1 in the device table", `document.querySelector('#devices tr[data-device="dev1"]')`)
	b.waitUntil("the messages sent before loading", `[...document.querySelectorAll("#messages li")].some((li) => li.textContent.includes('{"before":3}'))`)
	b.waitUntil("the live stream", `document.getElementById("stream-state").textContent === "live"`)

	// Liveness: a message sent now, after the page has shown the earlier ones, appears on top.
	send(`{"after":"load"}`)
	b.waitUntil("the message sent after loading, newest first",
		`document.querySelector("#messages li")?.textContent.includes('{"after":"load"}') && document.querySelector("#messages li").dataset.device === "dev1"`)
	b.waitUntil("the rate chart counting all four messages", `Number(document.getElementById("rate").dataset.total) >= 4`)

	// A direct method, answered by the agent.
	b.do(`
		document.getElementById("method-device").value = "edge1";
		document.getElementById("method-module").value = "$edgeAgent";
		document.getElementById("method-name").value = "ping";
		document.getElementById("method-payload").value = '{"n":7}';
		document.getElementById("method-form").requestSubmit();`)
	b.waitUntil("the method answer", `document.getElementById("method-result").dataset.status === "200" && document.getElementById("method-result").textContent.includes('"pong"')`)
	// An offline target is reported inline.
	b.do(`
		document.getElementById("method-device").value = "offline1";
		document.getElementById("method-module").value = "";
		document.getElementById("method-form").requestSubmit();`)
	b.waitUntil("the offline error", `!document.getElementById("method-error").hidden && document.getElementById("method-error").textContent.includes("DeviceNotOnline")`)

	// The twin editor: clicking a device row loads its twin; a merge patch reaches the hub.
	b.do(`document.querySelector('#devices tr[data-device="dev1"]').click();`)
	b.waitUntil("dev1's twin", `document.getElementById("twin-view").textContent.includes('"deviceId": "dev1"')`)
	b.do(`
		document.getElementById("twin-editor").value = '{"tags":{"floor":3},"properties":{"desired":{"interval":5}}}';
		document.getElementById("twin-patch").click();`)
	b.waitUntil("the patched twin", `document.getElementById("twin-status").textContent.startsWith("merged")`)
	twin, err := s.GetTwin("dev1", "")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(twin.Tags["floor"]) != "3" || fmt.Sprint(twin.Properties.Desired["interval"]) != "5" {
		t.Errorf("after the console's patch: tags %v, desired %v; want floor 3 and interval 5", twin.Tags, twin.Properties.Desired)
	}

	b.do(`
		document.getElementById("twin-editor").value = '{"tags":{},"properties":{"desired":{"interval":6}}}';
		document.getElementById("twin-replace").click();`)
	b.waitUntil("the replaced twin", `document.getElementById("twin-status").textContent.startsWith("replaced")`)
	twin, err = s.GetTwin("dev1", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(twin.Tags) != 0 || fmt.Sprint(twin.Properties.Desired["interval"]) != "6" {
		t.Errorf("after the console's replace: tags %v, desired %v; want no tags and interval 6", twin.Tags, twin.Properties.Desired)
	}

	// A deployment: the example manifest, applied to edge1.
	b.do(`
		document.getElementById("deploy-device").value = "edge1";
		document.getElementById("deploy-example").click();
		document.getElementById("deploy-form").requestSubmit();`)
	b.waitUntil("the applied deployment", `document.getElementById("deploy-status").textContent.startsWith("applied to edge1")`)
	agentTwin, err := s.GetTwin("edge1", "$edgeAgent")
	if err != nil {
		t.Fatal(err)
	}
	modules, _ := agentTwin.Properties.Desired["modules"].(map[string]any)
	sensor, _ := modules["tempSensor"].(map[string]any)
	settings, _ := sensor["settings"].(map[string]any)
	if settings["image"] != "outpost/tempsensor:dev" {
		t.Errorf("$edgeAgent desired modules after the console's deployment = %v; want the example's tempSensor image", modules)
	}

	shot := b.screenshot()
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil || cfg.Width < 800 || cfg.Height < 600 {
		t.Errorf("screenshot: %dx%d, err %v; want a PNG of at least 800x600", cfg.Width, cfg.Height, err)
	}
	path := filepath.Join(t.TempDir(), "console.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if *consoleScreenshot != "" {
		keep := strings.TrimSuffix(*consoleScreenshot, ".png") + "-" + scheme + ".png"
		if err := os.WriteFile(keep, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s", keep)
	}

	// The module table follows the agent's reports without a reload.
	report("backoff", 1)
	b.waitUntil("tempSensor in backoff", moduleStatus+` === "backoff"`)

	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

// consoleClient connects a device or module client to s over MQTT/TLS, after setup has
// registered its handlers, and closes it when the test ends.
func consoleClient(t *testing.T, s *fakehub.Server, connStr string, setup func(*moduleclient.Client)) *moduleclient.Client {
	t.Helper()
	_, portText, err := net.SplitHostPort(s.MQTTAddress())
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatal(err)
	}
	c, err := moduleclient.NewFromConnectionString(connStr, moduleclient.Options{CAFile: s.CAFile(), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if setup != nil {
		setup(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}
