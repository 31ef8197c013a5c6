package store

// candidate is a lane with an item ready for Read: its priority and the enqueue time of
// its next item.
type candidate struct {
	prio     int
	enqueued int64
}

// pick decides which lane Read takes the next item from. cands are the lanes with an item
// ready, sorted by priority, highest first (lowest number); streak is how many items in a
// row came from the highest waiting priority while a lower one was waiting; burst is K
// (negative: strict priority). It returns the index into cands and the new streak.
//
// The rule: the highest priority goes first, but after burst consecutive items from it
// while a lower priority waits, one item comes from the lower priority whose next item is
// oldest (ties: the higher priority), and the streak restarts. A lone lane resets the
// streak, as nobody was waiting.
func pick(cands []candidate, streak, burst int) (int, int) {
	switch {
	case len(cands) == 0:
		return -1, streak
	case len(cands) == 1:
		return 0, 0
	case burst < 0 || streak < burst:
		return 0, streak + 1
	}
	best := 1
	for i := 2; i < len(cands); i++ {
		if cands[i].enqueued < cands[best].enqueued {
			best = i
		}
	}
	return best, 0
}

// head is the first entry of a non-empty lane, a candidate for DropOldest.
type head struct {
	queue    string
	prio     int
	enqueued int64
}

// victim decides which entry DropOldest deletes: from the lowest priority (highest
// number), the one enqueued first; ties by queue name. It returns -1 for no heads.
func victim(heads []head) int {
	best := -1
	for i, h := range heads {
		if best < 0 || worse(h, heads[best]) {
			best = i
		}
	}
	return best
}

// worse reports whether a should be dropped before b.
func worse(a, b head) bool {
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	if a.enqueued != b.enqueued {
		return a.enqueued < b.enqueued
	}
	return a.queue < b.queue
}
