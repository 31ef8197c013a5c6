package features

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cucumber/godog"
)

// registerMessageSteps: telemetry and module outputs, and what IoT Hub and
// modules receive of them.
func registerMessageSteps(sc *godog.ScenarioContext, w *world) {
	sc.Step(`^`+nameList+` each send a message every (\S+)$`, w.steadyTraffic)
	sc.Step(`^`+nameList+` stops? sending$`, w.stopTraffic)
	sc.Step(`^`+nameList+` (?:each )?sends? (\d+) messages?$`, w.sendN)
	sc.Step(`^"([^"]*)" sends (\d+) messages? on output "([^"]*)"$`, w.sendOnOutput)
	sc.Step(`^"([^"]*)" sends (\d+) messages of (\d+) bytes$`, w.sendSized)
	sc.Step(`^"([^"]*)" sends messages of (\d+) bytes until edgeHub refuses one$`, w.sendUntilRefused)
	sc.Step(`^"([^"]*)" sends these messages on output "([^"]*)":$`, w.sendTable)
	sc.Step(`^for (\d+) seconds edgeHub keeps accepting their messages and IoT Hub receives none$`, w.acceptingOffline)
	sc.Step(`^IoT Hub receives nothing from the device for (\d+) seconds?$`, w.nothingReceived)
	sc.Step(`^IoT Hub receives every message of `+nameList+` in the order each sent them$`, w.everyMessageInOrder)
	sc.Step(`^IoT Hub receives messages (\d+) to (\d+) of "([^"]*)", in order, and none of (\d+) to (\d+)$`, w.rangeReceived)
	sc.Step(`^edgeHub accepted at least (\d+) messages of "([^"]*)" before refusing one$`, w.acceptedBeforeRefusal)
	sc.Step(`^IoT Hub receives exactly the messages edgeHub accepted from "([^"]*)", in order$`, w.exactlyAccepted)
	sc.Step(`^"([^"]*)" can send messages again$`, w.canSendAgain)
	sc.Step(`^IoT Hub receives the newest messages of "([^"]*)", in order up to the last one, and not the oldest$`, w.newestReceived)
	sc.Step(`^IoT Hub has one connection from the device for them all, edgeHub's, beside the edge agent's own$`, w.oneConnection)
	sc.Step(`^IoT Hub attributes every message to its real sender$`, w.realSenders)
	sc.Step(`^"([^"]*)" receives on input "([^"]*)" the messages with (\w+) (.+) from "([^"]*)", in that order$`, w.inputReceived)
	sc.Step(`^IoT Hub receives from "([^"]*)" the messages with (\w+) (.+), in that order$`, w.hubReceivedValues)
	sc.Step(`^IoT Hub receives the messages "([^"]*)" sent on output "([^"]*)" before those on output "([^"]*)", each in the order sent$`, w.priorityOrder)
}

// Timeouts of the message checks.
const (
	// deliveryTimeout bounds the wait for stored messages to reach IoT Hub
	// once the network is back, or a module.
	deliveryTimeout = 30 * time.Second
	// refusalTimeout is how long a message may wait for edgeHub's PUBACK
	// before it counts as refused (a refused publish is never
	// acknowledged: edgeHub closes the connection, the SDK sends it again).
	refusalTimeout = 3 * time.Second
	// maxSends bounds "sends until edgeHub refuses one".
	maxSends = 200
)

func (w *world) clientsOf(list string) ([]*localClient, error) {
	names, err := quotedNames(list)
	if err != nil {
		return nil, err
	}
	var out []*localClient
	for _, n := range names {
		c, err := w.client(n)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (w *world) steadyTraffic(list, every string) error {
	period, err := time.ParseDuration(every)
	if err != nil || period <= 0 {
		return fmt.Errorf("%q: want a duration such as 50ms", every)
	}
	cs, err := w.clientsOf(list)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := c.startTraffic(period); err != nil {
			return err
		}
	}
	return nil
}

func (w *world) stopTraffic(list string) error {
	cs, err := w.clientsOf(list)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		if c.traffic == nil {
			return fmt.Errorf("%s is not sending", c.kind())
		}
		errs = append(errs, c.traffic.stop())
		c.traffic = nil
		if len(c.sentSeqs()) == 0 {
			errs = append(errs, fmt.Errorf("%s sent nothing", c.kind()))
		}
	}
	return errors.Join(errs...)
}

func (w *world) sendN(ctx context.Context, list string, n int) error {
	cs, err := w.clientsOf(list)
	if err != nil {
		return err
	}
	for _, c := range cs {
		for range n {
			if _, err := c.send(ctx, "", nil, 0, sendTimeout); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *world) sendOnOutput(ctx context.Context, name string, n int, output string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	if !c.module {
		return fmt.Errorf("%s has no outputs: only modules do", c.kind())
	}
	for range n {
		if _, err := c.send(ctx, output, map[string]string{"output": output}, 0, sendTimeout); err != nil {
			return err
		}
	}
	return nil
}

func (w *world) sendSized(ctx context.Context, name string, n, size int) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	for range n {
		if _, err := c.send(ctx, "", nil, size, sendTimeout); err != nil {
			return err
		}
	}
	return nil
}

// sendUntilRefused sends messages until one is not acknowledged within
// refusalTimeout. The refused one is not recorded as sent.
func (w *world) sendUntilRefused(ctx context.Context, name string, size int) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	for range maxSends {
		if seq, err := c.send(ctx, "", nil, size, refusalTimeout); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				godog.Logf(ctx, "edgeHub accepted %d messages of %s, then refused message %d", len(c.sentSeqs()), c.kind(), seq)
				return nil
			}
			return err
		}
	}
	return fmt.Errorf("edgeHub accepted all %d messages of %d bytes: its store is not capped", maxSends, size)
}

// sendTable sends one message per row on output; the columns are message
// fields: application properties and members of the JSON body.
func (w *world) sendTable(ctx context.Context, name, output string, table *godog.Table) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	if len(table.Rows) < 2 {
		return fmt.Errorf("the table needs a header row and at least one message")
	}
	header := table.Rows[0].Cells
	for _, row := range table.Rows[1:] {
		fields := map[string]string{}
		for i, cell := range row.Cells {
			fields[header[i].Value] = strings.TrimSpace(cell.Value)
		}
		if _, err := c.send(ctx, output, fields, 0, sendTimeout); err != nil {
			return err
		}
	}
	return nil
}

// acceptingOffline watches for d while the clients keep sending: edgeHub
// must keep acknowledging their messages, and IoT Hub receive nothing.
func (w *world) acceptingOffline(ctx context.Context, secs int) error {
	start := map[string]int{}
	for name, c := range w.clients {
		if c.traffic != nil {
			start[name] = len(c.sentSeqs())
		}
	}
	if len(start) == 0 {
		return fmt.Errorf("no module or leaf device is sending")
	}
	if err := w.nothingReceived(ctx, secs); err != nil {
		return err
	}
	for name, n := range start {
		if got := len(w.clients[name].sentSeqs()); got <= n {
			return fmt.Errorf("%q: edgeHub acknowledged no message while IoT Hub was unreachable (%d before, %d after)", name, n, got)
		}
	}
	return nil
}

// nothingReceived checks for secs seconds that IoT Hub receives no message
// since the network was cut.
func (w *world) nothingReceived(ctx context.Context, secs int) error {
	d := time.Duration(secs) * time.Second
	return consistently(ctx, d, fmt.Sprintf("IoT Hub receives nothing for %s", d), func(ctx context.Context) error {
		evs, err := w.receivedEvents(ctx)
		if err != nil {
			return err
		}
		if last := lastSeq(evs); last > w.mark {
			return fmt.Errorf("IoT Hub received %d messages, the last from %s", last-w.mark, evs[len(evs)-1].sender())
		}
		return nil
	})
}

// waitArrival waits until IoT Hub has received want (in order, repeats
// aside) from c.
func (w *world) waitArrival(ctx context.Context, c *localClient, want []int64) error {
	var a arrival
	err := eventually(ctx, deliveryTimeout, fmt.Sprintf("IoT Hub receives %d messages of %q", len(want), c.name), func(ctx context.Context) error {
		evs, err := w.receivedEvents(ctx)
		if err != nil {
			return err
		}
		if a, err = arrivalOf(evs, c.identity()); err != nil {
			return err
		}
		if missing := missingSeqs(a.seqs, want); len(missing) > 0 {
			return fmt.Errorf("received %s; not yet %s", seqList(a.seqs), seqList(missing))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := sameSeqs(c.kind(), a.seqs, want); err != nil {
		return err
	}
	if a.repeats > 0 {
		godog.Logf(ctx, "%s: %d messages arrived twice (delivery is at least once)", c.kind(), a.repeats)
	}
	return nil
}

func (w *world) everyMessageInOrder(ctx context.Context, list string) error {
	cs, err := w.clientsOf(list)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.traffic != nil {
			return fmt.Errorf("%s is still sending", c.kind())
		}
		sent := c.sentSeqs()
		if len(sent) == 0 {
			return fmt.Errorf("%s sent nothing", c.kind())
		}
		if err := w.waitArrival(ctx, c, sent); err != nil {
			return err
		}
	}
	return nil
}

func seqRange(from, to int) []int64 {
	var out []int64
	for n := from; n <= to; n++ {
		out = append(out, int64(n))
	}
	return out
}

// rangeReceived checks that messages from..to arrive in order, and none of
// the other range. Messages of one sender reach IoT Hub in order, so once
// the later ones arrived the earlier ones are gone for good.
func (w *world) rangeReceived(ctx context.Context, from, to int, name string, noneFrom, noneTo int) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	if !slices.Equal(c.sentSeqs(), append(seqRange(noneFrom, noneTo), seqRange(from, to)...)) {
		return fmt.Errorf("%s had messages %s acknowledged; the step speaks of %d to %d, then %d to %d", c.kind(), seqList(c.sentSeqs()), noneFrom, noneTo, from, to)
	}
	return w.waitArrival(ctx, c, seqRange(from, to))
}

func (w *world) acceptedBeforeRefusal(n int, name string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	if got := len(c.sentSeqs()); got < n {
		return fmt.Errorf("edgeHub accepted %d messages of %s before refusing one, want at least %d", got, c.kind(), n)
	}
	return nil
}

// exactlyAccepted checks that IoT Hub gets the accepted messages, in
// order, and none of those edgeHub refused: a refused message was never
// stored.
func (w *world) exactlyAccepted(ctx context.Context, name string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	return w.waitArrival(ctx, c, c.sentSeqs())
}

// canSendAgain sends one more message, which edgeHub must accept and IoT
// Hub receive.
func (w *world) canSendAgain(ctx context.Context, name string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	if _, err := c.send(ctx, "", nil, 0, deliveryTimeout); err != nil {
		return err
	}
	return w.waitArrival(ctx, c, c.sentSeqs())
}

// newestReceived checks the drop-oldest policy: what arrives is the
// sender's last messages, in order, from some k > 1 to the last one.
func (w *world) newestReceived(ctx context.Context, name string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	sent := c.sentSeqs()
	if len(sent) == 0 {
		return fmt.Errorf("%s sent nothing", c.kind())
	}
	last := sent[len(sent)-1]
	var a arrival
	err = eventually(ctx, deliveryTimeout, fmt.Sprintf("IoT Hub receives the last message of %q", name), func(ctx context.Context) error {
		evs, err := w.receivedEvents(ctx)
		if err != nil {
			return err
		}
		if a, err = arrivalOf(evs, c.identity()); err != nil {
			return err
		}
		if !slices.Contains(a.seqs, last) {
			return fmt.Errorf("received %s", seqList(a.seqs))
		}
		return nil
	})
	if err != nil {
		return err
	}
	first := a.seqs[0]
	godog.Logf(ctx, "of the %d messages of %s, IoT Hub received %s", len(sent), c.kind(), seqList(a.seqs))
	if first == sent[0] {
		return fmt.Errorf("the oldest message was not dropped: received %s of %s", seqList(a.seqs), seqList(sent))
	}
	return sameSeqs(c.kind(), a.seqs, seqRange(int(first), int(last)))
}

// oneConnection checks IoT Hub's connection list: the edge agent's own
// connection, and one connection of edgeHub's carrying every module and
// leaf device of the scenario; nothing else.
func (w *world) oneConnection(ctx context.Context) error {
	want := []string{edgeHubClientID}
	var ids []string
	for _, c := range w.clients {
		if c.c != nil {
			ids = append(ids, c.identity())
		}
	}
	slices.Sort(ids)
	want = append(want, ids...)
	agentID := edgeDevice + "/$edgeAgent"
	return eventually(ctx, reportTimeout, "IoT Hub sees one connection carrying every client", func(ctx context.Context) error {
		conns, err := w.api.connections(ctx)
		if err != nil {
			return err
		}
		var hubConns int
		for _, c := range conns {
			switch c.ClientID {
			case edgeHubClientID:
				hubConns++
				if !slices.Equal(c.Identities, want) {
					return fmt.Errorf("edgeHub's connection carries %q, want %q", c.Identities, want)
				}
			case agentID:
				if !slices.Equal(c.Identities, []string{agentID}) {
					return fmt.Errorf("the edge agent's connection carries %q", c.Identities)
				}
			default:
				return fmt.Errorf("IoT Hub has a connection of its own from %q: %s", c.ClientID, compactJSON(conns))
			}
		}
		if hubConns != 1 || len(conns) != 2 {
			return fmt.Errorf("want the edge agent's connection and one of edgeHub's; IoT Hub has %s", compactJSON(conns))
		}
		return nil
	})
}

// realSenders checks that every message IoT Hub received from the
// scenario's clients names its sender as IoT Hub does for a direct
// connection: the connection device and module ids and the sender's
// generation id, whatever connection carried it.
func (w *world) realSenders(ctx context.Context) error {
	evs, err := w.receivedEvents(ctx)
	if err != nil {
		return err
	}
	byIdentity := map[string]*localClient{}
	for _, c := range w.clients {
		byIdentity[c.identity()] = c
	}
	counted := map[string]int{}
	for _, e := range evs {
		c, ok := byIdentity[e.sender()]
		if !ok {
			continue
		}
		sp := e.SystemProperties
		wantModule := ""
		if c.module {
			wantModule = c.name
		}
		switch {
		case sp["iothub-connection-device-id"] != c.cs.DeviceID || sp["iothub-connection-module-id"] != wantModule:
			return fmt.Errorf("a message of %s is stamped as from device %q module %q", c.kind(), sp["iothub-connection-device-id"], sp["iothub-connection-module-id"])
		case sp["iothub-connection-auth-generation-id"] != c.generationID:
			return fmt.Errorf("a message of %s carries generation id %q, not its own %q", c.kind(), sp["iothub-connection-auth-generation-id"], c.generationID)
		}
		counted[c.name]++
	}
	for _, c := range w.clients {
		if n := len(c.sentSeqs()); counted[c.name] < n {
			return fmt.Errorf("IoT Hub received %d messages of %s, which sent %d", counted[c.name], c.kind(), n)
		}
	}
	return nil
}

// inputReceived checks the messages a module received on an input: the
// values of field, in order, each from sender (the $.cdid and $.cmid
// edgeHub stamps). The last expected message must be the last sent, so
// that nothing else can still be on its way.
func (w *world) inputReceived(ctx context.Context, name, input, field, list, sender string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	from, err := w.client(sender)
	if err != nil {
		return err
	}
	want := splitList(list) // "35, 31 and 40"
	var got []string
	err = eventually(ctx, deliveryTimeout, fmt.Sprintf("%q receives %d messages on input %q", name, len(want), input), func(context.Context) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		got = got[:0]
		for _, in := range c.inputs {
			if in.input != input {
				return fmt.Errorf("a message arrived on input %q", in.input)
			}
			if cdid, cmid := in.msg.System["cdid"], in.msg.System["cmid"]; cdid != from.cs.DeviceID || cmid != from.cs.ModuleID {
				return fmt.Errorf("a message on %q names its sender %s/%s, not %s", input, cdid, cmid, from.identity())
			}
			got = append(got, in.msg.Properties[field])
		}
		if len(got) < len(want) {
			return fmt.Errorf("received %s %q so far", field, got)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("%q received messages with %s %q, want %q", name, field, got, want)
	}
	return nil
}

// hubReceivedValues checks the messages IoT Hub received from sender: the
// values of field, in order (repeats aside).
func (w *world) hubReceivedValues(ctx context.Context, sender, field, list string) error {
	c, err := w.client(sender)
	if err != nil {
		return err
	}
	want := splitList(list) // "35, 31 and 40"
	var got []string
	err = eventually(ctx, deliveryTimeout, fmt.Sprintf("IoT Hub receives %d messages of %q", len(want), sender), func(ctx context.Context) error {
		evs, err := w.receivedEvents(ctx)
		if err != nil {
			return err
		}
		got = got[:0]
		seen := map[string]bool{}
		for _, e := range eventsFrom(evs, c.identity()) {
			if seen[e.Properties[propSeq]] {
				continue
			}
			seen[e.Properties[propSeq]] = true
			got = append(got, e.Properties[field])
		}
		if len(got) < len(want) {
			return fmt.Errorf("received %s %q so far", field, got)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("IoT Hub received messages of %q with %s %q, want %q", sender, field, got, want)
	}
	return nil
}

// priorityOrder checks that every message first sent on output first
// arrived before any sent on output then, each output's messages in the
// order sent.
func (w *world) priorityOrder(ctx context.Context, name, first, then string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	sent := c.sentSeqs()
	var a arrival
	err = eventually(ctx, deliveryTimeout, fmt.Sprintf("IoT Hub receives the %d messages of %q", len(sent), name), func(ctx context.Context) error {
		evs, err := w.receivedEvents(ctx)
		if err != nil {
			return err
		}
		if a, err = arrivalOf(evs, c.identity()); err != nil {
			return err
		}
		if len(a.seqs) < len(sent) {
			return fmt.Errorf("%d of %d arrived so far", len(a.seqs), len(sent))
		}
		return nil
	})
	if err != nil {
		return err
	}
	outputOf := map[int64]string{}
	for _, e := range eventsFrom(w.received, c.identity()) {
		n, _ := seqOf(e)
		outputOf[n] = e.SystemProperties["$.on"]
	}
	var order []string
	var firsts, thens []int64
	for _, n := range a.seqs {
		order = append(order, outputOf[n]+" "+strconv.FormatInt(n, 10))
		switch outputOf[n] {
		case first:
			if len(thens) > 0 {
				return fmt.Errorf("a message on %q arrived after one on %q: %s", first, then, strings.Join(order, ", "))
			}
			firsts = append(firsts, n)
		case then:
			thens = append(thens, n)
		default:
			return fmt.Errorf("message %d arrived from output %q", n, outputOf[n])
		}
	}
	if !slices.IsSorted(firsts) || !slices.IsSorted(thens) {
		return fmt.Errorf("an output's messages arrived out of order: %s", strings.Join(order, ", "))
	}
	return nil
}
