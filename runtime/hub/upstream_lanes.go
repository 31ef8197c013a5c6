package hub

import (
	"strings"

	"github.com/outpost-edge/outpost/runtime/route"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

// Messages routed to $upstream are stored in one queue per sender, so that a sender's
// backlog never holds back another sender's live messages (the $upstream pump serves the
// queues in turn, pump_upstream.go):
//
//	"$upstream/{device}"           a device's (or leaf device's) messages
//	"$upstream/{device}/{module}"  a module's messages
//	"$upstream"                    the one shared queue of earlier versions (still drained)
//
// Device and module ids never contain '/' (IoT Hub's rule, and the topic parser splits on
// it), so the name is unambiguous and at most 10+128+1+128 bytes, well under
// store.MaxQueueName. A name that would be longer (ids beyond IoT Hub's 128 characters,
// which only a hand-made identity could have) falls back to the shared queue.
const upstreamLanePrefix = "$upstream/"

// upstreamID is the $upstream endpoint's id, the shared queue of earlier versions and the
// label every upstream queue is reported under (Stats.Sent, metrics).
var upstreamID = route.Endpoint{Kind: route.Upstream}.ID()

// upstreamQueue returns the store queue of sender's messages to $upstream.
func upstreamQueue(sender sas.Identity) string {
	name := upstreamLanePrefix + sender.DeviceID
	if sender.ModuleID != "" {
		name += "/" + sender.ModuleID
	}
	if len(name) > store.MaxQueueName || sender.DeviceID == "" {
		return upstreamID
	}
	return name
}

// isUpstreamQueue reports whether a store queue holds messages to $upstream: a sender's
// queue or the shared one.
func isUpstreamQueue(queue string) bool {
	return queue == upstreamID || strings.HasPrefix(queue, upstreamLanePrefix)
}

// queueOf returns the store queue a message from sender routed to ep goes to.
func queueOf(ep route.Endpoint, sender sas.Identity) string {
	if ep.Kind == route.Upstream {
		return upstreamQueue(sender)
	}
	return ep.ID()
}

// endpointLabel is the endpoint a store queue is reported under: "$upstream" for every
// sender's queue, so that the metrics have one series per endpoint, not one per sender.
func endpointLabel(queue string) string {
	if isUpstreamQueue(queue) {
		return upstreamID
	}
	return queue
}
