package agent

import (
	"context"
	"strings"
	"sync"

	"github.com/outpost-edge/outpost/runtime/deployment"
)

// PullTracker is a Runtime that passes every call to the one it wraps and
// remembers the progress of the pulls running through it, so that the
// management API can show "Downloading 45%". Give it to the agent as its
// Runtime (Deps.Runtime) and to the ManagementServer as Pulls:
//
//	rt := agent.TrackPulls(dockerRuntime)
//	a, _ := agent.New(opts, agent.Deps{Runtime: rt, ...})
//	ms := &agent.ManagementServer{Runtime: rt, Pulls: rt, Agent: a, ...}
//
// It is safe for concurrent use.
type PullTracker struct {
	Runtime

	mu    sync.Mutex
	pulls map[string]*pullState // by image, while the pull runs
}

var _ Runtime = (*PullTracker)(nil)

// pullState is one running pull; several pulls of the same image share it.
type pullState struct {
	callers int
	layers  pullLayers
}

// pullLayers keeps the latest progress event of each layer of one pull,
// for PullStatusOf. The agent's "downloading NN%" status and the
// management API's progress both sum it up. Not safe for concurrent use.
type pullLayers map[string]PullProgress

// add records p. Events about the whole image (no layer) are ignored;
// events that carry no sizes ("Download complete", ...) keep the layer's
// known size.
func (l pullLayers) add(p PullProgress) {
	if p.Layer == "" {
		return
	}
	if prev, ok := l[p.Layer]; ok && p.Total <= 0 {
		p.Total, p.Current = prev.Total, max(p.Current, prev.Current)
	}
	l[p.Layer] = p
}

// status sums the layers up.
func (l pullLayers) status() PullStatus {
	layers := make([]PullProgress, 0, len(l))
	for _, p := range l {
		layers = append(layers, p)
	}
	return PullStatusOf(layers)
}

// TrackPulls wraps rt.
func TrackPulls(rt Runtime) *PullTracker {
	return &PullTracker{Runtime: rt, pulls: make(map[string]*pullState)}
}

// Pull implements Runtime: it records image as being pulled, and its
// progress events, until the wrapped Pull returns. progress, when not nil,
// still receives every event.
func (t *PullTracker) Pull(ctx context.Context, image string, auth *deployment.RegistryCredential, progress func(PullProgress)) error {
	t.mu.Lock()
	ps := t.pulls[image]
	if ps == nil {
		ps = &pullState{layers: make(pullLayers)}
		t.pulls[image] = ps
	}
	ps.callers++
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		if ps.callers--; ps.callers == 0 {
			delete(t.pulls, image)
		}
		t.mu.Unlock()
	}()
	return t.Runtime.Pull(ctx, image, auth, func(p PullProgress) {
		t.mu.Lock()
		ps.layers.add(p)
		t.mu.Unlock()
		if progress != nil {
			progress(p)
		}
	})
}

// Pulls returns the pulls running now, by image.
func (t *PullTracker) Pulls() map[string]PullStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]PullStatus, len(t.pulls))
	for image, ps := range t.pulls {
		out[image] = ps.layers.status()
	}
	return out
}

// PullStatus sums up the progress of one image pull.
type PullStatus struct {
	// Current and Total are the bytes downloaded and to download, over the
	// layers whose size is known. Total is 0 when no size is known yet.
	Current, Total int64
	// Layers counts the layers seen, Done those fully downloaded.
	Layers, Done int
}

// Fraction is Current/Total in 0..1; 0 when Total is unknown.
func (s PullStatus) Fraction() float64 {
	if s.Total <= 0 {
		return 0
	}
	return min(max(float64(s.Current)/float64(s.Total), 0), 1)
}

// Percent is Fraction in whole percent, rounded down (100 only when every
// known byte is there); ok is false while no size is known.
func (s PullStatus) Percent() (percent int, ok bool) {
	if s.Total <= 0 {
		return 0, false
	}
	return int(min(max(s.Current, 0), s.Total) * 100 / s.Total), true // integers: 29 of 100 is 29, not 28
}

// PullStatusOf sums up the latest event of each layer. A layer whose
// download is over ("Download complete", "Verifying Checksum",
// "Extracting", "Pull complete", "Already exists") counts as fully
// downloaded: Docker reports extraction with Current/Total too, which must
// not send the bar back. It is pure.
func PullStatusOf(layers []PullProgress) PullStatus {
	var s PullStatus
	for _, l := range layers {
		s.Layers++
		done := downloadDone(l.Status)
		if done {
			s.Done++
		}
		if l.Total <= 0 {
			continue
		}
		s.Total += l.Total
		switch {
		case done:
			s.Current += l.Total
		default:
			s.Current += min(max(l.Current, 0), l.Total)
		}
	}
	return s
}

// downloadDone reports whether a layer's status means its download is over.
func downloadDone(status string) bool {
	switch s := strings.ToLower(status); {
	case strings.HasPrefix(s, "download complete"), strings.HasPrefix(s, "verifying checksum"),
		strings.HasPrefix(s, "extracting"), strings.HasPrefix(s, "pull complete"),
		strings.HasPrefix(s, "already exists"):
		return true
	}
	return false
}
