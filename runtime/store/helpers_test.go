package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clock is an injectable clock for TTL tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// running is a Store with its Run goroutine.
type running struct {
	*Store
	stop func() // stops Run, checks the invariants and closes; idempotent
}

// MustOpen opens a store in t.TempDir() (NoSync unless a mod says otherwise), starts Run,
// and stops, checks and closes it at cleanup.
func MustOpen(t testing.TB, mods ...func(*Options)) *Store {
	t.Helper()
	o := Options{Path: filepath.Join(t.TempDir(), "store.db"), NoSync: true}
	for _, m := range mods {
		m(&o)
	}
	r := mustStart(t, o)
	t.Cleanup(r.stop)
	return r.Store
}

// mustStart opens o and starts Run.
func mustStart(t testing.TB, o Options) running {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open(%q): %v", o.Path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	return running{Store: s, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			if err := check(s); err != nil {
				t.Errorf("invariants after Run: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}}
}

func withMaxBytes(n int64, p Policy) func(*Options) {
	return func(o *Options) { o.MaxBytes, o.FullPolicy = n, p }
}

func withClock(c *clock) func(*Options) { return func(o *Options) { o.Now = c.Now } }

// mustAppend appends body to targets or fails the test.
func mustAppend(t testing.TB, s *Store, body string, targets ...Target) {
	t.Helper()
	if err := s.Append(context.Background(), []byte(body), targets); err != nil {
		t.Fatalf("Append(%q): %v", body, err)
	}
}

func mustFlush(t testing.TB, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func mustAck(t testing.TB, s *Store, queue string, prio int, seq uint64) {
	t.Helper()
	if err := s.Ack(queue, prio, seq); err != nil {
		t.Fatalf("Ack(%q, %d, %d): %v", queue, prio, seq, err)
	}
}

// mustRead reads up to max items of queue.
func mustRead(t testing.TB, s *Store, queue string, max int) []Item {
	t.Helper()
	items, err := s.Read(queue, max)
	if err != nil {
		t.Fatalf("Read(%q): %v", queue, err)
	}
	return items
}

// bodies returns the bodies of items as strings.
func bodies(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it.Body)
	}
	return out
}

// sweepNow runs one TTL sweep in the committer and waits for it and its commit.
func sweepNow(t testing.TB, s *Store) {
	t.Helper()
	done := make(chan struct{})
	select {
	case s.sweepReq <- done:
	case <-time.After(10 * time.Second):
		t.Fatal("sweep request not taken: is Run running?")
	}
	<-done
	mustFlush(t, s)
}

// checkFor polls cond until it holds or the deadline passes (no sleeps for synchronisation).
func checkFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// check verifies the invariants of doc.go against the file, and the in-memory state
// against the file. The store's Run must not be running.
func check(s *Store) error {
	err := s.db.View(func(tx *bolt.Tx) error { return checkTx(tx, s) })
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return nil
	}
	return err
}

// checkTx recomputes every counter from the buckets and compares.
func checkTx(tx *bolt.Tx, s *Store) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return errors.New("no meta bucket")
	}
	if v, _ := decodeU64(meta.Get(keyVersion)); int(v) != currentVersion {
		return fmt.Errorf("version %d, want %d", v, currentVersion)
	}
	bodiesB, refsB := tx.Bucket(bucketBodies), tx.Bucket(bucketRefs)
	queues, ckpts := tx.Bucket(bucketQueues), tx.Bucket(bucketCheckpoints)
	refs := make(map[uint64]int)
	var total int64
	disk := make(map[laneKey]laneRec)
	err := queues.ForEachBucket(func(qn []byte) error {
		qb := queues.Bucket(qn)
		cb := ckpts.Bucket(qn)
		if cb == nil {
			return fmt.Errorf("queue %q has no checkpoints bucket", qn)
		}
		return qb.ForEachBucket(func(pk []byte) error {
			prio, err := decodePrio(pk)
			if err != nil {
				return err
			}
			rec, err := decodeLaneRec(cb.Get(pk))
			if err != nil {
				return fmt.Errorf("lane %q/%d: %w", qn, prio, err)
			}
			var n uint64
			var b int64
			err = qb.Bucket(pk).ForEach(func(k, v []byte) error {
				seq, err := decodeU64(k)
				if err != nil {
					return err
				}
				e, err := decodeEntry(v)
				if err != nil {
					return err
				}
				if seq <= rec.ckpt || seq >= rec.next {
					return fmt.Errorf("lane %q/%d: seq %d outside (%d, %d)", qn, prio, seq, rec.ckpt, rec.next)
				}
				body := bodiesB.Get(u64Key(e.body))
				if body == nil {
					return fmt.Errorf("lane %q/%d seq %d: body %d missing", qn, prio, seq, e.body)
				}
				if len(body) != int(e.size) {
					return fmt.Errorf("lane %q/%d seq %d: size %d, body has %d", qn, prio, seq, e.size, len(body))
				}
				refs[e.body]++
				n++
				b += int64(e.size) + EntryOverhead
				total += EntryOverhead
				return nil
			})
			if err != nil {
				return err
			}
			if n != rec.len || b != rec.bytes {
				return fmt.Errorf("lane %q/%d: record says len %d bytes %d, stored len %d bytes %d", qn, prio, rec.len, rec.bytes, n, b)
			}
			disk[laneKey{string(qn), prio}] = rec
			return nil
		})
	})
	if err != nil {
		return err
	}
	err = ckpts.ForEachBucket(func(qn []byte) error {
		return ckpts.Bucket(qn).ForEach(func(pk, _ []byte) error {
			if qb := queues.Bucket(qn); qb == nil || qb.Bucket(pk) == nil {
				return fmt.Errorf("checkpoint %q/%x without lane", qn, pk)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	var messages int64
	err = bodiesB.ForEach(func(k, v []byte) error {
		id, _ := decodeU64(k)
		if id > bodiesB.Sequence() {
			return fmt.Errorf("body %d above sequence %d", id, bodiesB.Sequence())
		}
		n := refs[id]
		if n == 0 {
			return fmt.Errorf("body %d has no entries", id)
		}
		rv := refsB.Get(k)
		switch {
		case n == 1 && rv != nil:
			return fmt.Errorf("body %d: refs key present for a single reference", id)
		case n > 1:
			c, err := decodeU32(rv)
			if err != nil || int(c) != n {
				return fmt.Errorf("body %d: refs %v, want %d (%v)", id, rv, n, err)
			}
		}
		messages++
		total += int64(len(v)) + BodyOverhead
		return nil
	})
	if err != nil {
		return err
	}
	if err := refsB.ForEach(func(k, _ []byte) error {
		if bodiesB.Get(k) == nil {
			return fmt.Errorf("refs %x without body", k)
		}
		return nil
	}); err != nil {
		return err
	}
	mb, _ := decodeU64(meta.Get(keyBytes))
	mm, _ := decodeU64(meta.Get(keyMessages))
	if int64(mb) != total || int64(mm) != messages {
		return fmt.Errorf("meta says bytes %d messages %d, stored bytes %d messages %d", mb, mm, total, messages)
	}
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bytes != total || s.messages != messages {
		return fmt.Errorf("memory says bytes %d messages %d, stored bytes %d messages %d", s.bytes, s.messages, total, messages)
	}
	if len(s.lanes) != len(disk) {
		return fmt.Errorf("memory has %d lanes, disk %d", len(s.lanes), len(disk))
	}
	for k, rec := range disk {
		l := s.lanes[k]
		if l == nil || l.rec != rec {
			return fmt.Errorf("lane %v: memory %+v, disk %+v", k, l, rec)
		}
		if q := s.queues[k.queue]; q == nil || q.lanes[k.prio] != l {
			return fmt.Errorf("lane %v missing from its queue state", k)
		}
	}
	return nil
}

// readAll drains queue with Read (no acks) and returns the items.
func readAll(t testing.TB, s *Store, queue string) []Item {
	t.Helper()
	var all []Item
	for {
		items := mustRead(t, s, queue, 1000)
		if len(items) == 0 {
			return all
		}
		all = append(all, items...)
	}
}
