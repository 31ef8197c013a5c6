package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/twin"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// Cloud is what the hub needs from its link to IoT Hub for twins, direct methods, C2D and
// its own configuration. *upstream.Client implements it (package upstream documents each
// method); tests use a fake. Every call may fail with an error wrapping upstream.ErrOffline
// while the link is down: the hub then answers from its caches and tries again when the
// link is back.
//
// The On* registrations are made once, by New; the handlers run on the link's goroutines
// and only hand the work on. Attach is called once per Run, for the hub's own module
// identity {edge}/$edgeHub with Subscriptions{Desired: true}, so that changes of the hub's
// configuration arrive; attaching the local clients (with the subscriptions that make
// their desired patches, method calls and C2D messages arrive) is the presence logic's job.
type Cloud interface {
	// Connected reports whether the link is up. The hub polls it to notice a reconnection
	// (see Server.CloudStateChanged for a faster, lossless signal).
	Connected() bool
	// Attach asks IoT Hub to forward what subs name for id (upstream.Client.Attach).
	Attach(ctx context.Context, id sas.Identity, subs upstream.Subscriptions) error
	// GetTwin returns the device-facing twin document of id.
	GetTwin(ctx context.Context, id sas.Identity) ([]byte, error)
	// UpdateReported applies a reported patch to id's twin and returns the new version.
	UpdateReported(ctx context.Context, id sas.Identity, patch []byte) (int64, error)
	// RespondMethod answers the method request rid that OnMethod delivered for id.
	RespondMethod(ctx context.Context, id sas.Identity, rid string, status int, payload []byte) error
	// OnDesired registers the handler of desired patches (body with "$version").
	OnDesired(h func(id sas.Identity, patch []byte, version int64))
	// OnMethod registers the handler of direct method requests.
	OnMethod(h func(id sas.Identity, name, rid string, payload []byte))
	// OnC2D registers the handler of C2D messages for leaf devices; the message is
	// acknowledged to IoT Hub only when the handler returns nil.
	OnC2D(h func(id sas.Identity, m iothub.Message) error)
}

var _ Cloud = (*upstream.Client)(nil)

// Twin relaying, sizes and timings.
const (
	// twinQueueSize bounds the twin jobs (GETs, reported acknowledgements, desired patches)
	// waiting for one identity's worker; a GET beyond it is answered 429.
	twinQueueSize = 32
	// flushStripes is the number of locks that keep two flushes of one identity apart.
	flushStripes = 64
)

// twinJob is work for one identity's twin worker.
type twinJob struct {
	kind    twinJobKind
	rid     string         // get, patched: the client's request id
	patch   map[string]any // desired: the patch without "$version"
	version int64          // desired: its version
}

type twinJobKind int

const (
	jobGet     twinJobKind = iota + 1 // answer a twin GET
	jobPatched                        // answer a reported patch already stored
	jobDesired                        // a desired patch from IoT Hub
)

// twinSync relays twins between local clients and IoT Hub (twin*.go):
//
//   - a client's GET is answered from IoT Hub when the link is up, from the cache when it
//     is not (an empty twin when nothing is cached), and the answer is cached;
//   - a client's reported patch is validated, stored durably (merged into the cached twin
//     and queued, twincache) and acknowledged; queued patches go to IoT Hub in order,
//     composed, at most every Options.ReportedSyncInterval per identity;
//   - desired patches from IoT Hub go to the client when it is connected and subscribed;
//   - every time a client subscribes to desired patches, and for every subscribed client
//     each time the link comes back, the hub GETs the twin and sends the client the
//     difference between the desired properties it last received and the current ones, as
//     one desired patch carrying the current $version. So changes made while the client or
//     the hub was away always arrive, even to a client that never asked for its twin
//     (edgeHub only resyncs clients whose twin it happens to have cached, GH#2757, #7148).
//
// All twin work of one identity runs on one worker goroutine, in order (jobs queued by the
// MQTT hooks and the cloud handlers), which is what keeps a client's "seen" record
// consistent. Workers exist while they have work. Flushes of reported patches run on that
// worker (to answer a patch with IoT Hub's version) or on the flusher goroutine, one at a
// time per identity (flushLocks).
type twinSync struct {
	s     *Server
	cloud Cloud // nil: answer from the cache only
	cache *twincache.Cache
	log   *slog.Logger

	mu      sync.Mutex
	workers map[sas.Identity]*twinWorker

	flushLocks [flushStripes]sync.Mutex
	flushMu    sync.Mutex
	lastFlush  map[sas.Identity]time.Time // real time of the last flush attempt
	flushWake  chan struct{}              // size 1
}

// twinWorker is the goroutine owning one identity's twin work while it has some.
type twinWorker struct {
	id     sas.Identity
	jobs   chan twinJob
	resync bool // guarded by twinSync.mu: a resync is owed once the queue is empty
}

func newTwinSync(s *Server) *twinSync {
	return &twinSync{
		s:         s,
		cloud:     s.deps.Cloud,
		cache:     s.deps.Twins,
		log:       s.log.With("component", "twins"),
		workers:   map[sas.Identity]*twinWorker{},
		lastFlush: map[sas.Identity]time.Time{},
		flushWake: make(chan struct{}, 1),
	}
}

// enqueue hands a job to id's worker, starting it if needed. It reports false when the
// worker's queue is full or the hub is stopping.
func (t *twinSync) enqueue(id sas.Identity, j twinJob) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.workerLocked(id)
	if !ok {
		return false
	}
	select {
	case w.jobs <- j:
		return true
	default:
		return false
	}
}

// requestResync makes id's worker resynchronise the client's desired properties once its
// queued jobs are done (several requests coalesce into one).
func (t *twinSync) requestResync(id sas.Identity) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w, ok := t.workerLocked(id); ok {
		w.resync = true
	}
}

func (t *twinSync) workerLocked(id sas.Identity) (*twinWorker, bool) {
	if w := t.workers[id]; w != nil {
		return w, true
	}
	w := &twinWorker{id: id, jobs: make(chan twinJob, twinQueueSize)}
	if !t.s.bg.goFunc(func() { t.work(w) }) {
		return nil, false
	}
	t.workers[id] = w
	return w, true
}

// work runs w's jobs, then its owed resync, and returns when there is nothing left; the
// check and the removal happen under t.mu, where jobs are queued, so none is stranded.
func (t *twinSync) work(w *twinWorker) {
	for {
		select {
		case j := <-w.jobs:
			t.do(w.id, j)
			continue
		default:
		}
		t.mu.Lock()
		switch {
		case w.resync:
			w.resync = false
			t.mu.Unlock()
			t.resync(w.id)
		case len(w.jobs) == 0:
			delete(t.workers, w.id)
			t.mu.Unlock()
			return
		default:
			t.mu.Unlock()
		}
	}
}

func (t *twinSync) do(id sas.Identity, j twinJob) {
	ctx := t.s.baseContext()
	if ctx.Err() != nil {
		return
	}
	switch j.kind {
	case jobGet:
		t.get(ctx, id, j.rid)
	case jobPatched:
		t.patched(ctx, id, j.rid)
	case jobDesired:
		t.desired(ctx, id, j.patch, j.version)
	}
}

// parseDeviceTwin reads IoT Hub's device-facing document,
// {"desired":{...,"$version":n},"reported":{...,"$version":m}} (a missing section is
// empty at version 0), into a twin.Twin.
func parseDeviceTwin(body []byte) (*twin.Twin, error) {
	doc, err := twin.DecodePatch(body)
	if err != nil {
		return nil, err
	}
	t := &twin.Twin{Tags: map[string]any{}}
	for name, sec := range map[string]struct {
		props   *map[string]any
		version *int64
	}{"desired": {&t.Desired, &t.DesiredVersion}, "reported": {&t.Reported, &t.ReportedVersion}} {
		m := map[string]any{}
		switch v := doc[name].(type) {
		case nil:
		case map[string]any:
			m = v
		default:
			return nil, fmt.Errorf("twin document: %q is not an object", name)
		}
		if n, ok := m["$version"].(json.Number); ok {
			if *sec.version, err = n.Int64(); err != nil {
				return nil, fmt.Errorf("twin document: %s $version %q: %w", name, n, err)
			}
		}
		*sec.props = twin.StripReadOnly(m)
	}
	return t, nil
}

// errorBody is IoT Hub's error shape, {"errorCode":n,"message":"..."}.
func errorBody(code int, format string, args ...any) []byte {
	b, _ := json.Marshal(struct {
		ErrorCode int    `json:"errorCode"`
		Message   string `json:"message"`
	}{code, fmt.Sprintf(format, args...)}) // cannot fail
	return b
}

// encodePatch renders a twin patch for the wire: compact, keys sorted, numbers as their
// JSON text, nulls kept.
func encodePatch(p map[string]any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p) // maps of decoded JSON values always encode
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// identityOf returns the identity of a client id ("{d}" or "{d}/{m}"), which the
// authentication hook made equal to the client's identity.
func identityOf(clientID string) (sas.Identity, bool) {
	d, m, err := iothub.ParseClientID(clientID)
	if err != nil {
		return sas.Identity{}, false
	}
	return sas.Identity{DeviceID: d, ModuleID: m}, true
}

// withTimeout is context.WithTimeout that ignores a zero timeout.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
