package hub

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-edge/outpost/runtime/store"
)

// StatsSource is where the Collector reads the hub's counters: *Server.
type StatsSource interface {
	Stats() Stats
}

// StoreStatsSource is where the Collector reads the store's counters and queues:
// *store.Store. Stats is called once per scrape.
type StoreStatsSource interface {
	Stats() store.Stats
}

// UpstreamState reports whether the link to IoT Hub is up: *upstream.Client. Connected is
// called once per scrape and must not block.
type UpstreamState interface {
	Connected() bool
}

// CollectorOptions are the Collector's optional sources.
type CollectorOptions struct {
	// Upstream is the upstream link; when nil, upstream_connected is 0 (messages routed to
	// $upstream stay stored).
	Upstream UpstreamState
	// StoreMaxBytes is the store's cap (store.Options.MaxBytes), exported as
	// store_max_bytes when the store's Stats report none (a *store.Store reports the cap
	// in force, SetMaxBytes included, which takes precedence); 0 (no cap) exports nothing,
	// so that store_bytes / store_max_bytes is never a division by zero.
	StoreMaxBytes int64
}

// Collector is a prometheus.Collector of the hub's and the store's statistics. It reads
// Server.Stats and store.Stats at each scrape, so that the hot paths keep their atomic
// counters and nothing else: no metric is updated per message. It is safe for concurrent
// scrapes; register it with a prometheus.Registry.
//
// Names follow Azure IoT Edge's edgeHub built-in metrics (doc/BuiltInMetrics.md in
// Azure/iotedge, served on port 9600 as ours) where the two measure the same thing, with
// the prefix "outpost_". Azure labels most of its metrics by client identity and route;
// ours are labelled by what the hub counts (sender kind, endpoint, reason), which keeps
// the series few. Every name below starts with outpost_edgehub_:
//
//   - messages_received_total{source}: edgehub_messages_received_total, by sender kind
//     (device, module) rather than {id, route_output}.
//   - messages_sent_total{endpoint}: edgehub_messages_sent_total, by endpoint ("$upstream",
//     "/modules/{m}/inputs/{i}") rather than {from, to, from_route_output,
//     to_route_input, priority}.
//   - queue_length{endpoint,priority}: edgehub_queue_length, the same; the queues of all
//     senders to $upstream (one each, upstream_lanes.go) are summed under "$upstream".
//   - queue_bytes{endpoint,priority}: no Azure equivalent; summed the same way.
//   - messages_dropped_total{reason}: edgehub_messages_dropped_total, with Azure's reasons
//     no_route and ttl_expiry, and the store's cap, deadletter and deleted.
//   - messages_deadlettered_total{reason}: corrupt, unacknowledged, rejected.
//   - messages_refused_total{reason}: edgehub_messages_unack_total (whose one reason is
//     storage_failure); ours are too_large, malformed, acl, qos2, store_full, store_error.
//   - messages_stored_total, requests_ignored_total: no Azure equivalent.
//   - delivery_failures_total, deliveries_deferred_total: edgehub_operation_retry_total,
//     not by operation.
//   - connected_clients: edgehub_connected_clients, the same.
//   - client_connect_success_total, client_connect_failed_total:
//     edgehub_client_connect_success_total and edgehub_client_connect_failed_total,
//     without their id and reason labels.
//   - client_revoked_total: connections closed because their credentials were revoked.
//   - upstream_connected: 0 or 1 (Azure's edgehub_offline_count_total counts the drops).
//   - store_bytes, store_max_bytes, store_file_bytes, store_messages,
//     store_appends_total, store_commits_total: no Azure equivalent.
//
// Azure also puts iothub and edge_device labels on every metric; cmd/edgehub adds them
// with prometheus.WrapRegistererWith.
type Collector struct {
	hub   StatsSource
	store StoreStatsSource
	opts  CollectorOptions
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector reading hub (the *Server) and st (the *store.Store the
// hub uses). It returns an error wrapping ErrConfig when either is nil or the cap is
// negative.
func NewCollector(hub StatsSource, st StoreStatsSource, opts CollectorOptions) (*Collector, error) {
	switch {
	case hub == nil:
		return nil, fmt.Errorf("%w: metrics: no hub statistics source", ErrConfig)
	case st == nil:
		return nil, fmt.Errorf("%w: metrics: no store statistics source", ErrConfig)
	case opts.StoreMaxBytes < 0:
		return nil, fmt.Errorf("%w: metrics: StoreMaxBytes %d is negative", ErrConfig, opts.StoreMaxBytes)
	}
	return &Collector{hub: hub, store: st, opts: opts}, nil
}

const metricPrefix = "outpost_edgehub_"

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricPrefix+name, help, labels, nil)
}

var (
	descReceived = newDesc("messages_received_total",
		"Telemetry messages received from clients, by sender kind (device or module).", "source")
	descSent = newDesc("messages_sent_total",
		"Messages delivered and acknowledged, by endpoint ($upstream or /modules/{m}/inputs/{i}).", "endpoint")
	descQueueLength = newDesc("queue_length",
		"Messages waiting in an endpoint's queue, by priority.", "endpoint", "priority")
	descQueueBytes = newDesc("queue_bytes",
		"Bytes of the messages waiting in an endpoint's queue, by priority (a body shared by several queues counts in each).", "endpoint", "priority")
	descDropped = newDesc("messages_dropped_total",
		"Messages removed undelivered: no_route (acknowledged, matched no route), ttl_expiry, cap (removed to make room under drop-oldest), deadletter, deleted (with their queue); one per queue entry except no_route.", "reason")
	descDeadLettered = newDesc("messages_deadlettered_total",
		"Messages dead-lettered by the hub, by reason: corrupt, unacknowledged (a module did not acknowledge it after the maximum attempts), rejected.", "reason")
	descRefused = newDesc("messages_refused_total",
		"Publishes refused without a PUBACK (the connection was closed), by reason: too_large, malformed, acl (also counts refused subscriptions), qos2, store_full, store_error.", "reason")
	descStored = newDesc("messages_stored_total",
		"Telemetry messages appended to the store and acknowledged.")
	descIgnored = newDesc("requests_ignored_total",
		"Twin requests (GET, reported patch) acknowledged and ignored because the hub runs without a twin cache; stays 0 while twins are served.")
	descFailures = newDesc("delivery_failures_total",
		"Unacknowledged module deliveries and failed upstream sends (each is retried or dead-lettered).")
	descDeferred = newDesc("deliveries_deferred_total",
		"Deliveries put off because the module was not connected or not subscribed, or there was no upstream.")
	descClients = newDesc("connected_clients",
		"Clients connected to the hub now.")
	descConnectOK = newDesc("client_connect_success_total",
		"Client connections accepted.")
	descConnectFailed = newDesc("client_connect_failed_total",
		"Client connections refused (authentication failed or MQTT version not 3.1.1).")
	descRevoked = newDesc("client_revoked_total",
		"Connections closed by the hub because their credentials were no longer valid.")
	descUpstream = newDesc("upstream_connected",
		"1 while the link to IoT Hub is up, 0 otherwise (also when the hub has none).")
	descStoreBytes = newDesc("store_bytes",
		"Accounted bytes of the stored messages, the quantity store_max_bytes caps.")
	descStoreMax = newDesc("store_max_bytes",
		"The store's byte cap (absent when there is none).")
	descStoreFile = newDesc("store_file_bytes",
		"Size of the store's file; freed pages are reused, the file never shrinks.")
	descStoreMessages = newDesc("store_messages",
		"Message bodies stored (a body shared by several queues counts once).")
	descStoreAppends = newDesc("store_appends_total",
		"Messages appended to the store.")
	descStoreCommits = newDesc("store_commits_total",
		"Store write transactions committed (appends are group-committed, so fewer than appends).")

	allDescs = []*prometheus.Desc{
		descReceived, descSent, descQueueLength, descQueueBytes, descDropped, descDeadLettered,
		descRefused, descStored, descIgnored, descFailures, descDeferred, descClients,
		descConnectOK, descConnectFailed, descRevoked, descUpstream, descStoreBytes,
		descStoreMax, descStoreFile, descStoreMessages, descStoreAppends, descStoreCommits,
	}
)

// dropReasons renames the store's drop reasons to Azure's label values where Azure has
// one; others keep the store's name.
var dropReasons = map[string]string{store.DropTTL: "ttl_expiry"}

// Describe sends the descriptors of every metric the Collector may collect.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads the sources and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	e := emitter(ch)
	c.collectHub(e, c.hub.Stats())
	c.collectStore(e, c.store.Stats())
	up := 0.0
	if c.opts.Upstream != nil && c.opts.Upstream.Connected() {
		up = 1
	}
	e.gauge(descUpstream, up)
}

func (c *Collector) collectHub(e emitter, h Stats) {
	e.counter(descReceived, float64(h.Received-h.ReceivedFromModules), "device")
	e.counter(descReceived, float64(h.ReceivedFromModules), "module")
	for _, ep := range slices.Sorted(maps.Keys(h.Sent)) {
		e.counter(descSent, float64(h.Sent[ep]), ep)
	}
	for _, r := range []struct {
		reason string
		n      int64
	}{
		{"too_large", h.RefusedTooLarge}, {"malformed", h.RefusedMalformed}, {"acl", h.RefusedACL},
		{"qos2", h.RefusedQoS2}, {"store_full", h.RefusedStoreFull}, {"store_error", h.RefusedStoreError},
	} {
		e.counter(descRefused, float64(r.n), r.reason)
	}
	e.counter(descDropped, float64(h.Unrouted), "no_route")
	e.counter(descStored, float64(h.Stored))
	e.counter(descIgnored, float64(h.Ignored))
	e.counter(descFailures, float64(h.DeliveryFailures))
	e.counter(descDeferred, float64(h.Deferred))
	e.gauge(descClients, float64(h.Clients))
	e.counter(descConnectOK, float64(h.Connected))
	e.counter(descConnectFailed, float64(h.AuthRefused))
	e.counter(descRevoked, float64(h.Revoked))
}

func (c *Collector) collectStore(e emitter, st store.Stats) {
	for _, q := range queuesByEndpoint(st.Queues) {
		p := strconv.Itoa(q.Priority)
		e.gauge(descQueueLength, float64(q.Len), q.Queue, p)
		e.gauge(descQueueBytes, float64(q.Bytes), q.Queue, p)
	}
	for _, r := range slices.Sorted(maps.Keys(st.Dropped)) {
		name := r
		if n, ok := dropReasons[r]; ok {
			name = n
		}
		e.counter(descDropped, float64(st.Dropped[r]), name)
	}
	// The hub's own reasons are always exported, 0 included, so that rate() works from
	// the first scrape; the store only knows the reasons it has seen.
	dead := map[string]uint64{deadCorrupt: 0, deadNoAck: 0, deadRejected: 0}
	maps.Copy(dead, st.DeadLetters)
	for _, r := range slices.Sorted(maps.Keys(dead)) {
		e.counter(descDeadLettered, float64(dead[r]), r)
	}
	e.gauge(descStoreBytes, float64(st.Bytes))
	if limit := cmp.Or(st.MaxBytes, c.opts.StoreMaxBytes); limit > 0 {
		e.gauge(descStoreMax, float64(limit))
	}
	e.gauge(descStoreFile, float64(st.FileBytes))
	e.gauge(descStoreMessages, float64(st.Messages))
	e.counter(descStoreAppends, float64(st.Appends))
	e.counter(descStoreCommits, float64(st.Commits))
}

// queuesByEndpoint sums the lanes of the queues reported under one endpoint (every
// sender's $upstream queue under "$upstream", see endpointLabel), so that the series stay
// one per endpoint and priority however many senders there are. Checkpoints, which are
// per queue, are not summed.
func queuesByEndpoint(qs []store.QueueStats) []store.QueueStats {
	type key struct {
		ep   string
		prio int
	}
	out := make([]store.QueueStats, 0, len(qs))
	at := make(map[key]int, len(qs))
	for _, q := range qs {
		k := key{endpointLabel(q.Queue), q.Priority}
		i, ok := at[k]
		if !ok {
			at[k] = len(out)
			out = append(out, store.QueueStats{Queue: k.ep, Priority: k.prio})
			i = len(out) - 1
		}
		out[i].Len += q.Len
		out[i].Bytes += q.Bytes
	}
	return out
}

// emitter sends const metrics. A label value Prometheus refuses (not UTF-8: a queue name
// read from an old store file, say) becomes an invalid metric, which fails that metric
// only when the handler continues on errors, instead of a panic.
type emitter chan<- prometheus.Metric

func (e emitter) counter(d *prometheus.Desc, v float64, labels ...string) {
	e.send(d, prometheus.CounterValue, v, labels)
}

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.send(d, prometheus.GaugeValue, v, labels)
}

func (e emitter) send(d *prometheus.Desc, t prometheus.ValueType, v float64, labels []string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	e <- m
}
