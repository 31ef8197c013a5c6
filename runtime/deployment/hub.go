package deployment

import (
	"math"
	"strings"
)

// DefaultPriority is the priority of a route that sets none. It ranks below
// every explicit priority (0 to 9), as Azure's RouteFactory.DefaultPriority.
const DefaultPriority = 2000000000

// DefaultTimeToLiveSecs is the store-and-forward TTL used when the manifest
// sets none (the portal and documentation default).
const DefaultTimeToLiveSecs = 7200

// HubConfig is a validated $edgeHub desired configuration.
type HubConfig struct {
	SchemaVersion   string
	Version         int64            // "$version" of the desired document (0 if absent)
	Routes          map[string]Route // keyed by route name
	StoreAndForward StoreAndForward
}

// Route is one named route. Expr is the route text ("FROM … WHERE … INTO …"),
// whose grammar another package checks.
type Route struct {
	Name, Expr     string
	Priority       int    // 0 (highest) to 9, or DefaultPriority
	TimeToLiveSecs uint32 // 0 means use StoreAndForward.TimeToLiveSecs
}

// StoreAndForward is storeAndForwardConfiguration.
type StoreAndForward struct {
	TimeToLiveSecs int   // negative means infinite; DefaultTimeToLiveSecs when absent
	MaxSizeBytes   int64 // storeLimits.maxSizeBytes; 0 = unset
}

// ParseHub parses and validates the $edgeHub "properties.desired" object
// following A.3. edgeHub only ever reports 200 or 400, so every error,
// including an unsupported schemaVersion, is a 400.
//   - schemaVersion "1.0" to "1.3" (major 1, minor 0..3);
//   - 1.0: routes are strings; a blank or null route is skipped, as Azure does;
//   - 1.1+: a route is a string or {route, priority 0-9, timeToLiveSecs};
//     routes and storeAndForwardConfiguration must be present and non-null;
//     if a name appears as both a string and an object, the object wins;
//   - route text must be non-blank.
//
// Unknown fields (mqttBroker, integrity, …) are ignored.
func ParseHub(desired []byte) (*HubConfig, error) {
	c, err := parseHub(desired)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func parseHub(desired []byte) (*HubConfig, *Error) {
	root, err := parseDocument(desired)
	if err != nil {
		return nil, err
	}
	if root.kind != kindObject {
		return nil, wrongType(nil, "a JSON object", root)
	}
	c := &HubConfig{}
	if c.Version, err = versionField(root); err != nil {
		return nil, err
	}
	var minor int
	if c.SchemaVersion, minor, err = checkHubSchema(root); err != nil {
		return nil, err
	}
	legacy := minor == 0
	if c.Routes, err = parseRoutes(root.get("routes"), path{"routes"}, legacy); err != nil {
		return nil, err
	}
	if c.StoreAndForward, err = parseStoreAndForward(root.get("storeAndForwardConfiguration"), path{"storeAndForwardConfiguration"}, legacy); err != nil {
		return nil, err
	}
	return c, nil
}

func parseRoutes(v *value, p path, legacy bool) (map[string]Route, *Error) {
	var obj *value
	var err *Error
	if legacy {
		obj, err = objectAt(v, p)
	} else {
		obj, err = requiredObject(v, p)
	}
	if err != nil {
		return nil, err
	}
	routes := make(map[string]Route)
	if obj == nil {
		return routes, nil
	}
	fromObject := make(map[string]bool)
	for _, m := range obj.members {
		rp := p.child(m.key)
		if strings.TrimSpace(m.key) == "" {
			return nil, invalidf(rp, "route name must not be empty")
		}
		if legacy {
			switch {
			case !m.val.present():
				continue // Azure skips null routes in 1.0
			case m.val.kind != kindString:
				return nil, wrongType(rp, "a string in schema 1.0", m.val)
			case strings.TrimSpace(m.val.str) == "":
				continue // and blank ones
			}
			routes[m.key] = Route{Name: m.key, Expr: m.val.str, Priority: DefaultPriority}
			continue
		}
		switch m.val.kind {
		case kindString:
			if strings.TrimSpace(m.val.str) == "" {
				return nil, invalidf(rp, "route must not be empty")
			}
			if fromObject[m.key] {
				continue // the object form of this name wins
			}
			routes[m.key] = Route{Name: m.key, Expr: m.val.str, Priority: DefaultPriority}
		case kindObject:
			r, err := parseRouteSpec(m.key, m.val, rp)
			if err != nil {
				return nil, err
			}
			routes[m.key] = r
			fromObject[m.key] = true
		default:
			return nil, wrongType(rp, "a string or an object", m.val)
		}
	}
	return routes, nil
}

func parseRouteSpec(name string, obj *value, p path) (Route, *Error) {
	r := Route{Name: name, Priority: DefaultPriority}
	var err *Error
	if r.Expr, err = requiredString(obj.get("route"), p.child("route")); err != nil {
		return r, err
	}
	if pv := obj.get("priority"); pv.present() {
		n, err := integerAt(pv, p.child("priority"), 0, 9)
		if err != nil {
			return r, err
		}
		r.Priority = int(n)
	}
	if tv := obj.get("timeToLiveSecs"); tv.present() {
		n, err := integerAt(tv, p.child("timeToLiveSecs"), 0, math.MaxUint32)
		if err != nil {
			return r, err
		}
		r.TimeToLiveSecs = uint32(n)
	}
	return r, nil
}

func parseStoreAndForward(v *value, p path, legacy bool) (StoreAndForward, *Error) {
	sf := StoreAndForward{TimeToLiveSecs: DefaultTimeToLiveSecs}
	var obj *value
	var err *Error
	if legacy {
		obj, err = objectAt(v, p)
	} else {
		obj, err = requiredObject(v, p)
	}
	if err != nil || obj == nil {
		return sf, err
	}
	if tv := obj.get("timeToLiveSecs"); tv.present() {
		n, err := integerAt(tv, p.child("timeToLiveSecs"), math.MinInt32, math.MaxInt32)
		if err != nil {
			return sf, err
		}
		sf.TimeToLiveSecs = int(n)
	}
	lp := p.child("storeLimits")
	limits, err := objectAt(obj.get("storeLimits"), lp)
	if err != nil || limits == nil {
		return sf, err
	}
	if mv := limits.get("maxSizeBytes"); mv.present() {
		if sf.MaxSizeBytes, err = integerAt(mv, lp.child("maxSizeBytes"), 0, math.MaxInt64); err != nil {
			return sf, err
		}
	}
	return sf, nil
}
