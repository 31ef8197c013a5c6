package hub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/store"
)

// hubStats, storeStats and linkState are fixed statistics sources.
type hubStats hub.Stats

func (s hubStats) Stats() hub.Stats { return hub.Stats(s) }

type storeStats store.Stats

func (s storeStats) Stats() store.Stats { return store.Stats(s) }

type linkState bool

func (l linkState) Connected() bool { return bool(l) }

// idleStore is what an empty store reports: every drop reason, at 0.
func idleStore() store.Stats {
	return store.Stats{Dropped: map[string]uint64{store.DropTTL: 0, store.DropCap: 0, store.DropDeadLetter: 0, store.DropDeleted: 0}}
}

func newCollector(t *testing.T, h hub.Stats, st store.Stats, opts hub.CollectorOptions) *hub.Collector {
	t.Helper()
	c, err := hub.NewCollector(hubStats(h), storeStats(st), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// busyExposition is the whole exposition of the "busy" case below.
const busyExposition = `
# HELP outpost_edgehub_client_connect_failed_total Client connections refused (authentication failed or MQTT version not 3.1.1).
# TYPE outpost_edgehub_client_connect_failed_total counter
outpost_edgehub_client_connect_failed_total 2
# HELP outpost_edgehub_client_connect_success_total Client connections accepted.
# TYPE outpost_edgehub_client_connect_success_total counter
outpost_edgehub_client_connect_success_total 7
# HELP outpost_edgehub_client_revoked_total Connections closed by the hub because their credentials were no longer valid.
# TYPE outpost_edgehub_client_revoked_total counter
outpost_edgehub_client_revoked_total 1
# HELP outpost_edgehub_connected_clients Clients connected to the hub now.
# TYPE outpost_edgehub_connected_clients gauge
outpost_edgehub_connected_clients 3
# HELP outpost_edgehub_deliveries_deferred_total Deliveries put off because the module was not connected or not subscribed, or there was no upstream.
# TYPE outpost_edgehub_deliveries_deferred_total counter
outpost_edgehub_deliveries_deferred_total 11
# HELP outpost_edgehub_delivery_failures_total Unacknowledged module deliveries and failed upstream sends (each is retried or dead-lettered).
# TYPE outpost_edgehub_delivery_failures_total counter
outpost_edgehub_delivery_failures_total 5
# HELP outpost_edgehub_messages_deadlettered_total Messages dead-lettered by the hub, by reason: corrupt, unacknowledged (a module did not acknowledge it after the maximum attempts), rejected.
# TYPE outpost_edgehub_messages_deadlettered_total counter
outpost_edgehub_messages_deadlettered_total{reason="corrupt"} 0
outpost_edgehub_messages_deadlettered_total{reason="rejected"} 1
outpost_edgehub_messages_deadlettered_total{reason="unacknowledged"} 2
# HELP outpost_edgehub_messages_dropped_total Messages removed undelivered: no_route (acknowledged, matched no route), ttl_expiry, cap (removed to make room under drop-oldest), deadletter, deleted (with their queue); one per queue entry except no_route.
# TYPE outpost_edgehub_messages_dropped_total counter
outpost_edgehub_messages_dropped_total{reason="cap"} 4
outpost_edgehub_messages_dropped_total{reason="deadletter"} 3
outpost_edgehub_messages_dropped_total{reason="deleted"} 0
outpost_edgehub_messages_dropped_total{reason="no_route"} 6
outpost_edgehub_messages_dropped_total{reason="ttl_expiry"} 9
# HELP outpost_edgehub_messages_received_total Telemetry messages received from clients, by sender kind (device or module).
# TYPE outpost_edgehub_messages_received_total counter
outpost_edgehub_messages_received_total{source="device"} 40
outpost_edgehub_messages_received_total{source="module"} 60
# HELP outpost_edgehub_messages_refused_total Publishes refused without a PUBACK (the connection was closed), by reason: too_large, malformed, acl (also counts refused subscriptions), qos2, store_full, store_error.
# TYPE outpost_edgehub_messages_refused_total counter
outpost_edgehub_messages_refused_total{reason="acl"} 3
outpost_edgehub_messages_refused_total{reason="malformed"} 2
outpost_edgehub_messages_refused_total{reason="qos2"} 4
outpost_edgehub_messages_refused_total{reason="store_error"} 6
outpost_edgehub_messages_refused_total{reason="store_full"} 5
outpost_edgehub_messages_refused_total{reason="too_large"} 1
# HELP outpost_edgehub_messages_sent_total Messages delivered and acknowledged, by endpoint ($upstream or /modules/{m}/inputs/{i}).
# TYPE outpost_edgehub_messages_sent_total counter
outpost_edgehub_messages_sent_total{endpoint="$upstream"} 30
outpost_edgehub_messages_sent_total{endpoint="/modules/filter/inputs/in"} 50
# HELP outpost_edgehub_messages_stored_total Telemetry messages appended to the store and acknowledged.
# TYPE outpost_edgehub_messages_stored_total counter
outpost_edgehub_messages_stored_total 88
# HELP outpost_edgehub_queue_bytes Bytes of the messages waiting in an endpoint's queue, by priority (a body shared by several queues counts in each).
# TYPE outpost_edgehub_queue_bytes gauge
outpost_edgehub_queue_bytes{endpoint="$upstream",priority="0"} 1200
outpost_edgehub_queue_bytes{endpoint="$upstream",priority="2000000000"} 300
outpost_edgehub_queue_bytes{endpoint="/modules/filter/inputs/in",priority="2000000000"} 0
# HELP outpost_edgehub_queue_length Messages waiting in an endpoint's queue, by priority.
# TYPE outpost_edgehub_queue_length gauge
outpost_edgehub_queue_length{endpoint="$upstream",priority="0"} 12
outpost_edgehub_queue_length{endpoint="$upstream",priority="2000000000"} 3
outpost_edgehub_queue_length{endpoint="/modules/filter/inputs/in",priority="2000000000"} 0
# HELP outpost_edgehub_requests_ignored_total Twin requests (GET, reported patch) acknowledged and ignored because the hub runs without a twin cache; stays 0 while twins are served.
# TYPE outpost_edgehub_requests_ignored_total counter
outpost_edgehub_requests_ignored_total 8
# HELP outpost_edgehub_store_appends_total Messages appended to the store.
# TYPE outpost_edgehub_store_appends_total counter
outpost_edgehub_store_appends_total 88
# HELP outpost_edgehub_store_bytes Accounted bytes of the stored messages, the quantity store_max_bytes caps.
# TYPE outpost_edgehub_store_bytes gauge
outpost_edgehub_store_bytes 4096
# HELP outpost_edgehub_store_commits_total Store write transactions committed (appends are group-committed, so fewer than appends).
# TYPE outpost_edgehub_store_commits_total counter
outpost_edgehub_store_commits_total 20
# HELP outpost_edgehub_store_file_bytes Size of the store's file; freed pages are reused, the file never shrinks.
# TYPE outpost_edgehub_store_file_bytes gauge
outpost_edgehub_store_file_bytes 65536
# HELP outpost_edgehub_store_max_bytes The store's byte cap (absent when there is none).
# TYPE outpost_edgehub_store_max_bytes gauge
outpost_edgehub_store_max_bytes 1e+06
# HELP outpost_edgehub_store_messages Message bodies stored (a body shared by several queues counts once).
# TYPE outpost_edgehub_store_messages gauge
outpost_edgehub_store_messages 14
# HELP outpost_edgehub_upstream_connected 1 while the link to IoT Hub is up, 0 otherwise (also when the hub has none).
# TYPE outpost_edgehub_upstream_connected gauge
outpost_edgehub_upstream_connected 1
`

func TestCollector(t *testing.T) {
	busyHub := hub.Stats{
		Connected: 7, AuthRefused: 2, Revoked: 1, Clients: 3,
		Received: 100, ReceivedFromModules: 60, Stored: 88, Unrouted: 6,
		RefusedTooLarge: 1, RefusedMalformed: 2, RefusedACL: 3, RefusedQoS2: 4, RefusedStoreFull: 5, RefusedStoreError: 6,
		Ignored: 8, Delivered: 50, SentUpstream: 30, DeliveryFailures: 5, Deferred: 11, DeadLettered: 3,
		Sent: map[string]int64{"$upstream": 30, "/modules/filter/inputs/in": 50},
	}
	busyStore := store.Stats{
		Bytes: 4096, Messages: 14, FileBytes: 65536,
		Queues: []store.QueueStats{
			{Queue: "$upstream", Priority: 0, Len: 12, Bytes: 1200, Checkpoint: 40},
			{Queue: "$upstream", Priority: 2000000000, Len: 3, Bytes: 300, Checkpoint: 7},
			{Queue: "/modules/filter/inputs/in", Priority: 2000000000, Len: 0, Bytes: 0, Checkpoint: 50},
		},
		Dropped:     map[string]uint64{store.DropTTL: 9, store.DropCap: 4, store.DropDeadLetter: 3, store.DropDeleted: 0},
		DeadLetters: map[string]uint64{"unacknowledged": 2, "rejected": 1},
		Refused:     5, Commits: 20, Appends: 88, Acked: 80,
	}
	tests := []struct {
		name  string
		hub   hub.Stats
		store store.Stats
		opts  hub.CollectorOptions
		names []string // compared; all when empty
		want  string
	}{
		{
			name: "busy", hub: busyHub, store: busyStore,
			opts: hub.CollectorOptions{Upstream: linkState(true), StoreMaxBytes: 1e6},
			want: busyExposition,
		},
		{
			name: "idle hub without cap or upstream", hub: hub.Stats{}, store: idleStore(),
			names: []string{
				"outpost_edgehub_messages_received_total", "outpost_edgehub_messages_sent_total",
				"outpost_edgehub_queue_length", "outpost_edgehub_store_max_bytes",
				"outpost_edgehub_upstream_connected", "outpost_edgehub_messages_deadlettered_total",
			},
			want: `
# HELP outpost_edgehub_messages_deadlettered_total Messages dead-lettered by the hub, by reason: corrupt, unacknowledged (a module did not acknowledge it after the maximum attempts), rejected.
# TYPE outpost_edgehub_messages_deadlettered_total counter
outpost_edgehub_messages_deadlettered_total{reason="corrupt"} 0
outpost_edgehub_messages_deadlettered_total{reason="rejected"} 0
outpost_edgehub_messages_deadlettered_total{reason="unacknowledged"} 0
# HELP outpost_edgehub_messages_received_total Telemetry messages received from clients, by sender kind (device or module).
# TYPE outpost_edgehub_messages_received_total counter
outpost_edgehub_messages_received_total{source="device"} 0
outpost_edgehub_messages_received_total{source="module"} 0
# HELP outpost_edgehub_upstream_connected 1 while the link to IoT Hub is up, 0 otherwise (also when the hub has none).
# TYPE outpost_edgehub_upstream_connected gauge
outpost_edgehub_upstream_connected 0
`,
		},
		{
			name: "upstream down", hub: busyHub, store: busyStore, opts: hub.CollectorOptions{Upstream: linkState(false)},
			names: []string{"outpost_edgehub_upstream_connected"},
			want: `
# HELP outpost_edgehub_upstream_connected 1 while the link to IoT Hub is up, 0 otherwise (also when the hub has none).
# TYPE outpost_edgehub_upstream_connected gauge
outpost_edgehub_upstream_connected 0
`,
		},
		{
			// One queue per sender to $upstream, plus the shared one of earlier versions:
			// one series per endpoint and priority, not one per sender. The store's own
			// cap (SetMaxBytes) wins over the option.
			name: "senders' upstream queues summed under $upstream", hub: hub.Stats{},
			store: store.Stats{
				MaxBytes: 5000,
				Queues: []store.QueueStats{
					{Queue: "$upstream", Priority: 0, Len: 1, Bytes: 100},
					{Queue: "$upstream/edge1/modA", Priority: 0, Len: 2, Bytes: 200},
					{Queue: "$upstream/edge1/modA", Priority: 5, Len: 4, Bytes: 400},
					{Queue: "$upstream/leaf1", Priority: 0, Len: 3, Bytes: 300},
					{Queue: "/modules/filter/inputs/in", Priority: 0, Len: 7, Bytes: 700},
				},
			},
			opts:  hub.CollectorOptions{StoreMaxBytes: 1e6},
			names: []string{"outpost_edgehub_queue_length", "outpost_edgehub_queue_bytes", "outpost_edgehub_store_max_bytes"},
			want: `
# HELP outpost_edgehub_queue_bytes Bytes of the messages waiting in an endpoint's queue, by priority (a body shared by several queues counts in each).
# TYPE outpost_edgehub_queue_bytes gauge
outpost_edgehub_queue_bytes{endpoint="$upstream",priority="0"} 600
outpost_edgehub_queue_bytes{endpoint="$upstream",priority="5"} 400
outpost_edgehub_queue_bytes{endpoint="/modules/filter/inputs/in",priority="0"} 700
# HELP outpost_edgehub_queue_length Messages waiting in an endpoint's queue, by priority.
# TYPE outpost_edgehub_queue_length gauge
outpost_edgehub_queue_length{endpoint="$upstream",priority="0"} 6
outpost_edgehub_queue_length{endpoint="$upstream",priority="5"} 4
outpost_edgehub_queue_length{endpoint="/modules/filter/inputs/in",priority="0"} 7
# HELP outpost_edgehub_store_max_bytes The store's byte cap (absent when there is none).
# TYPE outpost_edgehub_store_max_bytes gauge
outpost_edgehub_store_max_bytes 5000
`,
		},
		{
			name: "unknown store reasons pass through", hub: hub.Stats{},
			store: store.Stats{Dropped: map[string]uint64{"evicted": 2}, DeadLetters: map[string]uint64{"poison": 1}},
			names: []string{"outpost_edgehub_messages_dropped_total", "outpost_edgehub_messages_deadlettered_total"},
			want: `
# HELP outpost_edgehub_messages_deadlettered_total Messages dead-lettered by the hub, by reason: corrupt, unacknowledged (a module did not acknowledge it after the maximum attempts), rejected.
# TYPE outpost_edgehub_messages_deadlettered_total counter
outpost_edgehub_messages_deadlettered_total{reason="corrupt"} 0
outpost_edgehub_messages_deadlettered_total{reason="poison"} 1
outpost_edgehub_messages_deadlettered_total{reason="rejected"} 0
outpost_edgehub_messages_deadlettered_total{reason="unacknowledged"} 0
# HELP outpost_edgehub_messages_dropped_total Messages removed undelivered: no_route (acknowledged, matched no route), ttl_expiry, cap (removed to make room under drop-oldest), deadletter, deleted (with their queue); one per queue entry except no_route.
# TYPE outpost_edgehub_messages_dropped_total counter
outpost_edgehub_messages_dropped_total{reason="evicted"} 2
outpost_edgehub_messages_dropped_total{reason="no_route"} 0
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCollector(t, tt.hub, tt.store, tt.opts)
			if err := testutil.CollectAndCompare(c, strings.NewReader(tt.want), tt.names...); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCollector_Lint checks the names, types and help texts against Prometheus's
// conventions (promlint).
func TestCollector_Lint(t *testing.T) {
	c := newCollector(t, hub.Stats{Sent: map[string]int64{"$upstream": 1}},
		store.Stats{Queues: []store.QueueStats{{Queue: "$upstream", Len: 1}}},
		hub.CollectorOptions{StoreMaxBytes: 10})
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestCollector_BadLabelValue: a queue name that is not UTF-8 fails its own metrics
// (the handler continues on errors) and neither panics nor hides the others.
func TestCollector_BadLabelValue(t *testing.T) {
	st := idleStore()
	st.Queues = []store.QueueStats{{Queue: "/modules/\xff/inputs/in", Len: 1}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newCollector(t, hub.Stats{Received: 1}, st, hub.CollectorOptions{}))
	mfs, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("Gather error = %v, want one about the label value", err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if got := strings.Join(names, " "); !strings.Contains(got, "outpost_edgehub_messages_received_total") ||
		strings.Contains(got, "outpost_edgehub_queue_length") {
		t.Fatalf("gathered %s; want the valid metrics without the bad queue", got)
	}
}

func TestNewCollector_Errors(t *testing.T) {
	tests := []struct {
		name  string
		hub   hub.StatsSource
		store hub.StoreStatsSource
		opts  hub.CollectorOptions
		want  string
	}{
		{name: "no hub", store: storeStats{}, want: "no hub statistics"},
		{name: "no store", hub: hubStats{}, want: "no store statistics"},
		{name: "negative cap", hub: hubStats{}, store: storeStats{}, opts: hub.CollectorOptions{StoreMaxBytes: -1}, want: "StoreMaxBytes -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hub.NewCollector(tt.hub, tt.store, tt.opts)
			if !errors.Is(err, hub.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrConfig mentioning %q", err, tt.want)
			}
		})
	}
}

// TestCollector_CountsTraffic runs a hub and checks that real traffic moves the metrics:
// a module's message to another module's input and a leaf device's message upstream.
func TestCollector_CountsTraffic(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{
		"aToB": routeAllToB,
		"up":   "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream",
	}))
	c, err := hub.NewCollector(e.hub, e.store, hub.CollectorOptions{Upstream: linkState(true)})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	names := []string{
		"outpost_edgehub_messages_received_total", "outpost_edgehub_messages_sent_total",
		"outpost_edgehub_connected_clients", "outpost_edgehub_messages_stored_total",
	}
	const header = `
# HELP outpost_edgehub_connected_clients Clients connected to the hub now.
# TYPE outpost_edgehub_connected_clients gauge
outpost_edgehub_connected_clients %d
# HELP outpost_edgehub_messages_received_total Telemetry messages received from clients, by sender kind (device or module).
# TYPE outpost_edgehub_messages_received_total counter
outpost_edgehub_messages_received_total{source="device"} %d
outpost_edgehub_messages_received_total{source="module"} %d
# HELP outpost_edgehub_messages_sent_total Messages delivered and acknowledged, by endpoint ($upstream or /modules/{m}/inputs/{i}).
# TYPE outpost_edgehub_messages_sent_total counter
outpost_edgehub_messages_sent_total{endpoint="$upstream"} %d
outpost_edgehub_messages_sent_total{endpoint="/modules/modB/inputs/in1"} %d
# HELP outpost_edgehub_messages_stored_total Telemetry messages appended to the store and acknowledged.
# TYPE outpost_edgehub_messages_stored_total counter
outpost_edgehub_messages_stored_total %d
`
	expect := func(clients, devices, modules, upstream, toB, stored int) {
		t.Helper()
		want := strings.NewReader(fmt.Sprintf(header, clients, devices, modules, upstream, toB, stored))
		if err := testutil.GatherAndCompare(reg, want, names...); err != nil {
			t.Fatal(err)
		}
	}
	// The routes' endpoints are known (and exported at 0) before any traffic.
	expect(0, 0, 0, 0, 0, 0)

	b := e.connect(modB)
	b.subscribeInputs(t)
	e.connect(modA).send(t, "out1", nil, "to b")
	e.connect(leaf).send(t, "", nil, "to the cloud")
	b.next(t)
	waitFor(t, "both deliveries acknowledged", func() bool {
		s := e.hub.Stats().Sent
		return s["$upstream"] == 1 && s["/modules/modB/inputs/in1"] == 1
	})
	expect(3, 1, 1, 1, 1, 2)

	// The queues emptied once the acknowledgements are committed.
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP outpost_edgehub_store_messages Message bodies stored (a body shared by several queues counts once).
# TYPE outpost_edgehub_store_messages gauge
outpost_edgehub_store_messages 0
`), "outpost_edgehub_store_messages"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "outpost_edgehub_queue_length"); err != nil || n != 2 {
		t.Fatalf("queue_length series = %d (%v), want one per lane (2)", n, err)
	}
}
