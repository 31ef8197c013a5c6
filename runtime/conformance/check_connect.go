package conformance

import (
	"fmt"
	"sort"
	"strings"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// checkConnect waits for the module's first connection to the edge hub. The hub serves
// MQTT over TLS only, with a certificate from an edge CA made for this run, and the module
// knows the CA only from EdgeModuleCACertificateFile and its key only from
// EdgeHubConnectionString: a connection proves that it used the injected environment.
func (h *harness) checkConnect() Result {
	start := h.now()
	res := Result{Name: CheckConnect}
	e, ok := h.events.waitFor(h.alive, duration(h.spec.ConnectTimeoutSeconds), func(e event) bool {
		return e.Msg == msgConnected && e.Attrs[eventAttrClientID] == h.moduleID
	})
	res.Duration = h.now().Sub(start)
	if ok {
		h.conn = e
		res.Verdict = Pass
		res.Evidence = fmt.Sprintf("connected as %s over TLS to %s %s after start, trusting the run's edge CA from %s and authenticating with %s",
			h.moduleID, h.edge.opts.TLSAddr, ms(h.now().Sub(h.started)), agent.EnvModuleCACertificateFile, agent.EnvEdgeHubConnectionString)
		res.Details = []string{"remote " + e.Attrs[eventAttrRemote] + ", clean_session " + e.Attrs["clean_session"]}
		return res
	}
	res.Verdict = Fail
	for _, r := range h.events.filter(func(e event) bool { return e.Msg == msgRefused }) {
		res.Details = append(res.Details, fmt.Sprintf("the hub refused client %q: %s", r.Attrs[eventAttrClientID], r.Attrs[eventAttrErr]))
	}
	switch exited := h.moduleExited(); {
	case exited != "":
		res.Evidence = exited + " before connecting"
		res.Details = append(res.Details, lastLines(h.inst.Output(), 5)...)
	case len(res.Details) > 0:
		res.Evidence = fmt.Sprintf("no accepted connection as %s within %v; the hub refused %d attempt(s)", h.moduleID, res.Duration.Round(100e6), len(res.Details))
	default:
		res.Evidence = fmt.Sprintf("no connection attempt as %s within %v (does it read %s and %s?)", h.moduleID,
			res.Duration.Round(100e6), agent.EnvEdgeHubConnectionString, EnvPort)
	}
	return res
}

// checkIdentity looks through the edge hub's log of the whole run for anything the module
// did outside its own identity: publishes and subscriptions the hub refused as not its
// own topics, and connections under another client id (only the module and the harness's
// probe talk to this hub).
func (h *harness) checkIdentity() Result {
	res := Result{Name: CheckIdentity}
	conns := 0
	others := map[string]int{}
	for _, e := range h.events.filter(func(event) bool { return true }) {
		cid := e.Attrs[eventAttrClientID]
		switch {
		case cid == h.moduleID && e.Msg == msgConnected:
			conns++
		case cid == h.moduleID && e.Msg == msgPublishRefused:
			res.Details = append(res.Details, fmt.Sprintf("publish on %s refused: %s", e.Attrs[eventAttrTopic], e.Attrs[eventAttrErr]))
		case cid == h.moduleID && e.Msg == msgSubscribeRefused:
			res.Details = append(res.Details, fmt.Sprintf("subscription to %s refused: %s", e.Attrs[eventAttrFilter], e.Attrs[eventAttrErr]))
		case (e.Msg == msgConnected || e.Msg == msgRefused) && cid != h.moduleID && cid != h.probeID:
			others[cid]++
		}
	}
	ids := make([]string, 0, len(others))
	for id := range others {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		res.Details = append(res.Details, fmt.Sprintf("%d connection attempt(s) as %q, not the module's identity", others[id], id))
	}
	if len(res.Details) > 0 {
		res.Verdict = Fail
		res.Evidence = fmt.Sprintf("acted outside its identity %s %d time(s): %s", h.moduleID, len(res.Details), res.Details[0])
		res.Details = res.Details[1:]
		return res
	}
	res.Verdict = Pass
	res.Evidence = fmt.Sprintf("%d connection(s), all as %s; the hub refused no publish or subscription outside its own topics", conns, h.moduleID)
	if conns == 0 {
		res.Evidence = "no connection under another identity (nor under its own)"
	}
	return res
}

// lastLines returns the last n non-empty lines of s.
func lastLines(s string, n int) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, "module: "+truncate(l, 300))
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}
