package features

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// What IoT Hub received: the fake hub captures every device-to-cloud
// message with a sequence number of its own (/fake/events); the scenarios'
// messages carry their sender's sequence number as the property "seq".

// receivedEvents fetches the messages IoT Hub received since the last call
// and returns every message received so far, oldest first.
func (w *world) receivedEvents(ctx context.Context) ([]hubEvent, error) {
	for {
		evs, err := w.api.events(ctx, lastSeq(w.received))
		if err != nil {
			return nil, err
		}
		w.received = append(w.received, evs...)
		if len(evs) < 1000 {
			return w.received, nil
		}
	}
}

// lastSeq is the fake hub's sequence number of the last event, 0 for none.
func lastSeq(evs []hubEvent) int64 {
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// eventsFrom returns the events whose sender is identity.
func eventsFrom(evs []hubEvent, identity string) []hubEvent {
	var out []hubEvent
	for _, e := range evs {
		if e.sender() == identity {
			out = append(out, e)
		}
	}
	return out
}

// seqOf returns a message's sender sequence number.
func seqOf(e hubEvent) (int64, error) {
	s, ok := e.Properties[propSeq]
	if !ok {
		return 0, fmt.Errorf("message %d from %s has no %q property", e.Seq, e.sender(), propSeq)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("message %d from %s: %s=%q", e.Seq, e.sender(), propSeq, s)
	}
	return n, nil
}

// arrival is what one sender's messages look like at IoT Hub: the sender's
// sequence numbers in order of arrival, without the repeats of messages
// that had arrived already (delivery is at least once), and how many
// repeats there were.
type arrival struct {
	seqs    []int64
	repeats int
}

// arrivalOf reads the arrival of identity's messages.
func arrivalOf(evs []hubEvent, identity string) (arrival, error) {
	var a arrival
	seen := map[int64]bool{}
	for _, e := range eventsFrom(evs, identity) {
		n, err := seqOf(e)
		if err != nil {
			return a, err
		}
		if seen[n] {
			a.repeats++
			continue
		}
		seen[n] = true
		a.seqs = append(a.seqs, n)
	}
	return a, nil
}

// missingSeqs returns the numbers of want that got lacks.
func missingSeqs(got, want []int64) []int64 {
	have := map[int64]bool{}
	for _, n := range got {
		have[n] = true
	}
	var out []int64
	for _, n := range want {
		if !have[n] {
			out = append(out, n)
		}
	}
	return out
}

// sameSeqs checks that got is want, saying how it differs.
func sameSeqs(who string, got, want []int64) error {
	if slices.Equal(got, want) {
		return nil
	}
	wantSet := map[int64]bool{}
	for _, n := range want {
		wantSet[n] = true
	}
	gotSet := map[int64]bool{}
	var extra []int64
	for _, n := range got {
		gotSet[n] = true
		if !wantSet[n] {
			extra = append(extra, n)
		}
	}
	var missing []int64
	for _, n := range want {
		if !gotSet[n] {
			missing = append(missing, n)
		}
	}
	switch {
	case len(missing) > 0 || len(extra) > 0:
		return fmt.Errorf("%s: %d of %d messages arrived; missing %s; unexpected %s", who, len(got)-len(extra), len(want), seqList(missing), seqList(extra))
	default:
		return fmt.Errorf("%s: every message arrived, but out of order: %s", who, seqList(got))
	}
}

// seqList renders sequence numbers compactly: "1-5, 7, 9-12".
func seqList(ns []int64) string {
	if len(ns) == 0 {
		return "none"
	}
	var parts []string
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.FormatInt(ns[i], 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", ns[i], ns[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
