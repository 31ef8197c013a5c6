package route

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultPriority is the priority of a route given without one (RouteFactory.cs): below
// every explicit priority 0..9.
const DefaultPriority = 2000000000

// Spec is one entry of the $edgeHub routes section.
type Spec struct {
	// Name is the route name; unique within a table.
	Name string
	// Text is the route, e.g. FROM /messages/* INTO $upstream.
	Text string
	// Priority is 0 (highest) .. 9, or DefaultPriority for a route given as a plain
	// string. Note that the zero value means priority 0, not the default.
	Priority int
	// TTL is the route's time to live; 0 means the global TTL (storeAndForwardConfiguration).
	TTL time.Duration
}

// Target is one destination for a message: an endpoint with the priority and TTL the
// message is enqueued with, and the route that decided them.
type Target struct {
	Endpoint Endpoint
	Priority int
	TTL      time.Duration
	Route    string
}

// Table is a compiled set of routes. It is immutable and safe for concurrent use; a
// configuration change builds a new Table (a route change affects only new messages).
type Table struct {
	routes  []*Route
	entries []entry
}

type entry struct {
	id       string // route.Sink.ID()
	route    *Route
	priority int
	ttl      time.Duration
}

// Compile parses and checks every spec. It reports all problems at once, joined, each
// an *Error naming its route, so a deployment can be rejected with the full list (Azure
// rejects the whole $edgeHub configuration on any route error).
func Compile(specs []Spec) (*Table, error) {
	t := &Table{}
	var errs []error
	seen := make(map[string]bool, len(specs))
	for _, s := range specs {
		if msg := checkSpec(s, seen); msg != "" {
			errs = append(errs, &Error{Route: s.Name, Msg: msg, Err: ErrSpec})
			continue
		}
		seen[s.Name] = true
		r, err := Parse(s.Name, s.Text)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.routes = append(t.routes, r)
		t.entries = append(t.entries, entry{id: r.Sink.ID(), route: r, priority: s.Priority, ttl: s.TTL})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

func checkSpec(s Spec, seen map[string]bool) string {
	switch {
	case s.Name == "":
		return "route name is empty"
	case seen[s.Name]:
		return "duplicate route name"
	case (s.Priority < 0 || s.Priority > 9) && s.Priority != DefaultPriority:
		return fmt.Sprintf("priority %d is not in 0..9", s.Priority)
	case s.TTL < 0:
		return fmt.Sprintf("time to live %v is negative", s.TTL)
	}
	return ""
}

// Routes returns the compiled routes in spec order. The slice is a copy; the routes are shared.
func (t *Table) Routes() []*Route {
	if t == nil {
		return nil
	}
	return slices.Clone(t.routes)
}

// Evaluate returns where m goes: one Target per endpoint that at least one matching route
// sends to, sorted by endpoint ID. When several matching routes share an endpoint, the
// message enters it once, with the best (lowest) priority, and the TTL of the route that
// supplied it (Evaluator.cs). Azure picks arbitrarily among routes of equal priority; we
// pick the route whose name sorts first, so the TTL is deterministic. An empty result
// means the message is dropped (edgeHub has no fallback route).
func (t *Table) Evaluate(m *Message) []Target {
	if t == nil || m == nil {
		return nil
	}
	e := newEnv(m)
	var hits []hit
	for i := range t.entries {
		en := &t.entries[i]
		if !en.route.match(e) {
			continue
		}
		cand := hit{id: en.id, t: Target{Endpoint: en.route.Sink, Priority: en.priority, TTL: en.ttl, Route: en.route.Name}}
		j := slices.IndexFunc(hits, func(h hit) bool { return h.id == cand.id })
		switch {
		case j < 0:
			hits = append(hits, cand)
		case better(cand.t, hits[j].t):
			hits[j] = cand
		}
	}
	if len(hits) == 0 {
		return nil
	}
	slices.SortFunc(hits, func(a, b hit) int { return strings.Compare(a.id, b.id) })
	out := make([]Target, len(hits))
	for i, h := range hits {
		out[i] = h.t
	}
	return out
}

// hit is a Target with its endpoint ID, computed once at Compile time.
type hit struct {
	id string
	t  Target
}

func better(a, b Target) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	return a.Route < b.Route
}
