package restart

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Kind is a restart policy level. Levels are ordered, and each does what the
// lower ones do: Never < OnFailure < OnUnhealthy < Always.
type Kind int

// The restart policy levels, in order.
const (
	Never       Kind = iota // never restarted by the agent
	OnFailure               // restarted after a non-zero exit, a kill or a dead container
	OnUnhealthy             // OnFailure, plus stopped and restarted when its health check fails
	Always                  // restarted after any exit, including exit 0
)

var kindNames = [...]string{Never: "never", OnFailure: "on-failure", OnUnhealthy: "on-unhealthy", Always: "always"}

// String returns the manifest spelling ("on-failure"), or Kind(n) for a value
// outside the four levels.
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ParseKind reads a manifest restartPolicy ("never", "on-failure",
// "on-unhealthy", "always"), case-insensitively like the deployment parser.
func ParseKind(s string) (Kind, error) {
	for k, name := range kindNames {
		if strings.EqualFold(s, name) {
			return Kind(k), nil
		}
	}
	return Never, fmt.Errorf("restart policy %q: %w (want never, on-failure, on-unhealthy or always)", s, ErrUnknownKind)
}

// Defaults of a zero Policy: Azure's cool-off unit, cap and intensive-care
// time (edge-runtime-behaviour C.3), which are also kubelet's.
const (
	DefaultUnit       = 10 * time.Second
	DefaultCap        = 300 * time.Second
	DefaultResetAfter = 10 * time.Minute
)

// Policy is one module's restart policy with its back-off settings. The zero
// value of every field but Kind means its default.
type Policy struct {
	Kind Kind
	// Unit is the first back-off delay; DefaultUnit when zero or negative.
	Unit time.Duration
	// Cap is the longest back-off delay; DefaultCap when zero or negative, and
	// never less than Unit.
	Cap time.Duration
	// ResetAfter is how long a module must run without being unhealthy for
	// its restart history to be forgotten; DefaultResetAfter when zero or
	// negative.
	ResetAfter time.Duration
	// MaxRestarts, when positive, is the number of restarts after which
	// Decide gives up (until the history is reset). Zero or negative: never.
	MaxRestarts int
	// Jitter in [0, 1] is the largest fraction of a delay that may be taken
	// off it; 0 (the default) keeps delays exact. Values outside [0, 1] are
	// clamped.
	Jitter float64
	// JitterSeed seeds the jitter draw (see the package documentation).
	JitterSeed uint64
}

// normalized returns p with defaults applied.
func (p Policy) normalized() Policy {
	if p.Unit <= 0 {
		p.Unit = DefaultUnit
	}
	if p.Cap <= 0 {
		p.Cap = DefaultCap
	}
	if p.Cap < p.Unit {
		p.Cap = p.Unit
	}
	if p.ResetAfter <= 0 {
		p.ResetAfter = DefaultResetAfter
	}
	p.Jitter = min(max(p.Jitter, 0), 1)
	return p
}

// Delay is the back-off before restart number n+1, without jitter:
// min(Unit × 2^n, Cap). n below zero counts as zero.
func (p Policy) Delay(n int) time.Duration {
	p = p.normalized()
	d := p.Unit
	for i := 0; i < n && d < p.Cap; i++ {
		d *= 2
		if d <= 0 { // overflowed: only possible with a Cap near the largest Duration
			return p.Cap
		}
	}
	return min(d, p.Cap)
}

// delay is Delay(n) shortened by the jitter drawn for this exit.
func (p Policy) delay(n int, base time.Time) time.Duration {
	d := p.Delay(n)
	if p.Jitter == 0 {
		return d
	}
	r := rand.New(rand.NewPCG(p.JitterSeed, uint64(base.UnixNano())^uint64(n)*0x9e3779b97f4a7c15))
	return d - time.Duration(float64(d)*p.Jitter*r.Float64())
}
