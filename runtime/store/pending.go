package store

import "time"

// pending is the unordered housekeeping waiting for the next transaction (under Store.mu):
// acknowledgements (the highest acked seq per lane) and expired entries found by Read or
// by the sweep. Losing it in a crash only means re-delivery or a later sweep.
//
// Expiries are committed at once; acknowledgements are lazy (doc.go, "Lazy
// acknowledgements"): they ride on the next transaction, and get one of their own only
// when acksDue says so.
type pending struct {
	acks    map[laneKey]uint64
	expires map[laneKey][]uint64
	nExpire int
	// nAcked counts the items acknowledged since acks was last empty, ackSince is when it
	// stopped being empty (monotonic clock: Options.Now may be a frozen test clock).
	nAcked   uint64
	ackSince time.Time
}

func (p *pending) reset() {
	p.acks = make(map[laneKey]uint64)
	p.expires = make(map[laneKey][]uint64)
	p.nExpire = 0
	p.nAcked, p.ackSince = 0, time.Time{}
}

func (p *pending) empty() bool { return len(p.acks) == 0 && p.nExpire == 0 }

// addAck records that lane k is acknowledged up to seq, n items more than before. It
// reports whether acks was empty before, i.e. whether the delay starts now.
func (p *pending) addAck(k laneKey, seq, n uint64, now time.Time) (first bool) {
	first = len(p.acks) == 0
	if first {
		p.ackSince, p.nAcked = now, 0
	}
	p.acks[k] = max(p.acks[k], seq)
	p.nAcked += n
	return first
}

// acksDue reports whether the pending acknowledgements should be committed without
// waiting for an append: AckBatch items are waiting, or the oldest has waited AckDelay.
func (p *pending) acksDue(o *Options, now time.Time) bool {
	if len(p.acks) == 0 {
		return false
	}
	return o.AckDelay < 0 || p.nAcked >= uint64(o.AckBatch) || now.Sub(p.ackSince) >= o.AckDelay
}

func (p *pending) addExpired(k laneKey, seqs []uint64) {
	p.expires[k] = append(p.expires[k], seqs...)
	p.nExpire += len(seqs)
}

// take removes up to budget expiries from p, and all acks when acks is set, and returns
// them.
func (p *pending) take(budget int, acks bool) pending {
	var w pending
	w.reset()
	if acks && len(p.acks) > 0 {
		w.acks, p.acks = p.acks, make(map[laneKey]uint64)
		w.nAcked, w.ackSince = p.nAcked, p.ackSince
		p.nAcked, p.ackSince = 0, time.Time{}
	}
	for k, seqs := range p.expires {
		if budget <= 0 {
			break
		}
		n := min(len(seqs), budget)
		w.addExpired(k, seqs[:n])
		budget -= n
		p.nExpire -= n
		if n == len(seqs) {
			delete(p.expires, k)
		} else {
			p.expires[k] = seqs[n:]
		}
	}
	return w
}

// restore puts back work a failed transaction took. The restored acknowledgements keep
// their age (the committer re-arms the delay for them).
func (p *pending) restore(w pending) {
	if len(w.acks) > 0 {
		if len(p.acks) == 0 || w.ackSince.Before(p.ackSince) {
			p.ackSince = w.ackSince
		}
		p.nAcked += w.nAcked
	}
	for k, seq := range w.acks {
		p.acks[k] = max(p.acks[k], seq)
	}
	for k, seqs := range w.expires {
		p.addExpired(k, seqs)
	}
}

// dropQueue forgets the housekeeping of a deleted queue (its seqs will be reused).
func (p *pending) dropQueue(queue string) {
	for k := range p.acks {
		if k.queue == queue {
			delete(p.acks, k)
		}
	}
	for k, seqs := range p.expires {
		if k.queue == queue {
			p.nExpire -= len(seqs)
			delete(p.expires, k)
		}
	}
}
