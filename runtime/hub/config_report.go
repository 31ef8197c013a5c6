package hub

import (
	"context"
	"encoding/json"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/twin"
)

// Client statuses in the hub's reported "clients" map (edgeHub's DeviceConnectionStatus).
const (
	clientConnected    = "Connected"
	clientDisconnected = "Disconnected"
)

// hubReport is the state the hub reports on its own module twin (edge-runtime-behaviour.md
// B.3):
//
//	{"schemaVersion":"1.0",
//	 "version":{"version":"...","build":"...","commit":"..."},
//	 "lastDesiredVersion":7,
//	 "lastDesiredStatus":{"code":200,"description":""},
//	 "clients":{"edge1/filter":{"status":"Connected","lastConnectedTimeUtc":"...",
//	                            "lastDisconnectedTimeUtc":"..."}, "leaf1":{...}},
//	 "storageFolder":{"current":"/var/lib/edgehub","status":"ok","description":""}}
//
// storageFolder is there only when the Store is a StoreMover: current is the folder the
// store is in, status "ok", "moving" (the hub is about to stop and move it; description
// says where to) or "refused" (description says why, as lastDesiredStatus does).
//
// Client keys are the client ids with '.', '$', ' ' and '#' percent-encoded (edgeHub's
// EncodeTwinKey does the first three; '#' is encoded too because twin keys may not hold
// it). A module that disconnects stays, Disconnected; a leaf device that disconnects is
// removed (its entry nulled). The hub sends only the difference between this state and
// what IoT Hub holds (twin.Diff), at most every Options.ReportedSyncInterval.
type hubReport struct {
	s *Server

	mu           sync.Mutex
	version      map[string]string
	desiredVer   int64
	status       *desiredStatus // nil until a configuration was attempted
	clients      map[string]clientReport
	storage      *storageReport // nil without a StoreMover
	cloud        map[string]any // the reported section as IoT Hub holds it; nil: unknown
	seeded       bool           // clients of an earlier run were taken over from cloud
	lastSent     time.Time      // real time of the last patch
	changedSince bool           // state changed since the last patch
}

type desiredStatus struct {
	Code        int    `json:"code"`
	Description string `json:"description"`
}

// Values of storageReport.Status.
const (
	storageOK      = "ok"
	storageMoving  = "moving"
	storageRefused = "refused"
)

// storageReport is the reported "storageFolder" (see hubReport).
type storageReport struct {
	Current     string `json:"current"`
	Status      string `json:"status"`
	Description string `json:"description"`
}

type clientReport struct {
	Status           string `json:"status"`
	LastConnected    string `json:"lastConnectedTimeUtc,omitempty"`
	LastDisconnected string `json:"lastDisconnectedTimeUtc,omitempty"`
}

func newHubReport(s *Server) *hubReport {
	v := map[string]string{"version": s.opts.Version, "build": "", "commit": ""}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" {
				v["commit"] = kv.Value
			}
		}
		v["build"] = bi.GoVersion
	}
	return &hubReport{s: s, version: v, clients: map[string]clientReport{}}
}

// encodeClientKey turns a client id into a twin key (see hubReport).
var clientKeyEncoder = strings.NewReplacer(".", "%2E", "$", "%24", " ", "%20", "#", "%23")

func encodeClientKey(id sas.Identity) string { return clientKeyEncoder.Replace(id.String()) }

func (r *hubReport) changed() {
	r.changedSince = true
	if r.s.hubCfg != nil {
		r.s.hubCfg.signal()
	}
}

// setStatus records the outcome of applying desired version v.
func (r *hubReport) setStatus(v int64, code int, desc string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.desiredVer, r.status = v, &desiredStatus{Code: code, Description: desc}
	r.changed()
}

// setStorage records where the store is and what became of the last change.
func (r *hubReport) setStorage(st storageReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.storage = &st
	r.changed()
}

// connected and disconnected record a local client's connection state.
func (r *hubReport) connected(id sas.Identity, now time.Time) {
	if id.ModuleID == HubModuleID && id.DeviceID == r.s.opts.EdgeDeviceID {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := encodeClientKey(id)
	c := r.clients[k]
	c.Status, c.LastConnected = clientConnected, now.UTC().Format(time.RFC3339Nano)
	r.clients[k] = c
	r.changed()
}

func (r *hubReport) disconnected(id sas.Identity, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := encodeClientKey(id)
	if id.ModuleID == "" {
		delete(r.clients, k) // leaves are removed
	} else if c, ok := r.clients[k]; ok {
		c.Status, c.LastDisconnected = clientDisconnected, now.UTC().Format(time.RFC3339Nano)
		r.clients[k] = c
	}
	r.changed()
}

// known records the reported section IoT Hub holds (from a twin GET). The first time, the
// client entries of an earlier run are taken over: modules as Disconnected (they are not
// connected to this run, or have reconnected and have an entry already), leaves removed.
func (r *hubReport) known(reported map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cloud = twin.Clone(reported)
	if r.cloud == nil {
		r.cloud = map[string]any{}
	}
	if !r.seeded {
		r.seeded = true
		now := r.s.opts.Now().UTC().Format(time.RFC3339Nano)
		old, _ := r.cloud["clients"].(map[string]any)
		for k, v := range old {
			if _, mine := r.clients[k]; mine || !strings.Contains(k, "/") {
				continue
			}
			var c clientReport
			if b, err := json.Marshal(v); err == nil && json.Unmarshal(b, &c) == nil {
				if c.Status != clientDisconnected {
					c.Status, c.LastDisconnected = clientDisconnected, now
				}
				r.clients[k] = c
			}
		}
	}
	r.changedSince = true
}

// documentLocked renders the state as a twin section.
func (r *hubReport) documentLocked() map[string]any {
	doc := struct {
		SchemaVersion      string                  `json:"schemaVersion"`
		Version            map[string]string       `json:"version"`
		LastDesiredVersion *int64                  `json:"lastDesiredVersion,omitempty"`
		LastDesiredStatus  *desiredStatus          `json:"lastDesiredStatus,omitempty"`
		Clients            map[string]clientReport `json:"clients"`
		StorageFolder      *storageReport          `json:"storageFolder,omitempty"`
	}{SchemaVersion: "1.0", Version: r.version, LastDesiredStatus: r.status, Clients: r.clients, StorageFolder: r.storage}
	if r.status != nil {
		doc.LastDesiredVersion = &r.desiredVer
	}
	b, _ := json.Marshal(doc)   // cannot fail
	m, _ := twin.DecodePatch(b) // a marshalled struct is an object
	return m
}

// flush sends the difference between the state and what IoT Hub holds, when there is one,
// the link is up, IoT Hub's copy is known and the last patch is at least
// Options.ReportedSyncInterval old. It returns how long to wait before trying again (0:
// nothing to do until the next change).
func (r *hubReport) flush(ctx context.Context) time.Duration {
	r.mu.Lock()
	if r.cloud == nil || !r.changedSince {
		r.mu.Unlock()
		return 0
	}
	if wait := r.s.opts.ReportedSyncInterval - time.Since(r.lastSent); wait > 0 {
		r.mu.Unlock()
		return wait
	}
	doc := r.documentLocked()
	patch := twin.Diff(r.cloud, doc)
	r.changedSince = false
	r.mu.Unlock()
	if len(patch) == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, r.s.opts.TwinTimeout)
	defer cancel()
	_, err := r.s.deps.Cloud.UpdateReported(ctx, r.s.hubIdentity(), encodePatch(patch))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastSent = time.Now()
	if err != nil {
		r.changedSince = true
		r.s.hubCfg.log.Info("reporting the hub's state failed, will retry", "err", err)
		return r.s.opts.RetryMin
	}
	twin.Merge(r.cloud, patch)
	return 0
}
