package conformance

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// seq numbers the messages the harness sends.
var seq atomic.Int64

// sample builds the message the harness sends to input in, carrying a fresh sequence
// number (returned).
func sample(in Input) (iothub.Message, string) {
	n := strconv.FormatInt(seq.Add(1), 10)
	props := maps.Clone(in.Properties)
	if props == nil {
		props = map[string]string{}
	}
	props[SeqProperty] = n
	return iothub.Message{
		Body:       in.Sample,
		Properties: props,
		System: map[string]string{
			iothub.SysMessageID: "conformance-" + n, iothub.SysContentType: "application/json",
			iothub.SysContentEncoding: "utf-8",
		},
	}, n
}

// inputEndpoint is the edge hub's store queue (and Stats.Sent key) of a module input.
func (h *harness) inputEndpoint(input string) string {
	return "/modules/" + h.spec.Module + "/inputs/" + input
}

// checkIO sends one sample to each declared input, checks that the module acknowledged
// it (the hub counts the delivery only after the module's PUBACK), then checks each
// declared output: a message within the message timeout (after the samples for an output
// that declares expectOnInput), each within maxBytes, and no publish of the module refused
// by the hub as malformed or too large.
func (h *harness) checkIO() []Result {
	var results []Result
	mark := h.probe.count()
	sentAt := map[string]time.Time{}
	sentSeq := map[string]string{}
	timeout := duration(h.spec.MessageTimeoutSeconds)
	for _, in := range h.spec.Inputs {
		res := Result{Name: CheckInput + "/" + in.Name}
		start := h.now()
		ep := h.inputEndpoint(in.Name)
		before := h.edge.stats().Sent[ep]
		msg, n := sample(in)
		ctx, cancel := context.WithTimeout(h.alive, timeout)
		err := h.probe.send(ctx, in.Name, msg)
		cancel()
		if err != nil {
			res.Verdict, res.Evidence = Fail, fmt.Sprintf("the harness could not send the sample: %v", err)
			res.Duration = h.now().Sub(start)
			results = append(results, res)
			continue
		}
		sentAt[in.Name], sentSeq[in.Name] = start, n
		acked := h.poll(timeout, func() bool { return h.edge.stats().Sent[ep] > before })
		res.Duration = h.now().Sub(start)
		if acked {
			res.Verdict = Pass
			res.Evidence = fmt.Sprintf("the sample (%d bytes, %s=%s) was delivered to %s and acknowledged by the module after %v",
				msg.Size(), SeqProperty, n, in.Name, ms(res.Duration))
		} else {
			st := h.edge.stats()
			res.Verdict = Fail
			res.Evidence = fmt.Sprintf("the sample sent to %s was not acknowledged by the module within %v", in.Name, timeout)
			res.Details = []string{fmt.Sprintf("hub: delivery failures %d, deferred deliveries %d (module not connected or not subscribed to its inputs), dead-lettered %d",
				st.DeliveryFailures, st.Deferred, st.DeadLettered)}
			if exited := h.moduleExited(); exited != "" {
				res.Details = append(res.Details, exited)
			}
		}
		results = append(results, res)
	}
	if len(h.spec.Inputs) == 0 {
		results = append(results, Result{Name: CheckInput, Verdict: Skip, Evidence: "no inputs declared in the spec"})
	}
	for _, out := range h.spec.Outputs {
		results = append(results, h.checkOutput(out, mark, sentAt, sentSeq, timeout))
	}
	if len(h.spec.Outputs) == 0 {
		results = append(results, Result{Name: CheckOutput, Verdict: Skip, Evidence: "no outputs declared in the spec"})
	}
	return results
}

// checkOutput checks one declared output.
func (h *harness) checkOutput(out Output, mark int, sentAt map[string]time.Time, sentSeq map[string]string, timeout time.Duration) Result {
	res := Result{Name: CheckOutput + "/" + out.Name}
	start := h.now()
	from, since := 0, h.started
	cause := "by itself"
	if out.ExpectOnInput != "" {
		if _, ok := sentAt[out.ExpectOnInput]; !ok {
			res.Verdict, res.Evidence = Skip, fmt.Sprintf("no sample could be sent to %s, which feeds it", out.ExpectOnInput)
			return res
		}
		from, since = mark, sentAt[out.ExpectOnInput]
		cause = "after the sample sent to " + out.ExpectOnInput
	}
	msgs, ok := h.probe.waitFrom(h.alive, out.Name, from, timeout, func(r []received) bool { return len(r) > 0 })
	res.Duration = h.now().Sub(start)
	for _, e := range h.events.filter(func(e event) bool {
		return e.Attrs[eventAttrClientID] == h.moduleID &&
			(e.Msg == msgMalformedRefused || e.Msg == msgTooLargeRefused || e.Msg == msgTooLargeUpstream)
	}) {
		res.Details = append(res.Details, fmt.Sprintf("the hub refused a publish of the module: %s (%s)", e.Msg, e.Attrs[eventAttrErr]))
	}
	for _, r := range msgs {
		if size := r.Msg.Size(); size > out.MaxBytes {
			res.Details = append(res.Details, fmt.Sprintf("a message of %d bytes, over maxBytes %d", size, out.MaxBytes))
		}
		for k := range r.Msg.Properties {
			if k == "" {
				res.Details = append(res.Details, "a message with an empty application property name")
			}
		}
	}
	switch {
	case !ok:
		res.Verdict = Fail
		res.Evidence = fmt.Sprintf("no message on %s within %v %s", out.Name, timeout, cause)
		if exited := h.moduleExited(); exited != "" {
			res.Details = append(res.Details, exited)
		}
	case len(res.Details) > 0:
		res.Verdict = Fail
		res.Evidence = fmt.Sprintf("%d message(s) on %s, not all valid: %s", len(msgs), out.Name, res.Details[0])
	default:
		r := msgs[0]
		res.Verdict = Pass
		carried := ""
		if n := sentSeq[out.ExpectOnInput]; n != "" && r.Msg.Properties[SeqProperty] == n {
			carried = fmt.Sprintf(", carrying %s=%s through", SeqProperty, n)
		}
		res.Evidence = fmt.Sprintf("a message on %s %v %s (%d bytes <= %d; properties %v%s)", out.Name,
			ms(r.At.Sub(since)), cause, r.Msg.Size(), out.MaxBytes, sortedKeys(r.Msg.Properties), carried)
	}
	return res
}

// poll calls cond every pollInterval until it holds, timeout passes or the module exits.
func (h *harness) poll(timeout time.Duration, cond func() bool) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-t.C:
			return cond()
		case <-h.alive.Done():
			return cond()
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
