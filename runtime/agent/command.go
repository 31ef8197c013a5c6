package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
)

// Kind is what a Command does.
type Kind int

// Command kinds. The zero Kind is invalid.
const (
	Pull    Kind = iota + 1 // pull Image with Auth
	Create                  // create the module from Spec (not started)
	Start                   // start it (uncounted: a first start, a status change, after a reboot)
	Stop                    // stop it within Timeout
	Remove                  // remove it (and, for the agent, forget its Record)
	Restart                 // stop (no-op if not running) and start it: a counted restart
	Wait                    // nothing to do for Module until At; not executed
	Reset                   // clear the module's restart history; no runtime call
)

var kindNames = [...]string{Pull: "pull", Create: "create", Start: "start", Stop: "stop", Remove: "remove", Restart: "restart", Wait: "wait", Reset: "reset"}

// String returns the lower-case name of k.
func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Cause says why Plan issued a command. Record.Update reads it (a Stop for a
// status change is remembered differently from a Stop for ill health), and
// logs and reports show it.
type Cause int

// Causes.
const (
	CauseNone       Cause = iota
	CauseAdded            // the module is new in the deployment
	CauseUpdated          // the deployment changed the module's spec
	CauseRemoved          // the module is no longer in the deployment
	CauseStatus           // the desired status (running/stopped) asks for it
	CauseMissing          // the agent knows the module but its container is gone
	CauseDead             // the container is dead: remove and recreate
	CauseUnhealthy        // the restart policy stops an unhealthy module
	CauseExited           // the restart policy restarts (or waits to restart) an exited module
	CauseHealthy          // it ran long enough: reset its restart history
	CauseFirstStart       // created but never started
	CauseBoot             // it was stopped by a shutdown of the host or runtime
	CauseRetry            // an earlier command failed: wait for the retry back-off
)

var causeNames = [...]string{
	CauseNone: "", CauseAdded: "added", CauseUpdated: "updated", CauseRemoved: "removed",
	CauseStatus: "status", CauseMissing: "missing", CauseDead: "dead", CauseUnhealthy: "unhealthy",
	CauseExited: "exited", CauseHealthy: "healthy", CauseFirstStart: "first-start", CauseBoot: "boot",
	CauseRetry: "retry",
}

// String returns the cause's name ("" for CauseNone).
func (c Cause) String() string {
	if c >= 0 && int(c) < len(causeNames) {
		return causeNames[c]
	}
	return fmt.Sprintf("Cause(%d)", int(c))
}

// MarshalText encodes the name, so that persisted Records survive a
// reordering of the constants.
func (c Cause) MarshalText() ([]byte, error) {
	if c < 0 || int(c) >= len(causeNames) {
		return nil, fmt.Errorf("cause %d: %w", int(c), ErrInvalidCommand)
	}
	return []byte(causeNames[c]), nil
}

// UnmarshalText decodes a name written by MarshalText.
func (c *Cause) UnmarshalText(b []byte) error {
	for i, name := range causeNames {
		if name == string(b) {
			*c = Cause(i)
			return nil
		}
	}
	return fmt.Errorf("unknown cause %q", b)
}

// Command is one step of a plan, for one module. Plan computes commands;
// Execute (or Apply) performs them. Commands are plain data and may be
// compared with reflect.DeepEqual.
type Command struct {
	Kind   Kind
	Module string
	Cause  Cause
	// Reason explains the command in words, for logs and status messages.
	Reason string
	// Hash is the ModuleSpec.Hash the module is being driven to ("" when it
	// is being removed); Record.Retry is keyed by it.
	Hash string

	// Image (Pull) is the image to pull; Credential names the
	// registryCredentials entry used for it ("" for an anonymous pull) and
	// Auth is that entry. Auth is never printed by String or LogValue.
	Image      string
	Credential string
	Auth       *deployment.RegistryCredential
	// Spec (Create) is the module to create. Its Env may hold secrets
	// (connection strings) and is never printed by String or LogValue.
	Spec *ModuleSpec
	// Timeout (Stop, Restart) is how long the module may take to stop
	// before it is killed.
	Timeout time.Duration
	// At (Wait) is when Module has something to do again.
	At time.Time
}

// String describes c without secrets, e.g. `pull "tempSensor" image
// "x.azurecr.io/t:1" (credential "acr"): added`.
func (c Command) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q", c.Kind, c.Module)
	switch c.Kind {
	case Pull:
		fmt.Fprintf(&b, " image %q", c.Image)
		if c.Credential != "" {
			fmt.Fprintf(&b, " (credential %q)", c.Credential)
		}
	case Create:
		if c.Spec != nil {
			fmt.Fprintf(&b, " image %q", c.Spec.Image)
		}
	case Stop, Restart:
		fmt.Fprintf(&b, " timeout %s", c.Timeout)
	case Wait:
		fmt.Fprintf(&b, " until %s", c.At.UTC().Format(time.RFC3339))
	}
	if c.Reason != "" {
		b.WriteString(": " + c.Reason)
	} else if c.Cause != CauseNone {
		b.WriteString(": " + c.Cause.String())
	}
	return b.String()
}

// LogValue renders c for log/slog without secrets.
func (c Command) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("kind", c.Kind.String()), slog.String("module", c.Module)}
	if c.Cause != CauseNone {
		attrs = append(attrs, slog.String("cause", c.Cause.String()))
	}
	switch c.Kind {
	case Pull:
		attrs = append(attrs, slog.String("image", c.Image), slog.String("credential", c.Credential))
	case Create:
		if c.Spec != nil {
			attrs = append(attrs, slog.String("image", c.Spec.Image))
		}
	case Stop, Restart:
		attrs = append(attrs, slog.Duration("timeout", c.Timeout))
	case Wait:
		attrs = append(attrs, slog.Time("at", c.At))
	}
	if c.Reason != "" {
		attrs = append(attrs, slog.String("reason", c.Reason))
	}
	return slog.GroupValue(attrs...)
}

// Execute applies c to rt. Wait and Reset do nothing at the runtime. Stop
// and Remove of a module the runtime does not have succeed. Errors name the
// module and the operation and wrap the runtime's error.
func (c Command) Execute(ctx context.Context, rt Runtime) error {
	return c.execute(ctx, rt, nil)
}

func (c Command) execute(ctx context.Context, rt Runtime, progress func(PullProgress)) error {
	if c.Module == "" {
		return fmt.Errorf("%s command without a module: %w", c.Kind, ErrInvalidCommand)
	}
	var err error
	switch c.Kind {
	case Pull:
		if c.Image == "" {
			return fmt.Errorf("module %q: pull without an image: %w", c.Module, ErrInvalidCommand)
		}
		if err = rt.Pull(ctx, c.Image, c.Auth, progress); err != nil {
			return fmt.Errorf("module %q: pull %q: %w", c.Module, c.Image, err)
		}
	case Create:
		if c.Spec == nil {
			return fmt.Errorf("module %q: create without a spec: %w", c.Module, ErrInvalidCommand)
		}
		if c.Spec.Name != c.Module {
			return fmt.Errorf("module %q: create with a spec for %q: %w", c.Module, c.Spec.Name, ErrInvalidCommand)
		}
		err = rt.Create(ctx, *c.Spec)
	case Start:
		err = rt.Start(ctx, c.Module)
	case Stop:
		if err = rt.Stop(ctx, c.Module, c.Timeout); errors.Is(err, ErrNotFound) {
			err = nil
		}
	case Remove:
		if err = rt.Remove(ctx, c.Module); errors.Is(err, ErrNotFound) {
			err = nil
		}
	case Restart:
		if err = rt.Stop(ctx, c.Module, c.Timeout); err == nil {
			err = rt.Start(ctx, c.Module)
		}
	case Wait, Reset:
	default:
		return fmt.Errorf("module %q: %s: %w", c.Module, c.Kind, ErrInvalidCommand)
	}
	if err != nil {
		return fmt.Errorf("module %q: %s: %w", c.Module, c.Kind, err)
	}
	return nil
}
