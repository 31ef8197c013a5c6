package store

// pending is the unordered housekeeping waiting for the next transaction (under Store.mu):
// acknowledgements (the highest acked seq per lane) and expired entries found by Read or
// by the sweep. Losing it in a crash only means re-delivery or a later sweep.
type pending struct {
	acks    map[laneKey]uint64
	expires map[laneKey][]uint64
	nExpire int
}

func (p *pending) reset() {
	p.acks = make(map[laneKey]uint64)
	p.expires = make(map[laneKey][]uint64)
	p.nExpire = 0
}

func (p *pending) empty() bool { return len(p.acks) == 0 && p.nExpire == 0 }

func (p *pending) addExpired(k laneKey, seqs []uint64) {
	p.expires[k] = append(p.expires[k], seqs...)
	p.nExpire += len(seqs)
}

// take removes all acks and up to budget expiries from p and returns them.
func (p *pending) take(budget int) pending {
	var w pending
	w.reset()
	w.acks, p.acks = p.acks, make(map[laneKey]uint64)
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

// restore puts back work a failed transaction took.
func (p *pending) restore(w pending) {
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
