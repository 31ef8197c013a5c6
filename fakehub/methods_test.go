package fakehub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
)

var methodTopic = regexp.MustCompile(`^\$iothub/methods/POST/([^/]+)/\?\$rid=([0-9]+)$`)

// answerMethods subscribes c to method requests and answers each with status and body; it
// records the requests it saw.
func answerMethods(t *testing.T, c paho.Client, status string, body string) *msgSink {
	t.Helper()
	seen := &msgSink{}
	tok := c.Subscribe("$iothub/methods/POST/#", 1, func(cl paho.Client, m paho.Message) {
		seen.handler(cl, m)
		g := methodTopic.FindStringSubmatch(m.Topic())
		if g == nil {
			return
		}
		cl.Publish("$iothub/methods/res/"+status+"/?$rid="+g[2], 1, false, body)
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	return seen
}

func TestMethod_Invoke(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := dial(t, pahoOptions(t, s, cs))
	seen := answerMethods(t, c, "201", `{"done":true}`)
	ctx := context.Background()

	resp, err := s.InvokeMethod(ctx, "dev1", "", fakehub.MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`{"delay":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 201 || string(resp.Payload) != `{"done":true}` {
		t.Fatalf("response = %d %s", resp.Status, resp.Payload)
	}
	req := seen.wait(t, "$iothub/methods/POST/reboot/")
	if !methodTopic.MatchString(req.Topic()) || string(req.Payload()) != `{"delay":3}` || req.Qos() != 0 {
		t.Fatalf("request %s %q qos %d", req.Topic(), req.Payload(), req.Qos())
	}

	// No payload goes out as JSON null.
	if _, err := s.InvokeMethod(ctx, "dev1", "", fakehub.MethodRequest{MethodName: "ping"}); err != nil {
		t.Fatal(err)
	}
	if req := seen.wait(t, "$iothub/methods/POST/ping/"); string(req.Payload()) != "null" {
		t.Fatalf("payload %q", req.Payload())
	}
}

func TestMethod_EmptyResponseIsNull(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, cs := fakehubtest.MustModule(t, s, "edge1", "filter")
	c := dial(t, pahoOptions(t, s, cs))
	answerMethods(t, c, "200", "")
	resp, err := s.InvokeMethod(context.Background(), "edge1", "filter", fakehub.MethodRequest{MethodName: "x"})
	if err != nil || resp.Status != 200 || string(resp.Payload) != "null" {
		t.Fatalf("response = %+v, %v", resp, err)
	}
}

func TestMethod_Errors(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "offline")
	_, cs := fakehubtest.MustDevice(t, s, "unsubscribed")
	dial(t, pahoOptions(t, s, cs))
	ctx := context.Background()
	cases := []struct {
		name   string
		device string
		req    fakehub.MethodRequest
		want   error
	}{
		{"unknown device", "ghost", fakehub.MethodRequest{MethodName: "m"}, fakehub.ErrNotFound},
		{"offline", "offline", fakehub.MethodRequest{MethodName: "m"}, fakehub.ErrDeviceNotOnline},
		{"connected but not subscribed", "unsubscribed", fakehub.MethodRequest{MethodName: "m"}, fakehub.ErrDeviceNotOnline},
		{"response timeout below 5", "offline", fakehub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 4}, fakehub.ErrInvalid},
		{"response timeout above 300", "offline", fakehub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 301}, fakehub.ErrInvalid},
		{"connect timeout above 300", "offline", fakehub.MethodRequest{MethodName: "m", ConnectTimeoutInSeconds: 301}, fakehub.ErrInvalid},
		{"bad method name", "offline", fakehub.MethodRequest{MethodName: "a/b"}, fakehub.ErrInvalid},
		{"payload not JSON", "offline", fakehub.MethodRequest{MethodName: "m", Payload: json.RawMessage("{")}, fakehub.ErrInvalid},
		{"payload over 128 KB", "offline", fakehub.MethodRequest{MethodName: "m",
			Payload: json.RawMessage(`"` + string(bytes.Repeat([]byte("a"), 128*1024)) + `"`)}, fakehub.ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.InvokeMethod(ctx, tc.device, "", tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMethod_WaitsForConnectTimeout(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	type result struct {
		resp fakehub.MethodResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := s.InvokeMethod(context.Background(), "dev1", "", fakehub.MethodRequest{MethodName: "hello", ConnectTimeoutInSeconds: 30})
		done <- result{resp, err}
	}()
	c := dial(t, pahoOptions(t, s, cs))
	answerMethods(t, c, "200", `"hi"`)
	select {
	case r := <-done:
		if r.err != nil || string(r.resp.Payload) != `"hi"` {
			t.Fatalf("result = %+v, %v", r.resp, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("invocation did not complete once the device subscribed")
	}
}

func TestMethod_ResponseTimeout(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := dial(t, pahoOptions(t, s, cs))
	sink := &msgSink{}
	subscribe(t, c, sink, "$iothub/methods/POST/#") // never answers
	start := time.Now()
	_, err := s.InvokeMethod(context.Background(), "dev1", "", fakehub.MethodRequest{MethodName: "slow", ResponseTimeoutInSeconds: 5})
	if !errors.Is(err, fakehub.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 5*time.Second {
		t.Fatalf("timed out after %v, before the 5 s response timeout", d)
	}
	// A late answer is ignored and the device keeps working.
	msg := sink.wait(t, "$iothub/methods/POST/slow/")
	rid := methodTopic.FindStringSubmatch(msg.Topic())[2]
	publish(t, c, "$iothub/methods/res/200/?$rid="+rid, 0, "{}")
	publish(t, c, "devices/dev1/messages/events/", 1, "alive")
	waitFor(t, "telemetry", func() bool { return len(s.Events(0, 0)) == 1 })
}

func TestMethod_ContextCancel(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "dev1")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.InvokeMethod(ctx, "dev1", "", fakehub.MethodRequest{MethodName: "m", ConnectTimeoutInSeconds: 60})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}
