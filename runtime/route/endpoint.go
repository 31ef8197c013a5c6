package route

import "strings"

// EndpointKind says where a route delivers.
type EndpointKind int

// Endpoint kinds.
const (
	// Upstream is the cloud: IoT Hub via the hub's upstream connection ($upstream).
	Upstream EndpointKind = iota + 1
	// ModuleInput is an input of a local module (BrokeredEndpoint("/modules/m/inputs/i")).
	ModuleInput
)

// Endpoint is a route's sink.
type Endpoint struct {
	Kind EndpointKind
	// Module and Input name the module input; empty for Upstream.
	Module, Input string
}

// ID identifies the endpoint: "$upstream" or "/modules/{m}/inputs/{i}". Table.Evaluate
// deduplicates and sorts by it; a queue per endpoint can be keyed by it.
func (e Endpoint) ID() string {
	if e.Kind == Upstream {
		return "$upstream"
	}
	return "/modules/" + e.Module + "/inputs/" + e.Input
}

// String returns ID().
func (e Endpoint) String() string { return e.ID() }

// parseBrokered turns the address of BrokeredEndpoint("...") into an Endpoint the way
// edgeHub does (EndpointFactory.cs): trim spaces, drop one leading and one trailing '/',
// split on '/', require exactly four segments and use only segments 1 (module) and 3
// (input). Segments 0 and 2 are not checked, so "/a/m/b/i" is accepted as module m,
// input i, exactly as Azure accepts it. Unlike Azure, empty module or input names are
// rejected: they can never be delivered to.
func parseBrokered(addr string) (Endpoint, string) {
	s := strings.TrimSpace(addr)
	if s == "" {
		return Endpoint{}, "BrokeredEndpoint address is empty"
	}
	s = strings.TrimPrefix(s, "/")
	s = strings.TrimSuffix(s, "/")
	items := strings.Split(s, "/")
	if len(items) != 4 {
		return Endpoint{}, "BrokeredEndpoint address " + quoteText(addr) + " is not of the form /modules/{module}/inputs/{input}"
	}
	if items[1] == "" || items[3] == "" {
		return Endpoint{}, "BrokeredEndpoint address " + quoteText(addr) + " has an empty module or input name"
	}
	return Endpoint{Kind: ModuleInput, Module: items[1], Input: items[3]}, ""
}
