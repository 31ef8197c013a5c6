package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// attachment is an identity the client keeps attached: on every connection, until Detach.
type attachment struct {
	subs Subscriptions
	gen  uint64 // numbers Attach calls (diagnostics; the entry's identity is what counts)
	on   *conn  // the connection IoT Hub acknowledged the attachment on
}

// attachGen numbers Attach calls.
var attachGen atomic.Uint64

// Attach tells IoT Hub that id is now connected to the edge hub (its connectionState becomes
// Connected) and what to forward for it: desired patches, method requests, C2D messages
// (leaf devices only; a module gets ErrInvalidArgument). The client remembers the attachment
// and makes it again on every later connection, until Detach, so the hub calls Attach once
// per local connection of a client. Attaching again replaces the subscriptions.
//
// While the link is down Attach returns ErrOffline, and the attachment is still remembered
// and made on the next connection: there is nothing to retry. A 403 or 404 answer
// (ErrOutOfScope, ErrNotFound) forgets it; a transient failure (429, timeout, lost link)
// keeps it and the client retries with back-off.
func (c *Client) Attach(ctx context.Context, id sas.Identity, subs Subscriptions) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("attach %q: %w", id, err)
	}
	if subs.C2D && id.ModuleID != "" {
		return fmt.Errorf("attach %q: %w: modules cannot receive C2D messages", id, ErrInvalidArgument)
	}
	l := c.idLock(id)
	l.Lock()
	defer l.Unlock()
	c.mu.Lock()
	c.attached[id] = &attachment{subs: subs, gen: attachGen.Add(1)}
	c.mu.Unlock()
	cn, err := c.acquire(ctx)
	if err != nil {
		return fmt.Errorf("attach %q: %w (it will be attached on the next connection)", id, err)
	}
	defer cn.inflight.Done()
	if err := c.attachLocked(ctx, cn, id); err != nil {
		return fmt.Errorf("attach %q: %w", id, err)
	}
	return nil
}

// idLock returns the lock that orders the attach and detach requests of id, so that IoT Hub
// sees them in the order the client decided them (Attach, Detach and the re-attach loop all
// take it around their request). Identities share 64 stripes.
func (c *Client) idLock(id sas.Identity) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(id.String()))
	return &c.idLocks[h.Sum32()%uint32(len(c.idLocks))]
}

// attachOn makes id's current attachment on cn, unless it is gone or already made there.
func (c *Client) attachOn(ctx context.Context, cn *conn, id sas.Identity) error {
	l := c.idLock(id)
	l.Lock()
	defer l.Unlock()
	return c.attachLocked(ctx, cn, id)
}

// attachLocked sends the attach request of id's current attachment on cn, with id's lock
// held, and records the outcome: done on 2xx, forgotten on 403/404, left for the re-attach
// loop otherwise.
func (c *Client) attachLocked(ctx context.Context, cn *conn, id sas.Identity) error {
	c.mu.Lock()
	cur := c.attached[id]
	c.mu.Unlock()
	if cur == nil || cur.on == cn {
		return nil // detached meanwhile, or attached on cn already
	}
	body, _ := json.Marshal(iothub.OBOAttachment{Subscriptions: cur.subs.names()}) // cannot fail
	a, err := c.requestOn(ctx, cn, iothub.OBOAttach, id, body)
	if err == nil && (a.status < 200 || a.status > 299) {
		err = &StatusError{Status: a.status, Body: a.body}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.attached[id] != cur:
		// Replaced or removed without the lock: cannot happen, but never resurrect.
	case err == nil:
		cur.on = cn
		c.noteStanding(cn, id, nil)
	case errors.Is(err, ErrOutOfScope) || errors.Is(err, ErrNotFound):
		delete(c.attached, id)
	default:
		select { // let the re-attach loop try again
		case c.kick <- struct{}{}:
		default:
		}
	}
	return err
}

// Detach tells IoT Hub that id left the edge hub (Disconnected, nothing forwarded any more)
// and forgets the attachment. While the link is down there is nothing to tell (the next
// connection starts without it) and Detach returns nil.
func (c *Client) Detach(ctx context.Context, id sas.Identity) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("detach %q: %w", id, err)
	}
	l := c.idLock(id)
	l.Lock()
	defer l.Unlock()
	c.mu.Lock()
	delete(c.attached, id)
	cn := c.conn
	if cn != nil {
		cn.inflight.Add(1)
	}
	c.mu.Unlock()
	if cn == nil {
		return nil
	}
	defer cn.inflight.Done()
	a, err := c.requestOn(ctx, cn, iothub.OBODetach, id, nil)
	if err == nil && (a.status < 200 || a.status > 299) {
		err = &StatusError{Status: a.status, Body: a.body}
	}
	if err != nil {
		return fmt.Errorf("detach %q: %w", id, err)
	}
	return nil
}

// Attached returns the identities the client keeps attached.
func (c *Client) Attached() []sas.Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]sas.Identity, 0, len(c.attached))
	for id := range c.attached {
		out = append(out, id)
	}
	return out
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// reattach runs for the life of cn: it attaches every remembered identity not yet attached
// on cn, at most attachParallel at a time, and tries the transient failures again with
// back-off, woken early by Attach.
func (c *Client) reattach(ctx context.Context, cn *conn) {
	attempt := 0
	for {
		var jobs []sas.Identity
		c.mu.Lock()
		for id, a := range c.attached {
			if a.on != cn {
				jobs = append(jobs, id)
			}
		}
		c.mu.Unlock()
		var failed sync.Map
		var wg sync.WaitGroup
		sem := make(chan struct{}, attachParallel)
		for _, id := range jobs {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := c.attachOn(ctx, cn, id); err != nil {
					failed.Store(id, err)
					c.log.Info("re-attaching failed", "identity", id, "err", err)
				}
			}()
		}
		wg.Wait()
		retry := false
		failed.Range(func(_, v any) bool {
			err := v.(error)
			retry = retry || !(errors.Is(err, ErrOutOfScope) || errors.Is(err, ErrNotFound))
			return true
		})
		// Without failures the loop sleeps until Attach kicks it; with some it also wakes
		// after a back-off (no jitter needed: these retries do not open connections).
		wait := time.Duration(1 << 62)
		if retry {
			wait = backoff(attempt, c.opts.ReconnectMin, c.opts.ReconnectMax, 1)
			attempt++
		} else {
			attempt = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-cn.lost:
		case <-c.kick:
		case <-t.C:
		}
		t.Stop()
		if ctx.Err() != nil || isClosed(cn.lost) {
			return
		}
	}
}
