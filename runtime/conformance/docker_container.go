package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// dockerEngine is the part of the Docker SDK client the runner uses; *client.Client
// satisfies it, and the unit tests replace it with a fake that produces the engine's odd
// answers (a start refused, a wait that breaks).
type dockerEngine interface {
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, containerName string) (container.CreateResponse, error)
	ContainerAttach(ctx context.Context, containerID string, options container.AttachOptions) (types.HijackedResponse, error)
	ContainerWait(ctx context.Context, containerID string, condition container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerStart(ctx context.Context, containerID string, options container.StartOptions) error
	ContainerStop(ctx context.Context, containerID string, options container.StopOptions) error
	ContainerKill(ctx context.Context, containerID, signal string) error
	ContainerRemove(ctx context.Context, containerID string, options container.RemoveOptions) error
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	ContainerStatsOneShot(ctx context.Context, containerID string) (container.StatsResponseReader, error)
}

var _ dockerEngine = (*client.Client)(nil)

// dockerContainer is a module started by DockerRunner.
type dockerContainer struct {
	eng  dockerEngine
	id   string
	name string
	log  *slog.Logger

	// life ends the wait, the attach and a pending docker stop (Close).
	life     context.Context
	stopLife context.CancelFunc

	out     tailBuffer
	outDone chan struct{} // closed when the attached output stream ends
	attach  *types.HijackedResponse

	done     chan struct{}
	mu       sync.Mutex
	exitCode int
	// startedAt is the engine's start time, the first resource sample (nothing used yet);
	// lastRead the time of the engine's last stats sample, so that none counts twice.
	startedAt time.Time
	baseline  bool
	lastRead  time.Time

	closeOnce sync.Once
	closeErr  error
}

var (
	_ Instance        = (*dockerContainer)(nil)
	_ ResourceSampler = (*dockerContainer)(nil)
	_ GracefulStopper = (*dockerContainer)(nil)
)

func newContainer(eng dockerEngine, id, name string, log *slog.Logger) *dockerContainer {
	life, stop := context.WithCancel(context.Background())
	return &dockerContainer{eng: eng, id: id, name: name, log: log, life: life, stopLife: stop,
		outDone: make(chan struct{}), done: make(chan struct{}), exitCode: -1}
}

// start attaches to the output, registers the wait and starts the container, in the order
// docker run uses, so that neither the first output nor an immediate exit is missed.
func (c *dockerContainer) start(ctx context.Context) error {
	actx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	hr, err := c.eng.ContainerAttach(actx, c.id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	cancel()
	if err != nil {
		close(c.outDone)
		return fmt.Errorf("attach: %w", err)
	}
	c.attach = &hr
	go func() {
		defer close(c.outDone)
		// The engine multiplexes stdout and stderr (no TTY); both go to one buffer. The
		// stream ends when the container exits or Close closes the connection.
		_, _ = stdcopy.StdCopy(&c.out, &c.out, hr.Reader)
	}()
	waitC, errC := c.eng.ContainerWait(c.life, c.id, container.WaitConditionNextExit)
	sctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	err = c.eng.ContainerStart(sctx, c.id, container.StartOptions{})
	cancel()
	if err != nil {
		return err
	}
	go c.wait(waitC, errC)
	ictx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	if info, err := c.eng.ContainerInspect(ictx, c.id); err == nil && info.ContainerJSONBase != nil && info.State != nil {
		// Without it the resource checks start at the first stats sample.
		c.startedAt, _ = time.Parse(time.RFC3339Nano, info.State.StartedAt)
	}
	return nil
}

// wait records the exit code when the container exits, lets the output drain, and closes
// done. When the engine's wait breaks, it polls the container's state instead.
func (c *dockerContainer) wait(waitC <-chan container.WaitResponse, errC <-chan error) {
	code := -1
	select {
	case resp := <-waitC:
		code = int(resp.StatusCode)
	case err := <-errC:
		if c.life.Err() == nil {
			c.log.Warn("waiting for the container failed; polling its state", "container", c.name, "err", err)
			code = c.pollExit()
		}
	}
	t := time.NewTimer(attachDrainTimeout)
	select {
	case <-c.outDone:
	case <-t.C:
	}
	t.Stop()
	c.mu.Lock()
	c.exitCode = code
	c.mu.Unlock()
	close(c.done)
}

// pollExit inspects the container every pollInterval until it is no longer running, and
// returns its exit code (-1 when it is gone or Close ends the wait).
func (c *dockerContainer) pollExit() int {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(c.life, dockerCallTimeout)
		info, err := c.eng.ContainerInspect(ctx, c.id)
		cancel()
		switch {
		case cerrdefs.IsNotFound(err):
			return -1
		case err == nil && info.ContainerJSONBase != nil && info.State != nil &&
			!info.State.Running && info.State.Status != container.StateCreated:
			return info.State.ExitCode
		}
		select {
		case <-c.life.Done():
			return -1
		case <-tick.C:
		}
	}
}

func (c *dockerContainer) PID() int              { return 0 } // sampled through the engine
func (c *dockerContainer) Done() <-chan struct{} { return c.done }
func (c *dockerContainer) Output() string        { return c.out.String() }

// ExitCode implements Instance: the engine's exit code (128+n after signal n).
func (c *dockerContainer) ExitCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exitCode
}

// Terminate implements Instance: SIGTERM through the engine.
func (c *dockerContainer) Terminate() error { return c.signal("TERM") }

// Kill implements Instance: SIGKILL through the engine.
func (c *dockerContainer) Kill() error { return c.signal("KILL") }

func (c *dockerContainer) signal(sig string) error {
	if c.exited() {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.life, dockerCallTimeout)
	defer cancel()
	err := c.eng.ContainerKill(ctx, c.id, sig)
	// Conflict: it stopped between the check and the kill.
	if err != nil && !c.exited() && !cerrdefs.IsConflict(err) && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("SIG%s to container %s: %w", sig, c.name, err)
	}
	return nil
}

func (c *dockerContainer) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Stop implements GracefulStopper with docker stop. Its timeout is the grace period
// rounded up to whole seconds (the engine's unit) plus dockerStopMargin, so that the
// harness, which judges the grace period itself, kills a module that outlives it before
// the engine would.
func (c *dockerContainer) Stop(grace time.Duration) error {
	if c.exited() {
		return nil
	}
	secs := int(math.Ceil(grace.Seconds()) + dockerStopMargin.Seconds())
	go func() {
		ctx, cancel := context.WithTimeout(c.life, time.Duration(secs)*time.Second+dockerCallTimeout)
		defer cancel()
		err := c.eng.ContainerStop(ctx, c.id, container.StopOptions{Timeout: &secs})
		if err != nil && c.life.Err() == nil && !cerrdefs.IsNotFound(err) {
			c.log.Warn("docker stop failed", "container", c.name, "err", err)
		}
	}()
	return nil
}

// SampleInterval implements ResourceSampler. SampleResources blocks until the engine's
// next collection (once a second), so this only spaces requests that return at once.
func (c *dockerContainer) SampleInterval() time.Duration { return dockerSampleInterval }

// ResourceSource implements ResourceSampler.
func (c *dockerContainer) ResourceSource() string { return "docker stats" }

// SampleResources implements ResourceSampler with the engine's one-shot stats. The engine
// collects them once a second, and a one-shot request waits for the next collection, so
// the samples come at that pace; the first is the container's start, when its cgroup had
// used nothing, so that a module that runs for a second or two is still judged over its
// whole run.
func (c *dockerContainer) SampleResources(ctx context.Context) (ResourceSample, error) {
	c.mu.Lock()
	if !c.baseline && !c.startedAt.IsZero() {
		c.baseline = true
		c.mu.Unlock()
		return ResourceSample{At: c.startedAt}, nil
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	resp, err := c.eng.ContainerStatsOneShot(ctx, c.id)
	if err != nil {
		return ResourceSample{}, fmt.Errorf("docker stats: %w", err)
	}
	defer resp.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return ResourceSample{}, fmt.Errorf("docker stats: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !st.Read.IsZero() && !st.Read.After(c.lastRead) {
		return ResourceSample{}, errStaleStats
	}
	c.lastRead = st.Read
	return statsSample(st)
}

// statsSample reads a sample from the engine's stats: the memory in use without the
// inactive page cache, as docker stats shows it (cgroup v1 reports total_inactive_file,
// v2 inactive_file), and the cgroup's total CPU time. A container that is not running
// has no read time.
func statsSample(st container.StatsResponse) (ResourceSample, error) {
	if st.Read.IsZero() {
		return ResourceSample{}, errNotRunning
	}
	mem := st.MemoryStats.Usage
	inactive, ok := st.MemoryStats.Stats["total_inactive_file"]
	if !ok {
		inactive = st.MemoryStats.Stats["inactive_file"]
	}
	if inactive < mem {
		mem -= inactive
	}
	return ResourceSample{
		Memory: int64(min(mem, math.MaxInt64)),
		CPU:    time.Duration(min(st.CPUStats.CPUUsage.TotalUsage, math.MaxInt64)),
		At:     st.Read,
	}, nil
}

// Close implements Instance: it ends the wait and the attach and removes the container
// (forcibly: a module that is somehow still running is killed by the engine).
func (c *dockerContainer) Close() error {
	c.closeOnce.Do(func() {
		c.stopLife()
		if c.attach != nil {
			c.attach.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
		defer cancel()
		err := c.eng.ContainerRemove(ctx, c.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			c.closeErr = fmt.Errorf("remove container %s: %w", c.name, err)
		}
	})
	return c.closeErr
}
