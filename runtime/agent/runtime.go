package agent

import (
	"context"
	"io"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
)

// Runtime is what the agent needs from a module runtime (Docker, plain
// processes, or agenttest.FakeRuntime), and nothing more. The agent owns the
// interface; implementations live in their own packages and carry a guard:
//
//	var _ agent.Runtime = (*Runtime)(nil)
//
// Implementations must be safe for concurrent use: the reconcile loop
// executes commands while direct-method handlers and the CLI call List and
// Logs. Modules are named by their module name, which is also the container
// name. The runtime never restarts a module on its own (no Docker restart
// policy): restarts are the agent's decision.
type Runtime interface {
	// List returns every module the runtime manages for the agent: those
	// carrying LabelOwner = Owner, edgeAgent's own container included if it
	// is labelled. It fills the runtime fields of ModuleState (State,
	// Health, ExitCode, StartedAt, ExitedAt, Image from LabelImage, ImageID,
	// SpecHash from LabelSpecHash) and leaves Record and Pulling zero.
	// Called by the reconcile loop at the start of every reconcile, and by
	// status queries.
	List(ctx context.Context) ([]ModuleState, error)

	// Pull fetches image (and all its layers) so that Create can use it,
	// with auth when not nil. It returns when the image is present locally.
	// progress, when not nil, is called synchronously from Pull's goroutine
	// for progress events. Called by Command.Execute for a Pull command,
	// before a Create when the module's imagePullPolicy is on-create.
	Pull(ctx context.Context, image string, auth *deployment.RegistryCredential, progress func(PullProgress)) error

	// Create creates the module from spec without starting it: name
	// spec.Name, image spec.Image, the labels spec.Labels, and the Docker
	// create options spec.CreateOptions with its environment replaced by
	// spec.Env (which already includes createOptions.Env, see Env). It fails
	// with ErrExists when a module of that name exists and with
	// ErrImageNotFound when the image is not present. Called by
	// Command.Execute for a Create command (added, updated, missing or dead
	// modules).
	Create(ctx context.Context, spec ModuleSpec) error

	// Start starts a created or exited module; starting a running module
	// succeeds. ErrNotFound when there is none. Called by Command.Execute
	// for Start and Restart commands.
	Start(ctx context.Context, name string) error

	// Stop asks the module to stop (SIGTERM), then kills it once timeout has
	// passed. Stopping a module that is not running succeeds; ErrNotFound
	// when there is none. Called by Command.Execute for Stop and Restart
	// commands: desired status stopped, an unhealthy module, before an
	// update or a removal. The agent's own shutdown never calls it.
	Stop(ctx context.Context, name string, timeout time.Duration) error

	// Remove deletes a module that is not running, and its writable layer;
	// ErrNotFound when there is none. Called by Command.Execute for Remove
	// commands (removed from the deployment, updated, dead), after a Stop.
	Remove(ctx context.Context, name string) error

	// Logs returns the module's output (stdout and stderr interleaved, as
	// plain text lines) selected by opts; the caller closes it. Not used by
	// commands: called by the agent's GetModuleLogs direct method and by the
	// CLI's logs command.
	Logs(ctx context.Context, name string, opts LogOptions) (io.ReadCloser, error)
}

// PullProgress is one progress event of Runtime.Pull, for the "downloading"
// status and the CLI's progress display.
type PullProgress struct {
	Layer   string // layer id; empty for events about the whole image
	Status  string // e.g. "Downloading", "Extracting", "Pull complete"
	Current int64  // bytes done of this layer
	Total   int64  // layer size in bytes; 0 when unknown
}

// LogOptions selects what Runtime.Logs returns.
type LogOptions struct {
	Follow     bool      // keep the stream open and send new output until ctx is done
	Tail       int       // only the last Tail lines; 0 means all
	Since      time.Time // only output at or after Since, when not zero
	Until      time.Time // only output before Until, when not zero
	Timestamps bool      // prefix each line with its RFC 3339 time
}

// ModuleSpec is everything a runtime needs to create a module. The restart
// policy is deliberately absent: the agent restarts modules itself.
type ModuleSpec struct {
	Name  string
	Image string // the image to create from ("$upstream" already resolved)
	// Env is the final environment, "NAME=value", sorted by name: manifest
	// env, injected variables and createOptions.Env merged by Env.
	Env []string
	// CreateOptions is the Docker Engine create JSON from the manifest; its
	// Env is superseded by the Env field.
	CreateOptions string
	// Labels to set on the module: LabelOwner, LabelModule, LabelSpecHash,
	// LabelImage and LabelVersion.
	Labels map[string]string
	// Hash identifies the spec; equal to Labels[LabelSpecHash].
	Hash string
}

// Labels the agent puts on every module it creates. The keys are in a
// namespace of our own rather than Azure's net.azure-devices.edge.*: an
// Outpost device is not managed by Azure's tools, and Azure's agent must not
// mistake our containers for its own (nor we its). The reverse-DNS prefix
// is that of the project's GitHub Pages domain, outpost-edge.github.io.
const (
	// LabelOwner marks a module managed by the agent; its value is Owner.
	// Runtime.List returns only modules carrying it.
	LabelOwner = "io.github.outpost-edge.owner"
	// LabelModule holds the module name.
	LabelModule = "io.github.outpost-edge.module"
	// LabelSpecHash holds ModuleSpec.Hash; a different hash means the
	// deployment changed the module, which is then recreated.
	LabelSpecHash = "io.github.outpost-edge.spec-hash"
	// LabelImage holds the image as written in the manifest (before
	// "$upstream" is resolved), reported as settings.image.
	LabelImage = "io.github.outpost-edge.original-image"
	// LabelVersion holds the module's version from the manifest.
	LabelVersion = "io.github.outpost-edge.version"

	// Owner is the value of LabelOwner.
	Owner = "outpost"
)

// ExitWatcher is optionally implemented by a Runtime that can tell when a
// module exits, so that the agent need not wait for its next periodic
// reconcile to notice a crash (see the package documentation, "Agent").
// Without one the agent learns of exits at its reconciles only.
type ExitWatcher interface {
	// WatchExits returns a channel that receives the name of a module each
	// time the runtime sees it exit (a crash, a normal end or a Stop),
	// until ctx ends; the channel is then closed. Events are hints: the
	// agent re-Lists on each, so an event may be coalesced or dropped when
	// the receiver lags (sends never block the runtime), and a spurious one
	// costs a reconcile. The implementation keeps the watch going on its
	// own (reconnecting when a stream breaks); a closed channel before ctx
	// ends means the watch has stopped for good, and the agent calls
	// WatchExits again later. An error means no watch could be set up.
	WatchExits(ctx context.Context) (<-chan string, error)
}
