package fakehub

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func TestControl_HealthNeedsNoToken(t *testing.T) {
	h := newSvcHarness(t)
	resp := h.send(svcReq{method: "GET", path: "/fake/health", noAuth: true})
	if resp.status != 200 || !strings.Contains(string(resp.body), `"ok"`) {
		t.Fatalf("health = %d %s", resp.status, resp.body)
	}
	// Everything else under /fake/ needs a policy token.
	for _, path := range []string{"/fake/events", "/fake/connections", "/fake/events/stream"} {
		wantError(t, h.send(svcReq{method: "GET", path: path, noAuth: true}), 401, 401002, "IotHubUnauthorizedAccess")
	}
}

func TestControl_Endpoints(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("dev1", false)

	t.Run("throttle", func(t *testing.T) {
		h := h.with(t)
		for _, on := range []bool{true, false} {
			resp := h.call("PUT", "/fake/control/throttle", fmt.Sprintf(`{"enabled":%v}`, on))
			if resp.status != 204 || h.s.Throttled() != on {
				t.Fatalf("throttle %v: %d %s, Throttled() = %v", on, resp.status, resp.body, h.s.Throttled())
			}
		}
	})
	t.Run("refuse auth", func(t *testing.T) {
		h := h.with(t)
		if resp := h.call("PUT", "/fake/control/auth", `{"refuse":true}`); resp.status != 204 {
			t.Fatalf("refuse: %d %s", resp.status, resp.body)
		}
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("ssl://" + h.s.MQTTAddress()).
			SetClientID("dev1").SetUsername(h.host + "/dev1/?api-version=2021-04-12").
			SetPassword(h.deviceToken("dev1", time.Now().Add(time.Hour))).SetTLSConfig(h.tls.Clone()).
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second))
		tok := c.Connect()
		if !tok.WaitTimeout(15*time.Second) || tok.Error() == nil {
			c.Disconnect(0)
			t.Fatalf("CONNECT succeeded while auth is refused (err %v)", tok.Error())
		}
		if resp := h.call("PUT", "/fake/control/auth", `{"refuse":false}`); resp.status != 204 {
			t.Fatalf("accept: %d %s", resp.status, resp.body)
		}
		h.svcMQTT("dev1").Disconnect(0)
	})
	t.Run("delay", func(t *testing.T) {
		h := h.with(t)
		for _, body := range []string{`{"delay":"20ms"}`, `{"delay":"0s"}`} {
			if resp := h.call("PUT", "/fake/control/delay", body); resp.status != 204 {
				t.Fatalf("delay %s: %d %s", body, resp.status, resp.body)
			}
		}
	})
	t.Run("network cut and restore", func(t *testing.T) {
		h := h.with(t)
		c := h.svcMQTT("dev1")
		svcCheckFor(t, 5*time.Second, func() error {
			if n := len(h.connections()); n != 1 {
				return fmt.Errorf("%d connections, want 1", n)
			}
			return nil
		})
		if resp := h.call("POST", "/fake/control/network/cut", nil); resp.status != 204 {
			t.Fatalf("cut: %d %s", resp.status, resp.body)
		}
		svcCheckFor(t, 5*time.Second, func() error {
			if c.IsConnectionOpen() {
				return fmt.Errorf("the client is still connected")
			}
			return nil
		})
		svcCheckFor(t, 5*time.Second, func() error {
			if n := len(h.connections()); n != 0 {
				return fmt.Errorf("%d connections after the cut, want 0", n)
			}
			return nil
		})
		if resp := h.call("POST", "/fake/control/network/restore", nil); resp.status != 204 {
			t.Fatalf("restore: %d %s", resp.status, resp.body)
		}
		h.svcMQTT("dev1")
		svcCheckFor(t, 5*time.Second, func() error {
			// The hub may list the connection a moment after the client saw CONNACK.
			conns := h.connections()
			if len(conns) != 1 || conns[0].ClientID != "dev1" || !conns[0].TLS {
				return fmt.Errorf("connections after restore = %s", svcString(conns))
			}
			return nil
		})
	})
	t.Run("bad bodies", func(t *testing.T) {
		h := h.with(t)
		for _, c := range []struct{ path, body string }{
			{"/fake/control/throttle", `{}`},
			{"/fake/control/throttle", `{"enabled":"yes"}`},
			{"/fake/control/auth", `{"refuse":null}`},
			{"/fake/control/delay", `{"delay":"soon"}`},
			{"/fake/control/delay", `{"delay":"-1s"}`},
			{"/fake/control/delay", `{"delay":200}`},
			{"/fake/control/delay", `{`},
		} {
			wantError(t, h.call("PUT", c.path, c.body), 400, 400004, "ArgumentInvalid")
		}
	})
}

// connections reads GET /fake/connections.
func (h *svcHarness) connections() []Connection {
	h.t.Helper()
	resp := h.call("GET", "/fake/connections", nil)
	if resp.status != 200 {
		h.t.Fatalf("GET /fake/connections: %d %s", resp.status, resp.body)
	}
	var out []Connection
	svcDecode(h.t, resp, &out)
	return out
}

// events reads GET /fake/events with the given query.
func (h *svcHarness) events(query string) []eventJSON {
	h.t.Helper()
	resp := h.call("GET", "/fake/events?"+query, nil)
	if resp.status != 200 {
		h.t.Fatalf("GET /fake/events?%s: %d %s", query, resp.status, resp.body)
	}
	var out []eventJSON
	svcDecode(h.t, resp, &out)
	return out
}

func TestControl_EventsLongPollAndStream(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("dev1", false)
	if got := h.events(""); len(got) != 0 {
		t.Fatalf("events before any message = %s", svcString(got))
	}

	// Open the stream first so that it has to deliver live events.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := h.openStream(ctx, "")

	// A long poll, usually already waiting when the message arrives (either way it must
	// answer with the message).
	polled := make(chan []eventJSON, 1)
	pollReq, err := http.NewRequest("GET", h.base+"/fake/events?after=0&wait=30s", nil)
	if err != nil {
		t.Fatal(err)
	}
	pollReq.Header.Set("Authorization", h.serviceToken())
	go func() { // no t.Fatal here: it is not the test goroutine
		var evs []eventJSON
		if resp, err := h.client.Do(pollReq); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&evs)
			resp.Body.Close()
		}
		polled <- evs
	}()

	c := h.svcMQTT("dev1")
	svcWait(t, c.Publish("devices/dev1/messages/events/%24.ct=application%2Fjson&color=red", 1, false, `{"t":21.5}`), "publish 1")
	svcWait(t, c.Publish("devices/dev1/messages/events/", 1, false, []byte{0xff, 0x00, 0x01}), "publish 2")

	var first []eventJSON
	select {
	case first = <-polled:
	case <-time.After(20 * time.Second):
		t.Fatal("the long poll did not return after a message was published")
	}
	if len(first) == 0 || first[0].DeviceID != "dev1" || first[0].BodyText == nil || *first[0].BodyText != `{"t":21.5}` ||
		string(first[0].Body) != `{"t":21.5}` || first[0].Properties["color"] != "red" {
		t.Fatalf("long-polled events = %s", svcString(first))
	}

	var all []eventJSON
	svcCheckFor(t, 10*time.Second, func() error {
		all = h.events("after=0")
		if len(all) < 2 {
			return fmt.Errorf("%d events, want 2", len(all))
		}
		return nil
	})
	bin := all[1]
	if bin.BodyText != nil || string(bin.Body) != "\xff\x00\x01" {
		t.Errorf("binary event = %s, want no bodyText", svcString(bin))
	}
	raw := h.call("GET", "/fake/events?after=0", nil)
	if !strings.Contains(string(raw.body), `"body":"`+base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, 0x01})+`"`) {
		t.Errorf("body is not base64 in %s", raw.body)
	}
	if got := h.events(fmt.Sprintf("after=%d", all[0].Seq)); len(got) != 1 || got[0].Seq != all[1].Seq {
		t.Errorf("after=%d = %s, want only seq %d", all[0].Seq, svcString(got), all[1].Seq)
	}
	if got := h.events("after=0&limit=1"); len(got) != 1 || got[0].Seq != all[0].Seq {
		t.Errorf("limit=1 = %s", svcString(got))
	}
	start := time.Now()
	if got := h.events(fmt.Sprintf("after=%d&wait=50ms", all[1].Seq)); len(got) != 0 {
		t.Errorf("a long poll with nothing new = %s, want []", svcString(got))
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Errorf("a long poll with nothing new returned after %s, before its wait", time.Since(start))
	}
	for _, q := range []string{"after=-1", "after=x", "limit=0", "limit=1001", "wait=1h", "wait=soon"} {
		wantError(t, h.call("GET", "/fake/events?"+q, nil), 400, 400004, "ArgumentInvalid")
	}

	// The stream delivered both, with id = seq.
	for i := range 2 {
		ev := stream.next(t)
		if ev.id != strconv.FormatInt(all[i].Seq, 10) || ev.event.Seq != all[i].Seq {
			t.Fatalf("stream event %d = id %q seq %d, want %d", i, ev.id, ev.event.Seq, all[i].Seq)
		}
	}
	// Last-Event-ID resumes after the given event.
	resumed := h.openStream(ctx, strconv.FormatInt(all[0].Seq, 10))
	if ev := resumed.next(t); ev.event.Seq != all[1].Seq {
		t.Fatalf("resumed stream starts at %d, want %d", ev.event.Seq, all[1].Seq)
	}
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id    string
	event eventJSON
}

type sseStream struct {
	events chan sseEvent
}

// openStream connects to /fake/events/stream and parses events in the background.
func (h *svcHarness) openStream(ctx context.Context, lastEventID string) *sseStream {
	h.t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", h.base+"/fake/events/stream", nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", h.serviceToken())
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	client := &http.Client{Transport: h.client.Transport} // no overall timeout on a stream
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatalf("opening the stream: %v", err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		h.t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sseStream{events: make(chan sseEvent, 100)}
	go func() {
		defer resp.Body.Close()
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
		var cur sseEvent
		var data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if data != "" {
					if err := json.Unmarshal([]byte(data), &cur.event); err == nil {
						s.events <- cur
					}
				}
				cur, data = sseEvent{}, ""
			case strings.HasPrefix(line, "id: "):
				cur.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s
}

func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("no event on the stream within 20s")
	}
	return sseEvent{}
}

func TestControl_SendC2D(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("dev1", false)
	c := h.svcMQTT("dev1")
	got := make(chan mqtt.Message, 10)
	svcWait(t, c.Subscribe("devices/dev1/messages/devicebound/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }), "subscribe C2D")

	resp := h.send(svcReq{
		method: "POST",
		path:   "/fake/devices/dev1/messages/devicebound?iothub-messageid=m-1&iothub-app-Color=red",
		body:   "hello device",
		header: map[string]string{
			"iothub-correlationid":   "c-1",
			"iothub-contenttype":     "text/plain",
			"iothub-ack":             "full",
			"iothub-app-shape":       "round",
			"Content-Type":           "application/x-www-form-urlencoded", // ignored, as curl -d sends it
			"iothub-contentencoding": "utf-8",
		},
	})
	if resp.status != http.StatusAccepted {
		t.Fatalf("send: %d %s", resp.status, resp.body)
	}
	var sent struct {
		MessageID string `json:"messageId"`
	}
	svcDecode(t, resp, &sent)
	if sent.MessageID != "m-1" {
		t.Errorf("messageId = %q, want m-1", sent.MessageID)
	}

	var m mqtt.Message
	select {
	case m = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the device received no C2D message")
	}
	topic := m.Topic()
	if string(m.Payload()) != "hello device" {
		t.Errorf("payload = %q", m.Payload())
	}
	for _, want := range []string{"%24.mid=m-1", "%24.cid=c-1", "%24.ct=text%2Fplain", "Color=red", "shape=round", "iothub-ack=full"} {
		if !strings.Contains(topic, want) {
			t.Errorf("topic %q lacks %q", topic, want)
		}
	}

	t.Run("a generated message id", func(t *testing.T) {
		h := h.with(t)
		resp := h.call("POST", "/fake/devices/dev1/messages/devicebound", "x")
		var sent struct {
			MessageID string `json:"messageId"`
		}
		svcDecode(t, resp, &sent)
		if resp.status != 202 || sent.MessageID == "" {
			t.Fatalf("send = %d %s", resp.status, resp.body)
		}
	})
	t.Run("errors", func(t *testing.T) {
		h := h.with(t)
		wantError(t, h.call("POST", "/fake/devices/nodev/messages/devicebound", "x"), 404, 404001, "DeviceNotFound")
		wantError(t, h.call("POST", "/fake/devices/dev1/messages/devicebound", strings.Repeat("x", 64*1024+1)), 413, 413001, "MessageTooLarge")
		wantError(t, h.call("POST", "/fake/devices/dev1/messages/devicebound?iothub-ack=sometimes", "x"), 400, 400004, "ArgumentInvalid")
		wantError(t, h.call("POST", "/fake/devices/dev1/messages/devicebound?iothub-expiry=tomorrow", "x"), 400, 400004, "ArgumentInvalid")
	})
}

func TestControl_C2DQueueFull(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("dev1", false) // never connects, so nothing is delivered
	var last svcResp
	for i := range 60 {
		last = h.call("POST", "/fake/devices/dev1/messages/devicebound", fmt.Sprintf("m%d", i))
		if last.status != 202 {
			break
		}
	}
	wantError(t, last, 403, 403004, "DeviceMaximumQueueDepthExceeded")
	if n := h.s.PendingC2D("dev1"); n != 50 {
		t.Errorf("PendingC2D = %d, want 50", n)
	}
}

func TestC2DFromRequest(t *testing.T) {
	r, err := http.NewRequest("POST", "/fake/devices/d/messages/devicebound?iothub-app-CamelCase=q&iothub-messageid=fromquery&iothub-expiry=2030-01-02T15:04:05Z", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("iothub-messageid", "fromheader")
	r.Header.Set("iothub-app-CamelCase", "h")
	r.Header.Set("iothub-app-Other", "o")
	m, err := c2dFromRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	if m.MessageID != "fromquery" {
		t.Errorf("MessageID = %q, want the query's", m.MessageID)
	}
	want := map[string]string{"CamelCase": "q", "camelcase": "h", "other": "o"}
	if svcString(m.Properties) != svcString(want) {
		t.Errorf("Properties = %v, want %v", m.Properties, want)
	}
	if !m.ExpiryTime.Equal(time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC)) {
		t.Errorf("ExpiryTime = %v", m.ExpiryTime)
	}
}
