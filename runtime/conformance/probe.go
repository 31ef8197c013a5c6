package conformance

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// The probe is the harness's own module on the edge device. Routes carry what it sends on
// its output "in_{input}" to the module's input {input}, and what the module sends on its
// output {output} to the probe's input "out_{output}".

// SeqProperty is the application property carrying the harness's sequence number on each
// message it sends; modules that forward application properties (as Azure's samples do)
// let the harness tell which message came back.
const SeqProperty = "conformanceSeq"

func probeOutput(input string) string { return "in_" + input }
func probeInput(output string) string { return "out_" + output }

// received is a message the probe got, with the module output it came from.
type received struct {
	Output string
	At     time.Time
	Msg    iothub.Message
}

// probe is the harness's module client and its mailbox.
type probe struct {
	client *moduleclient.Client
	now    func() time.Time

	mu      sync.Mutex
	got     []received
	changed chan struct{}
}

// newProbe connects the probe to the edge hub at port, trusting caFile.
func newProbe(ctx context.Context, cs sas.ConnectionString, caFile string, port int, now func() time.Time, logger *slog.Logger) (*probe, error) {
	c, err := moduleclient.New(cs, moduleclient.Options{
		CAFile: caFile, Port: port, Logger: logger,
		ReconnectMin: linkReconnect, ReconnectMax: hubRetryMax,
	})
	if err != nil {
		return nil, err
	}
	p := &probe{client: c, now: now, changed: make(chan struct{})}
	c.OnInput(p.onInput)
	if err := c.Connect(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return p, nil
}

func (p *probe) close() { p.client.Close() }

func (p *probe) onInput(input string, m iothub.Message) {
	const prefix = "out_"
	if len(input) <= len(prefix) || input[:len(prefix)] != prefix {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, received{Output: input[len(prefix):], At: p.now(), Msg: m})
	close(p.changed)
	p.changed = make(chan struct{})
}

// send sends m to the module's input through the probe's route.
func (p *probe) send(ctx context.Context, input string, m iothub.Message) error {
	return p.client.SendOutput(ctx, probeOutput(input), m)
}

// count returns how many messages arrived so far (a mark for since).
func (p *probe) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.got)
}

// waitFrom waits until done accepts the messages from output that arrived after mark, or
// timeout passes; it returns those messages and done's last answer.
func (p *probe) waitFrom(ctx context.Context, output string, mark int, timeout time.Duration, done func([]received) bool) ([]received, bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		p.mu.Lock()
		var msgs []received
		for _, r := range p.got[mark:] {
			if r.Output == output {
				msgs = append(msgs, r)
			}
		}
		changed := p.changed
		p.mu.Unlock()
		if done(msgs) {
			return msgs, true
		}
		select {
		case <-changed:
		case <-t.C:
			return msgs, false
		case <-ctx.Done():
			return msgs, false
		}
	}
}
