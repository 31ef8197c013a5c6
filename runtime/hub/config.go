package hub

import (
	"errors"
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
