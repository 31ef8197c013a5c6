package hub

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/route"
)

// routing is one applied configuration: the compiled routes and the store-and-forward TTL.
// It is immutable; ApplyConfig swaps in a new one, so a route change affects only messages
// ingested afterwards, and stored messages keep the priority and TTL they were stored with.
type routing struct {
	table *route.Table
	// defaultTTL is storeAndForwardConfiguration.timeToLiveSecs; 0 means never expire.
	defaultTTL time.Duration
}

// ttl returns the TTL a message is stored with: the route's, or the default when the route
// sets none.
func (r *routing) ttl(routeTTL time.Duration) time.Duration {
	if routeTTL > 0 {
		return routeTTL
	}
	return r.defaultTTL
}

// compileConfig turns a validated $edgeHub configuration into routing. A route that does
// not compile rejects the whole configuration, as edgeHub does: the error is a
// *deployment.Error with code 400 whose Field names the first failing route (by name) and
// whose Reason lists every problem.
func compileConfig(cfg *deployment.HubConfig) (*routing, error) {
	if cfg == nil {
		return nil, &deployment.Error{Code: deployment.CodeInvalid, Reason: "no $edgeHub configuration"}
	}
	names := slices.Sorted(maps.Keys(cfg.Routes))
	specs := make([]route.Spec, 0, len(names))
	for _, name := range names {
		r := cfg.Routes[name]
		specs = append(specs, route.Spec{
			Name:     name,
			Text:     r.Expr,
			Priority: r.Priority, // deployment.DefaultPriority equals route.DefaultPriority
			TTL:      time.Duration(r.TimeToLiveSecs) * time.Second,
		})
	}
	table, err := route.Compile(specs)
	if err != nil {
		return nil, routeError(err)
	}
	rt := &routing{table: table}
	if s := cfg.StoreAndForward.TimeToLiveSecs; s > 0 {
		rt.defaultTTL = time.Duration(s) * time.Second
	}
	return rt, nil
}

// routeError turns route.Compile's joined errors into one *deployment.Error.
func routeError(err error) *deployment.Error {
	var all []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		all = j.Unwrap()
	} else {
		all = []error{err}
	}
	e := &deployment.Error{Code: deployment.CodeInvalid}
	msgs := make([]string, 0, len(all))
	for _, one := range all {
		var re *route.Error
		if e.Field == "" && errors.As(one, &re) && re.Route != "" {
			e.Field = "routes." + re.Route
		}
		msgs = append(msgs, one.Error())
	}
	e.Reason = strings.Join(msgs, "; ")
	return e
}

// ApplyConfig compiles cfg's routes and, if they all compile, makes them the routes for
// every message ingested from now on (stored messages keep the priority and TTL they got),
// and starts a pump for each endpoint they name. Otherwise it returns a *deployment.Error
// (code 400, naming the route) and the previous routes stay in force. A configuration with
// no routes is valid: every message is then acknowledged and dropped.
//
// It may be called before Run (the usual order: apply the cached configuration, then run)
// and at any time while Run runs.
func (s *Server) ApplyConfig(cfg *deployment.HubConfig) error {
	rt, err := compileConfig(cfg)
	if err != nil {
		return err
	}
	s.routing.Store(rt)
	for _, r := range rt.table.Routes() {
		s.pumps.ensure(r.Sink)
	}
	ttl := "never expires"
	if rt.defaultTTL > 0 {
		ttl = rt.defaultTTL.String()
	}
	s.log.Info("routes applied", "routes", len(cfg.Routes), "default_ttl", ttl)
	return nil
}

// StoreMover is a Deps.Store that can move to another folder while the process runs, as
// cmd/edgehub's can. With one, the $edgeHub twin's
// storeAndForwardConfiguration.storageFolder (StorageFolderProperty) names the folder of
// the store: absent, null or "" means the default (the local configuration, edgehub's
// --data-dir). The hub reports where the store is, and what became of a change, in its
// reported property "storageFolder" (config_report.go); without a StoreMover the property
// is ignored.
//
// A change goes: PlanMove checks it; refused, the rest of the configuration applies,
// lastDesiredStatus is 400 with the reason and the store stays. Accepted, the hub reports
// the move in progress, then calls MoveStore: its owner stops this Server (clients are
// disconnected and reconnect by themselves), moves the store, and runs a new Server on it,
// which reports the outcome.
type StoreMover interface {
	// StoreFolder returns the absolute folder the store is in now.
	StoreFolder() string
	// PlanMove resolves a requested folder ("" for the default) for desired version
	// version and checks that the store can move there. It returns the absolute folder,
	// equal to StoreFolder when there is nothing to move, or an error saying why the move
	// is refused (the hub reports its text).
	PlanMove(requested string, version int64) (string, error)
	// MoveStore asks for the store to move to folder, a result of PlanMove. It returns at
	// once; the owner stops this Server to do it.
	MoveStore(folder string, version int64)
}

// StorageFolderProperty is the path, in the $edgeHub desired properties, of the store's
// folder (see StoreMover). Azure's edgeHub takes the same setting from its environment
// variable storageFolder; here it is part of the store-and-forward configuration.
const StorageFolderProperty = "storeAndForwardConfiguration.storageFolder"

// storageFolderOf returns storeAndForwardConfiguration.storageFolder of a desired document
// ("" when absent or null). deployment.ParseHub ignores the field, so its type is checked
// here: anything but a string is a 400, like any malformed field.
func storageFolderOf(desired map[string]any) (string, error) {
	sf, _ := desired["storeAndForwardConfiguration"].(map[string]any)
	v, ok := sf["storageFolder"]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", &deployment.Error{Code: deployment.CodeInvalid, Field: StorageFolderProperty,
			Reason: fmt.Sprintf("want a string (an absolute folder), got %s", jsonKind(v))}
	}
	return s, nil
}

// jsonKind names the JSON type of a decoded value, for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	default:
		return "a number"
	}
}
