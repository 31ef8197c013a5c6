package hub_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

func TestTwinGet_FromTheCloudOnlineFromTheCacheOffline(t *testing.T) {
	fc := newFakeCloud()
	fc.patchDesired(t, modA, `{"rate":5}`, false)
	r := newRelayEnv(t, fc)
	c := r.connect(modA)
	c.subscribe(t, iothub.TwinResponseFilter)

	steps := []struct {
		name   string
		online bool
		want   string
	}{
		{"offline, nothing cached: an empty twin", false, `{"desired":{"$version":1},"reported":{"$version":1}}`},
		{"online: IoT Hub's twin", true, `{"desired":{"$version":2,"rate":5},"reported":{"$version":1}}`},
		{"offline again: the cached twin", false, `{"desired":{"$version":2,"rate":5},"reported":{"$version":1}}`},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			fc.setConnected(st.online)
			rid := string(rune('a' + i))
			c.request(t, iothub.TwinGetTopic(rid), " ") // Node and Python send a space
			top, body := c.twinResponse(t)
			if top.Status != 200 || top.RequestID != rid || top.HasVersion {
				t.Fatalf("answer %+v", top)
			}
			if got := canon(t, body); got != st.want {
				t.Fatalf("twin %s, want %s", got, st.want)
			}
		})
	}
	t.Run("offline, after a reported patch: merged into the cached twin", func(t *testing.T) {
		c.request(t, iothub.TwinPatchReportedTopic("p1"), `{"temp":21}`)
		if top, _ := c.twinResponse(t); top.Status != 204 || top.HasVersion {
			t.Fatalf("patch answer %+v, want 204 without a version (offline)", top)
		}
		c.request(t, iothub.TwinGetTopic("g"), "")
		_, body := c.twinResponse(t)
		if got, want := canon(t, body), `{"desired":{"$version":2,"rate":5},"reported":{"$version":2,"temp":21}}`; got != want {
			t.Fatalf("twin %s, want %s", got, want)
		}
	})
}

func TestReportedPatch_InvalidIsRefusedWith400(t *testing.T) {
	fc := newFakeCloud()
	r := newRelayEnv(t, fc)
	c := r.connect(modA)
	c.subscribe(t, iothub.TwinResponseFilter)
	deep := strings.Repeat(`{"a":`, 11) + "{}" + strings.Repeat("}", 11)
	tests := []struct {
		name, body string
		code       string
	}{
		{"not JSON", `{"a":`, "400006"},
		{"an array", `[1]`, "400006"},
		{"a key with a dot", `{"a.b":1}`, "400004"},
		{"a key with a dollar", `{"$a":1}`, "400004"},
		{"too deep", deep, "400004"},
		{"a string over 4 KB", `{"s":"` + strings.Repeat("x", 4097) + `"}`, "400004"},
		{"an integer out of range", `{"n":4503599627370496}`, "400004"},
		{"a null in an array", `{"l":[1,null]}`, "400004"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rid := "r" + string(rune('a'+i))
			c.request(t, iothub.TwinPatchReportedTopic(rid), tt.body)
			top, body := c.twinResponse(t)
			if top.Status != 400 || top.RequestID != rid {
				t.Fatalf("answer %+v %s, want 400", top, body)
			}
			if !strings.Contains(string(body), `"errorCode":`+tt.code) {
				t.Fatalf("body %s, want errorCode %s", body, tt.code)
			}
		})
	}
	t.Run("a merged document over 32 KB", func(t *testing.T) {
		for i := 0; i < 8; i++ {
			c.request(t, iothub.TwinPatchReportedTopic("big"), `{"k`+string(rune('a'+i))+`":"`+strings.Repeat("y", 4090)+`"}`)
			top, _ := c.twinResponse(t)
			if i < 7 && top.Status != 204 || i == 7 && top.Status != 400 {
				t.Fatalf("patch %d: status %d", i, top.Status)
			}
		}
	})
	waitFor(t, "the valid patches to reach the cloud", func() bool { return len(fc.reportedOf(t, modA)) == 7 })
	for _, p := range fc.reportedCalls(modA) {
		if strings.Contains(p, "a.b") || strings.Contains(p, `"kh"`) {
			t.Fatalf("a refused patch went upstream: %.80s", p)
		}
	}
}

func TestReportedPatch_OfflinePatchesReachTheCloudComposedAfterReconnect(t *testing.T) {
	fc := newFakeCloud()
	fc.setConnected(false)
	r := newRelayEnv(t, fc)
	c := r.connect(modA)
	c.subscribe(t, iothub.TwinResponseFilter)
	for i, p := range []string{`{"a":1,"o":{"x":1}}`, `{"a":null,"b":2}`, `{"o":{"y":2}}`} {
		rid := string(rune('1' + i))
		c.request(t, iothub.TwinPatchReportedTopic(rid), p)
		top, _ := c.twinResponse(t)
		if top.Status != 204 || top.RequestID != rid || top.HasVersion {
			t.Fatalf("answer %+v, want 204 without $version while offline", top)
		}
	}
	// The patches are on disk: a hub restart while offline loses nothing.
	c.Disconnect(0)
	r.restart()
	if n := len(fc.reportedCalls(modA)); n != 0 {
		t.Fatalf("%d patches sent while offline", n)
	}
	fc.setConnected(true)
	waitFor(t, "the patches to reach the cloud", func() bool { return len(fc.reportedCalls(modA)) > 0 })
	if got, want := fc.reportedCalls(modA), []string{`{"a":null,"b":2,"o":{"x":1,"y":2}}`}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("sent %v, want one composed patch %v", got, want)
	}
	if got := canon(t, twinJSON(t, fc.reportedOf(t, modA))); got != `{"b":2,"o":{"x":1,"y":2}}` {
		t.Fatalf("cloud reported %s", got)
	}
}

func twinJSON(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReportedPatch_OnlineAnswerCarriesIoTHubsVersion(t *testing.T) {
	fc := newFakeCloud()
	r := newRelayEnv(t, fc, withOptions(func(o *hub.Options) { o.ReportedSyncInterval = time.Hour }))
	c := r.connect(modA)
	c.subscribe(t, iothub.TwinResponseFilter)
	c.request(t, iothub.TwinPatchReportedTopic("1"), `{"a":1}`)
	if top, _ := c.twinResponse(t); top.Status != 204 || !top.HasVersion || top.Version != 2 {
		t.Fatalf("first answer %+v, want 204 with IoT Hub's $version 2", top)
	}
	// Within the sync interval the patch is only queued: no version to tell.
	c.request(t, iothub.TwinPatchReportedTopic("2"), `{"b":1}`)
	if top, _ := c.twinResponse(t); top.Status != 204 || top.HasVersion {
		t.Fatalf("second answer %+v, want 204 without a version", top)
	}
	if n := len(fc.reportedCalls(modA)); n != 1 {
		t.Fatalf("%d patches sent, want 1 (the second waits for the interval)", n)
	}
}
