package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/twin"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// HubModuleID is the edge hub's own module identity on its edge device; its module twin
// carries the hub's configuration (routes, store and forward) in its desired properties and
// the hub's status in its reported properties.
const HubModuleID = "$edgeHub"

// cachedConfigValue names the twincache value holding the last good configuration.
const cachedConfigValue = "edgehub/config"

// maxQueuedConfigPatches bounds the desired patches of the hub's own twin waiting to be
// applied; beyond it the twin is fetched whole instead.
const maxQueuedConfigPatches = 64

// cachedConfig is the stored form of the last configuration that applied: the desired
// document, "$version" included, exactly as parsed.
type cachedConfig struct {
	Desired json.RawMessage `json:"desired"`
	Version int64           `json:"version"`
}

// CachedConfig returns the last $edgeHub configuration that the hub applied successfully,
// as kept in c, or nil when there is none. cmd/edgehub reads it before opening the store,
// to open it with storeLimits.maxSizeBytes, so that the cap holds from the first append
// (later changes the hub applies to the open store, see storeLimits); the hub itself
// applies the configuration at the start of Run.
func CachedConfig(c *twincache.Cache) (*deployment.HubConfig, error) {
	b, err := c.Value(cachedConfigValue)
	if err != nil || b == nil {
		return nil, err
	}
	var cc cachedConfig
	if err := json.Unmarshal(b, &cc); err != nil {
		return nil, fmt.Errorf("cached $edgeHub configuration: %w", err)
	}
	cfg, err := deployment.ParseHub(cc.Desired)
	if err != nil {
		return nil, fmt.Errorf("cached $edgeHub configuration: %w", err)
	}
	return cfg, nil
}

// hubIdentity is {edge}/$edgeHub.
func (s *Server) hubIdentity() sas.Identity {
	return sas.Identity{DeviceID: s.opts.EdgeDeviceID, ModuleID: HubModuleID}
}

// configSync keeps the hub's configuration in step with the desired properties of its own
// module twin, and the twin's reported properties in step with the hub (config_report.go).
// One goroutine (run) does both:
//
//	start: apply the cached configuration (a hub booting offline routes at once)
//	link up: attach {edge}/$edgeHub for desired patches; GET the twin:
//	         desired -> apply; reported -> what IoT Hub has, to diff against
//	desired patch n: n = known+1 -> merge, apply; n <= known -> stale; else GET again
//	apply: deployment.ParseHub + Server.ApplyConfig -> lastDesiredStatus 200, cache it;
//	       or 400 with the reason, and the previous configuration stays in force
//	state changed (status, clients): report the difference, at most every
//	         Options.ReportedSyncInterval
//
// edgeHub behaves the same way (edge-runtime-behaviour.md A.5, B.3, F.6), except that it
// also re-reads its twin every hour; here the link-up GET and the desired patches suffice,
// since a patch lost on the way shows up as a version gap.
type configSync struct {
	s      *Server
	cloud  Cloud
	cache  *twincache.Cache
	id     sas.Identity
	log    *slog.Logger
	report *hubReport
	wake   chan struct{} // size 1

	mu        sync.Mutex
	patches   []configPatch // queued desired patches, oldest first
	needFetch bool          // the link came back, or a patch was lost

	// Owned by run.
	desired map[string]any // the desired document as last known; nil until fetched
	version int64          // its $version
	applied int64          // the version last applied successfully (0: none)

	// The store's folder (storageFolder below): mover is nil unless Deps.Store is a
	// StoreMover; move is the move the last configuration asked for, until run hands it
	// to mover.MoveStore (moveAsked), after which this Server only waits to be stopped.
	mover     StoreMover
	move      *plannedMove
	moveAsked bool
}

type configPatch struct {
	body    []byte
	version int64
}

func newConfigSync(s *Server) *configSync {
	c := &configSync{
		s:     s,
		cloud: s.deps.Cloud,
		cache: s.deps.Twins,
		id:    s.hubIdentity(),
		log:   s.log.With("component", "config"),
		wake:  make(chan struct{}, 1),
	}
	c.report = newHubReport(s)
	if m, ok := s.deps.Store.(StoreMover); ok {
		c.mover = m
		c.report.setStorage(storageReport{Current: m.StoreFolder(), Status: storageOK})
	}
	return c
}

func (c *configSync) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// desiredPatch queues a desired patch of the hub's twin (the Cloud's handler).
func (c *configSync) desiredPatch(body []byte, version int64) {
	c.mu.Lock()
	if len(c.patches) < maxQueuedConfigPatches {
		c.patches = append(c.patches, configPatch{body: body, version: version})
	} else {
		c.patches, c.needFetch = nil, true
	}
	c.mu.Unlock()
	c.signal()
}

// linkUp makes run fetch the twin again.
func (c *configSync) linkUp() {
	c.mu.Lock()
	c.needFetch = true
	c.mu.Unlock()
	c.signal()
}

// applyCached applies the configuration cached by an earlier run, if any.
func (c *configSync) applyCached() {
	b, err := c.cache.Value(cachedConfigValue)
	if err != nil {
		c.log.Warn("reading the cached configuration failed", "err", err)
		return
	}
	if b == nil {
		return
	}
	var cc cachedConfig
	if err := json.Unmarshal(b, &cc); err != nil {
		c.log.Warn("cached configuration unreadable; ignored", "err", err)
		return
	}
	doc, err := twin.DecodePatch(cc.Desired)
	if err != nil {
		c.log.Warn("cached configuration unreadable; ignored", "err", err)
		return
	}
	c.log.Info("applying the cached configuration", "version", cc.Version)
	c.desired, c.version = twin.StripReadOnly(doc), cc.Version
	c.apply()
}

// run keeps the configuration and the reported properties in step until ctx ends.
func (c *configSync) run(ctx context.Context) {
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	failures := 0
	attached := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-timer.C:
		}
		if !c.cloud.Connected() {
			c.startMove(true) // nobody to tell about it first
			continue          // linkUp wakes us
		}
		if !attached {
			// Once: the link re-attaches by itself after every reconnection.
			actx, cancel := context.WithTimeout(ctx, c.s.opts.TwinTimeout)
			err := c.cloud.Attach(actx, c.id, upstream.Subscriptions{Desired: true})
			cancel()
			attached = err == nil || errors.Is(err, upstream.ErrOffline)
			if !attached {
				c.log.Warn("attaching the hub's own twin for desired patches failed", "err", err)
			}
		}
		err := c.step(ctx)
		next := c.report.flush(ctx)
		if c.startMove(next == 0) {
			continue // this Server is about to be stopped
		}
		if err != nil || !attached {
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				c.log.Info("reading the hub's twin failed, will retry", "err", err)
			}
			next = backoff(failures, c.s.opts.RetryMin, c.s.opts.RetryMax, rnd)
			failures++
		} else {
			failures = 0
		}
		if wait := c.moveWait(); wait > 0 && (next == 0 || wait < next) {
			next = wait // come back to start the move even if the report cannot go
		}
		if next > 0 {
			resetTimer(timer, next)
		}
	}
}

// step fetches the twin when needed and applies the queued desired patches.
func (c *configSync) step(ctx context.Context) error {
	if c.moveAsked {
		// This Server is being stopped to move the store; the next one fetches the twin.
		return nil
	}
	for ctx.Err() == nil {
		c.mu.Lock()
		fetch := c.needFetch || c.desired == nil && len(c.patches) > 0
		c.needFetch = false
		var patches []configPatch
		if !fetch {
			patches, c.patches = c.patches, nil
		}
		c.mu.Unlock()
		if fetch {
			if err := c.fetch(ctx); err != nil {
				c.mu.Lock()
				c.needFetch = true
				c.mu.Unlock()
				return err
			}
			continue
		}
		if len(patches) == 0 {
			return nil
		}
		for _, p := range patches {
			if !c.patch(p) {
				c.mu.Lock()
				c.needFetch = true
				c.mu.Unlock()
				break
			}
		}
	}
	return ctx.Err()
}

// fetch GETs the hub's twin: its desired section is applied when its version is new, its
// reported section is what IoT Hub has (config_report.go diffs against it).
func (c *configSync) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.s.opts.TwinTimeout)
	defer cancel()
	body, err := c.cloud.GetTwin(ctx, c.id)
	if err != nil {
		return err
	}
	t, err := parseDeviceTwin(body)
	if err != nil {
		return fmt.Errorf("twin of %q: %w", c.id, err)
	}
	c.report.known(t.Reported)
	if c.desired != nil && t.DesiredVersion == c.version && c.applied == c.version {
		return nil // nothing new
	}
	c.desired, c.version = t.Desired, t.DesiredVersion
	c.apply()
	return nil
}

// patch applies one desired patch and reports false when it does not follow the known
// document (the twin must be fetched again).
func (c *configSync) patch(p configPatch) bool {
	switch {
	case c.desired == nil || p.version > c.version+1:
		return false
	case p.version <= c.version:
		return true // stale
	}
	patch, err := twin.DecodePatch(p.body)
	if err != nil {
		c.log.Warn("malformed desired patch of the hub's twin", "version", p.version, "err", err)
		return false
	}
	delete(patch, "$version")
	twin.Merge(c.desired, patch)
	c.version = p.version
	c.apply()
	return true
}

// apply parses and applies the known desired document and reports the outcome. On
// success the document is cached as the last good configuration.
func (c *configSync) apply() {
	doc := twin.Clone(c.desired)
	if doc == nil {
		doc = map[string]any{}
	}
	doc["$version"] = json.Number(fmt.Sprint(c.version))
	raw := encodePatch(doc)
	cfg, err := deployment.ParseHub(raw)
	var folder string
	if err == nil {
		folder, err = storageFolderOf(c.desired)
	}
	if err == nil {
		err = c.s.ApplyConfig(cfg)
	}
	if err != nil {
		desc := "Error while parsing desired properties - " + deployment.Description(err)
		c.log.Warn("configuration refused; the previous one stays in force", "version", c.version, "err", err)
		c.report.setStatus(c.version, deployment.CodeInvalid, desc)
		return
	}
	note := c.storeLimits(cfg)
	c.applied = c.version
	code := deployment.CodeOK
	if c.mover != nil {
		code, note = c.storageFolder(folder, note)
	}
	c.report.setStatus(c.version, code, note)
	b, _ := json.Marshal(cachedConfig{Desired: raw, Version: c.version}) // cannot fail
	if err := c.cache.SetValue(cachedConfigValue, b); err != nil {
		c.log.Warn("caching the configuration failed", "err", err)
	}
}

// byteCapper is a Store whose byte cap can change while it is open.
type byteCapper interface {
	SetMaxBytes(n int64) error
}

// storeLimits applies storeLimits.maxSizeBytes when the store can take it while open
// (*store.Store can: SetMaxBytes; lowering it under the usage refuses or drops as the
// store's full policy says), and otherwise returns a note for lastDesiredStatus: the cap
// then applies when the hub starts again (cmd/edgehub opens the store with CachedConfig's
// cap). A configuration without the field leaves the cap in force unchanged.
func (c *configSync) storeLimits(cfg *deployment.HubConfig) string {
	n := cfg.StoreAndForward.MaxSizeBytes
	if n <= 0 {
		return ""
	}
	if bc, ok := c.s.deps.Store.(byteCapper); ok {
		if err := bc.SetMaxBytes(n); err != nil {
			c.log.Warn("storeLimits.maxSizeBytes not applied", "max_bytes", n, "err", err)
			return fmt.Sprintf("storeLimits.maxSizeBytes not applied: %v", err)
		}
		c.log.Debug("storeLimits.maxSizeBytes applied", "max_bytes", n)
		return ""
	}
	c.log.Info("storeLimits.maxSizeBytes applies when the hub starts again", "max_bytes", n)
	return "storeLimits.maxSizeBytes applies when the hub starts again"
}

// How long run waits for the report of a planned store move to reach IoT Hub before it
// starts the move anyway (the link may be slow or refusing reported properties; the next
// Server reports the outcome in any case).
const moveReportWait = 5 * time.Second

// plannedMove is a store move the configuration asked for (see StoreMover).
type plannedMove struct {
	folder  string
	version int64
	since   time.Time // when it was planned (real time)
}

// storageFolder handles storeAndForwardConfiguration.storageFolder of the configuration
// just applied (requested; "" for the default) and returns lastDesiredStatus: the code, and
// the description with note (storeLimits' remark, if any). A folder PlanMove refuses gets
// 400 and the store stays where it is; the rest of the configuration applies regardless,
// so that a folder that cannot be used now (not writable, disk full) never leaves the hub
// without routes, for instance when the cached configuration is applied at start. A new
// folder is planned: run reports it, then asks for the move.
func (c *configSync) storageFolder(requested, note string) (int, string) {
	cur := c.mover.StoreFolder()
	target, err := c.mover.PlanMove(requested, c.version)
	switch {
	case err != nil:
		c.move = nil
		reason := capDescription(fmt.Sprintf("%s %q refused: %v; the store stays in %q (the rest of this configuration is applied)",
			StorageFolderProperty, requested, err, cur))
		c.log.Warn("store folder change refused; the store stays", "requested", requested, "folder", cur, "err", err)
		c.report.setStorage(storageReport{Current: cur, Status: storageRefused, Description: reason})
		return deployment.CodeInvalid, capDescription(joinNotes(reason, note))
	case target == cur:
		c.move = nil
		c.report.setStorage(storageReport{Current: cur, Status: storageOK})
		return deployment.CodeOK, note
	}
	c.move = &plannedMove{folder: target, version: c.version, since: time.Now()}
	desc := capDescription(fmt.Sprintf("moving the store from %q to %q: the edge hub restarts on it and its clients reconnect", cur, target))
	c.log.Info("store folder change accepted; the hub stops to move the store", "from", cur, "to", target, "version", c.version)
	c.report.setStorage(storageReport{Current: cur, Status: storageMoving, Description: desc})
	return deployment.CodeOK, capDescription(joinNotes(desc, note))
}

// capDescription shortens a description as deployment.Description does (a folder named in
// a twin may be kilobytes long; a reported value may not).
func capDescription(s string) string { return deployment.Description(errors.New(s)) }

// startMove hands the planned move to the StoreMover once its report went out (reported)
// or moveReportWait passed, and reports whether it did so now.
func (c *configSync) startMove(reported bool) bool {
	if c.move == nil || c.moveAsked || !reported && c.moveWait() > 0 {
		return false
	}
	c.moveAsked = true
	c.mover.MoveStore(c.move.folder, c.move.version)
	return true
}

// moveWait is how long a planned move still waits for its report (0: not waiting).
func (c *configSync) moveWait() time.Duration {
	if c.move == nil || c.moveAsked {
		return 0
	}
	return max(moveReportWait-time.Since(c.move.since), 0)
}

// joinNotes joins the non-empty descriptions with "; ".
func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "; ")
}
