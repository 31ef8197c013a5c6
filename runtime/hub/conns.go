package hub

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// conn is one authenticated, established connection.
type conn struct {
	cl    *mqtt.Client
	creds credentials
}

// registry tracks authenticated connections. A connection is "pending" between
// OnConnectAuthenticate and OnSessionEstablished (mochi sends the CONNACK in between) and
// "active" after. Active connections are keyed by client id, which the authentication hook
// made equal to the identity, so there is at most one per identity: when a client connects
// again, mochi disconnects the older connection (session takeover, "newer wins") and the
// newer one replaces it here, whichever of the two hooks runs first.
type registry struct {
	mu      sync.Mutex
	pending map[*mqtt.Client]credentials
	active  map[string]*conn
}

func newRegistry() *registry {
	return &registry{pending: map[*mqtt.Client]credentials{}, active: map[string]*conn{}}
}

// authenticated records cl's credentials until its session is established. Entries of
// connections that closed before that point (mochi calls no hook then) are pruned here.
func (r *registry) authenticated(cl *mqtt.Client, c credentials) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.pending {
		if p.Closed() {
			delete(r.pending, p)
		}
	}
	r.pending[cl] = c
}

// established makes cl the active connection of its identity and returns its credentials.
func (r *registry) established(cl *mqtt.Client) (credentials, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.pending[cl]
	if !ok {
		return credentials{}, false
	}
	delete(r.pending, cl)
	r.active[cl.ID] = &conn{cl: cl, creds: c}
	return c, true
}

// disconnected forgets cl; it reports whether cl was the active connection of its identity.
func (r *registry) disconnected(cl *mqtt.Client) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, cl)
	if c, ok := r.active[cl.ID]; ok && c.cl == cl {
		delete(r.active, cl.ID)
		return true
	}
	return false
}

// get returns the active connection of a client id.
func (r *registry) get(clientID string) (*conn, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.active[clientID]
	return c, ok
}

// all returns the active connections.
func (r *registry) all() []*conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*conn, 0, len(r.active))
	for _, c := range r.active {
		out = append(out, c)
	}
	return out
}
