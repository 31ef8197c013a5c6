package conformance

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// checkReconnect restarts the edge hub (stop, then start on the same address and data
// directory, as a restarted edgeHub container) and checks that the module:
//
//   - connects again within reconnectWithinSeconds of the hub being back;
//   - loses nothing it acknowledged: for the first output that declares expectOnInput,
//     reconnectBatch samples are sent to its input and acknowledged by the module before
//     the restart, reconnectBatch more after it, and every one of them must come out of
//     the output (matched by SeqProperty when the module forwards application properties,
//     else counted);
//   - answers its first declared method again.
func (h *harness) checkReconnect() (res Result) {
	res = Result{Name: CheckReconnect}
	start := h.now()
	defer func() { res.Duration = h.now().Sub(start) }()
	timeout := duration(h.spec.MessageTimeoutSeconds)

	var flow *Output
	var in Input
	for i, o := range h.spec.Outputs {
		if o.ExpectOnInput != "" {
			flow = &h.spec.Outputs[i]
			for _, x := range h.spec.Inputs {
				if x.Name == o.ExpectOnInput {
					in = x
				}
			}
			break
		}
	}
	mark := h.probe.count()
	var seqs []string
	var notes []string
	if flow != nil {
		ep := h.inputEndpoint(in.Name)
		before := h.edge.stats().Sent[ep]
		for range reconnectBatch {
			n, err := h.sendSample(in, timeout)
			if err != nil {
				return h.reconnectFail(res, fmt.Sprintf("the harness could not send a sample before the restart: %v", err))
			}
			seqs = append(seqs, n)
		}
		h.poll(timeout, func() bool { return h.edge.stats().Sent[ep] >= before+reconnectBatch })
		notes = append(notes, fmt.Sprintf("%d of %d samples acknowledged by the module before the restart", h.edge.stats().Sent[ep]-before, reconnectBatch))
	}

	h.log.Info("restarting the edge hub")
	if err := h.edge.stop(); err != nil {
		return h.reconnectFail(res, fmt.Sprintf("the harness could not stop the edge hub: %v", err))
	}
	ctx, cancel := context.WithTimeout(h.alive, setupTimeout)
	err := h.edge.start(ctx)
	cancel()
	if err != nil {
		return h.reconnectFail(res, fmt.Sprintf("the harness could not restart the edge hub: %v", err))
	}
	ready := h.now()
	instance := h.edge.starts
	bound := duration(h.spec.ReconnectWithinSeconds)
	_, ok := h.events.waitFor(h.alive, bound, func(e event) bool {
		return e.Instance == instance && e.Msg == msgConnected && e.Attrs[eventAttrClientID] == h.moduleID
	})
	took := h.now().Sub(ready)
	if !ok {
		why := fmt.Sprintf("did not reconnect within %v of the edge hub's restart", bound)
		if exited := h.moduleExited(); exited != "" {
			why = exited + " instead of reconnecting after the edge hub's restart"
		}
		res.Details = append(res.Details, notes...)
		return h.reconnectFail(res, why)
	}
	evidence := []string{fmt.Sprintf("reconnected %v after the edge hub restarted (bound %v)", ms(took), bound)}

	if flow != nil {
		for range reconnectBatch {
			n, err := h.sendSample(in, timeout)
			if err != nil {
				return h.reconnectFail(res, fmt.Sprintf("the harness could not send a sample after the restart: %v", err))
			}
			seqs = append(seqs, n)
		}
		missing := seqs
		got, _ := h.probe.waitFrom(h.alive, flow.Name, mark, timeout, func(r []received) bool {
			missing = missingSeqs(seqs, r)
			return len(missing) == 0
		})
		if len(missing) > 0 {
			res.Details = append(res.Details, notes...)
			return h.reconnectFail(res, fmt.Sprintf("%s, but %d of the %d samples sent to %s across the restart never came out of %s (missing %s=%s; got %d message(s))",
				evidence[0], len(missing), len(seqs), in.Name, flow.Name, SeqProperty, strings.Join(missing, ","), len(got)))
		}
		evidence = append(evidence, fmt.Sprintf("all %d samples sent to %s across the restart came out of %s (%s)", len(seqs), in.Name, flow.Name, notes[0]))
	}
	if len(h.spec.Methods) > 0 {
		m := h.spec.Methods[0]
		status, _, mt, err := h.invoke(m)
		switch {
		case err != nil:
			return h.reconnectFail(res, fmt.Sprintf("%s, but method %s got no answer after it: %v", evidence[0], m.Name, err))
		case status != m.ExpectStatus:
			return h.reconnectFail(res, fmt.Sprintf("%s, but method %s answered %d after it, want %d", evidence[0], m.Name, status, m.ExpectStatus))
		}
		evidence = append(evidence, fmt.Sprintf("%s answered %d in %v", m.Name, status, ms(mt)))
	}
	res.Verdict = Pass
	res.Evidence = strings.Join(evidence, "; ")
	return res
}

func (h *harness) reconnectFail(res Result, why string) Result {
	res.Verdict, res.Evidence = Fail, why
	return res
}

// sendSample sends in's sample and returns its sequence number.
func (h *harness) sendSample(in Input, timeout time.Duration) (string, error) {
	msg, n := sample(in)
	ctx, cancel := context.WithTimeout(h.alive, timeout)
	defer cancel()
	return n, h.probe.send(ctx, in.Name, msg)
}

// missingSeqs returns the sequence numbers in sent that no message in got carries. When
// no message carries SeqProperty at all (the module does not forward application
// properties) it counts instead: as many messages as samples.
func missingSeqs(sent []string, got []received) []string {
	seen := map[string]bool{}
	carried := false
	for _, r := range got {
		if n, ok := r.Msg.Properties[SeqProperty]; ok {
			seen[n], carried = true, true
		}
	}
	if !carried {
		if len(got) >= len(sent) {
			return nil
		}
		return sent[len(got):]
	}
	var missing []string
	for _, n := range sent {
		if !seen[n] {
			missing = append(missing, n)
		}
	}
	return missing
}
