package hub

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/store"
)

// c2dBatch is how many C2D messages a pump reads at a time (IoT Hub keeps at most 50
// pending per device).
const c2dBatch = 16

// c2dPumps owns one pump per leaf device with a C2D queue: started when a message is
// stored for it (onCloudC2D) and, at Run, for every C2D queue left in the store. Like the
// endpoint pumps, a pump lives until Run returns.
type c2dPumps struct {
	s *Server

	mu    sync.Mutex
	pumps map[string]*c2dPump // by device id
	ctx   context.Context     // nil until run
	wg    sync.WaitGroup
}

func newC2DPumps(s *Server) *c2dPumps {
	return &c2dPumps{s: s, pumps: map[string]*c2dPump{}}
}

// ensure registers deviceID's pump, starting it if the set runs.
func (ps *c2dPumps) ensure(deviceID string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if _, ok := ps.pumps[deviceID]; ok {
		return
	}
	p := &c2dPump{s: ps.s, device: deviceID, queue: c2dQueue(deviceID), wake: make(chan struct{}, 1),
		log: ps.s.log.With("component", "c2d", "device_id", deviceID)}
	ps.pumps[deviceID] = p
	if ps.ctx != nil {
		ps.startLocked(p)
	}
}

// run starts every registered pump under ctx; later ensure calls start theirs at once.
func (ps *c2dPumps) run(ctx context.Context) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.ctx = ctx
	for _, p := range ps.pumps {
		ps.startLocked(p)
	}
}

func (ps *c2dPumps) startLocked(p *c2dPump) {
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
		p.run(ps.ctx)
	}()
}

// wait returns once every pump has returned (after Run's ctx ended).
func (ps *c2dPumps) wait() { ps.wg.Wait() }

// wake tells deviceID's pump that the device connected or subscribed.
func (ps *c2dPumps) wake(deviceID string) {
	ps.mu.Lock()
	p := ps.pumps[deviceID]
	ps.mu.Unlock()
	if p != nil {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// c2dPump delivers one leaf device's C2D messages in order, one at a time, at QoS 1 on
// devices/{d}/messages/devicebound/{bag}, and acknowledges each in the store after the
// device's PUBACK (the PUBACK completes a C2D message, protocol notes 3). While the device
// is away or not subscribed it waits for it; a delivery not acknowledged is retried with
// back-off, and after Options.MaxDeliveryAttempts the message is dead-lettered, as IoT Hub
// dead-letters a message after its maximum delivery count.
type c2dPump struct {
	s      *Server
	device string
	queue  string
	wake   chan struct{}
	log    *slog.Logger
}

func (p *c2dPump) run(ctx context.Context) {
	st := p.s.deps.Store
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	var head attempts
	failures := 0
	for ctx.Err() == nil {
		items, err := st.Read(p.queue, c2dBatch)
		if err != nil {
			p.log.Warn("reading the C2D queue failed", "err", err)
			if !p.sleep(ctx, backoff(failures, p.s.opts.RetryMin, p.s.opts.RetryMax, rnd)) {
				return
			}
			failures++
			continue
		}
		if len(items) == 0 {
			select {
			case <-st.Wait(p.queue):
			case <-ctx.Done():
				return
			}
			continue
		}
		for _, it := range items {
			err := p.send(ctx, it)
			if err == nil {
				failures = 0
				if err := st.Ack(p.queue, it.Priority, it.Seq); err != nil {
					p.log.Warn("acknowledging a delivered C2D message failed; it may be delivered again", "seq", it.Seq, "err", err)
				}
				continue
			}
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrCorrupt) {
				p.deadLetter(it, deadCorrupt, err)
				continue
			}
			if !errors.Is(err, ErrNotConnected) {
				n := head.failed(it)
				p.log.Info("C2D delivery not acknowledged, will retry", "seq", it.Seq, "attempt", n, "err", err)
				if n >= p.s.opts.MaxDeliveryAttempts {
					p.deadLetter(it, deadNoAck, err)
					continue
				}
			}
			if !p.sleep(ctx, backoff(failures, p.s.opts.RetryMin, p.s.opts.RetryMax, rnd)) {
				return
			}
			failures++
			st.Rewind(p.queue)
			break
		}
	}
}

func (p *c2dPump) send(ctx context.Context, it store.Item) error {
	e, err := decodeEnvelope(it.Body)
	if err != nil {
		return err
	}
	topic := iothub.Topic{Kind: iothub.KindC2D, DeviceID: p.device, Bag: e.Message.Bag()}
	return p.s.delivery.deliver(ctx, p.device, topic, e.Message.Body, p.s.opts.AckTimeout)
}

func (p *c2dPump) deadLetter(it store.Item, reason string, cause error) {
	p.s.stats.deadLettered.Add(1)
	p.log.Warn("C2D message dead-lettered", "seq", it.Seq, "reason", reason, "err", cause)
	if err := p.s.deps.Store.DeadLetter(p.queue, it.Priority, it.Seq, reason); err != nil && !errors.Is(err, store.ErrNotFound) {
		p.log.Warn("dead-lettering failed", "seq", it.Seq, "err", err)
	}
}

// sleep waits d, or until the device connects or subscribes, and reports false when ctx
// ended.
func (p *c2dPump) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.wake:
	case <-ctx.Done():
		return false
	}
	return true
}
