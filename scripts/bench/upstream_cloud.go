package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// The upstream scenarios run the fake IoT Hub as its own process (cmd/fakehub, built from
// this tree into the work directory), with the edge device edge1, its $edgeHub module and
// the load clients' modules registered, and talk to it over its fake-only HTTP API: the
// captured events (to count and time arrivals), the network cut and restore, the
// connection list.

// Identities of the upstream scenarios, all modules of the one edge device.
const (
	cloudHostname = "localhost" // the fake hub's host name: in its certificate and every SAS audience
	cloudEdge     = "edge1"
	cloudEdgeHub  = "$edgeHub"
)

// upFakehubBin builds cmd/fakehub once per harness run, into the work directory, so that the
// fake hub is the one of the tree measured.
type upFakehubBin struct {
	once sync.Once
	path string
	err  error
}

var upFakehubBuild upFakehubBin

func (b *upFakehubBin) get(ctx context.Context, s *settings) (string, error) {
	b.once.Do(func() {
		b.path = filepath.Join(s.Workdir, "bin", "fakehub")
		cmd := exec.CommandContext(ctx, s.Go, "build", "-trimpath", "-o", b.path, "./cmd/fakehub")
		cmd.Dir = s.Repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building cmd/fakehub: %w\n%s", err, out)
		}
	})
	return b.path, b.err
}

// fakeCloud is a running fake IoT Hub process.
type fakeCloud struct {
	proc   *proc
	dir    string // its data directory
	mqtt   string // host:port of its MQTT over TLS listener
	api    string // base URL of its plain HTTP API
	ca     string // its CA certificate, PEM
	token  string // iothubowner SAS token for the API
	client *http.Client
}

// startFakeCloud starts bin with a fresh data directory under workdir and the edge device, its
// $edgeHub and modules registered.
func startFakeCloud(ctx context.Context, bin, workdir string, modules []string) (*fakeCloud, error) {
	dir, err := os.MkdirTemp(workdir, "fakehub-")
	if err != nil {
		return nil, err
	}
	args := []string{"--data-dir", dir, "--hostname", cloudHostname,
		"--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--plain-http-addr", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "info", // the ready line is at info
		"--edge-device", cloudEdge, "--module", cloudEdge + "/" + cloudEdgeHub}
	for _, m := range modules {
		args = append(args, "--module", cloudEdge+"/"+m)
	}
	var ready struct {
		MQTT string `json:"mqtt_address"`
		HTTP string `json:"plain_http_address"`
		CA   string `json:"ca_file"`
		Svc  string `json:"service_connection_string_file"`
	}
	p, err := startProc("fakehub", bin, args, func(line string) bool {
		var l struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "fakehub ready" {
			return false
		}
		return json.Unmarshal([]byte(line), &ready) == nil
	}, 30*time.Second)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &fakeCloud{proc: p, dir: dir, mqtt: ready.MQTT, api: "http://" + ready.HTTP, ca: ready.CA,
		client: &http.Client{Timeout: 2 * time.Minute}}
	if err := c.signToken(ready.Svc); err != nil {
		_ = c.stop()
		return nil, err
	}
	return c, nil
}

func (c *fakeCloud) signToken(file string) error {
	text, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("fakehub service connection string: %w", err)
	}
	cs, err := sas.ParseConnectionString(strings.TrimSpace(string(text)))
	if err != nil {
		return fmt.Errorf("fakehub service connection string: %w", err)
	}
	c.token, err = cs.Token(time.Now(), 24*time.Hour)
	return err
}

// stop ends the process and removes its data directory.
func (c *fakeCloud) stop() error {
	err := c.proc.stop(10 * time.Second)
	if rmErr := os.RemoveAll(c.dir); err == nil {
		err = rmErr
	}
	return err
}

// moduleCS returns the connection string of a module of the edge device, as the fake hub
// wrote it into its data directory.
func (c *fakeCloud) moduleCS(module string) (sas.ConnectionString, error) {
	text, err := os.ReadFile(filepath.Join(c.dir, "devices", cloudEdge, module+".connection-string"))
	if err != nil {
		return sas.ConnectionString{}, fmt.Errorf("connection string of %s/%s: %w", cloudEdge, module, err)
	}
	return sas.ParseConnectionString(strings.TrimSpace(string(text)))
}

// mqttPort is the port of the MQTT over TLS listener.
func (c *fakeCloud) mqttPort() string {
	_, port, _ := net.SplitHostPort(c.mqtt)
	return port
}

// do sends one API request and decodes a JSON answer into out (nil: none expected).
func (c *fakeCloud) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.api+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", c.token)
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("fakehub %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("fakehub %s %s: %s: %s", method, path, resp.Status, b)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// cut and restore are the fake hub's network controls: cut drops every connection and
// refuses new ones until restore.
func (c *fakeCloud) cut(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/fake/control/network/cut", nil)
}

func (c *fakeCloud) restore(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/fake/control/network/restore", nil)
}

// linkUp reports whether the edge hub's one link ({edge}/$edgeHub) is connected.
func (c *fakeCloud) linkUp(ctx context.Context) (bool, error) {
	var conns []struct {
		ClientID string `json:"clientId"`
	}
	if err := c.do(ctx, http.MethodGet, "/fake/connections", &conns); err != nil {
		return false, err
	}
	for _, cn := range conns {
		if cn.ClientID == cloudEdge+"/"+cloudEdgeHub {
			return true, nil
		}
	}
	return false, nil
}

// waitLink polls until the link's state is up.
func (c *fakeCloud) waitLink(ctx context.Context, up bool) error {
	for {
		got, err := c.linkUp(ctx)
		if err != nil {
			return err
		}
		if got == up {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the edge hub's link to be up=%v: %w", up, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cloudEvent is a captured device-to-cloud message, as much of it as the scenarios read.
type cloudEvent struct {
	Seq      int64     `json:"seq"`
	DeviceID string    `json:"deviceId"`
	ModuleID string    `json:"moduleId"`
	Body     []byte    `json:"body"`
	Enqueued time.Time `json:"enqueuedTime"`
}

// events returns up to limit (at most 1000) captured events with seq > after; with wait >
// 0 it long-polls for the first one.
func (c *fakeCloud) events(ctx context.Context, after int64, limit int, wait time.Duration) ([]cloudEvent, error) {
	q := url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {strconv.Itoa(limit)}}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var evs []cloudEvent
	err := c.do(ctx, http.MethodGet, "/fake/events?"+q.Encode(), &evs)
	return evs, err
}

// maxEventsPage is the fake hub's largest page of events.
const maxEventsPage = 1000

// waitSeq waits until the fake hub has captured event seq and returns it: the arrival of
// the seq-th message, timed by the fake hub's own clock (enqueuedTime). Events are
// numbered from 1 in capture order, so this is one small long poll, whatever the traffic.
func (c *fakeCloud) waitSeq(ctx context.Context, seq int64) (cloudEvent, error) {
	for {
		evs, err := c.events(ctx, seq-1, 1, 30*time.Second)
		if err != nil {
			return cloudEvent{}, err
		}
		if len(evs) > 0 {
			// The oldest event held is later than seq only when seq fell out of the fake
			// hub's ring of 100,000: never while the scenarios wait for it.
			return evs[0], nil
		}
		if err := ctx.Err(); err != nil {
			return cloudEvent{}, err
		}
	}
}

// seqSearch returns the seq of the latest captured event (0: none), knowing that event
// known exists: the fake hub's API has no count, but "any event after s?" is one request,
// so an exponential then binary search finds it in about 2·log2(new events) requests.
func seqSearch(ctx context.Context, known int64, exists func(ctx context.Context, seq int64) (bool, error)) (int64, error) {
	lo, step := known, int64(1) // lo exists (or is 0)
	var hi int64                // does not exist
	for {
		ok, err := exists(ctx, lo+step)
		if err != nil {
			return 0, err
		}
		if !ok {
			hi = lo + step
			break
		}
		lo += step
		step *= 2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := exists(ctx, mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// exists reports whether event seq has been captured.
func (c *fakeCloud) exists(ctx context.Context, seq int64) (bool, error) {
	evs, err := c.events(ctx, seq-1, 1, 0)
	return len(evs) > 0, err
}

// latest returns the seq of the latest captured event, at least known.
func (c *fakeCloud) latest(ctx context.Context, known int64) (int64, error) {
	return seqSearch(ctx, known, c.exists)
}

// eventsRange returns the captured events with seq in (after, upto], page by page.
func (c *fakeCloud) eventsRange(ctx context.Context, after, upto int64) ([]cloudEvent, error) {
	var out []cloudEvent
	for after < upto {
		evs, err := c.events(ctx, after, int(min(upto-after, maxEventsPage)), 0)
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 {
			return nil, fmt.Errorf("fakehub: no events after seq %d, want up to %d", after, upto)
		}
		if evs[0].Seq != after+1 {
			return nil, fmt.Errorf("fakehub: event %d is no longer held (its ring keeps 100,000); oldest %d", after+1, evs[0].Seq)
		}
		for _, e := range evs {
			if e.Seq > upto {
				break
			}
			out = append(out, e)
		}
		after = evs[len(evs)-1].Seq
	}
	return out, nil
}
