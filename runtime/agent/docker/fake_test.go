package docker

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeEngine is a hand-written engine for the unit tests: canned answers
// and errors per method, and a record of the calls and their arguments.
// Its zero value knows no containers, images or networks.
type fakeEngine struct {
	mu    sync.Mutex
	calls []string

	containers []container.Summary
	listErr    error
	inspect    map[string]container.InspectResponse // by id or name; absent: 404
	inspectErr error                                // when set, every inspect fails with it

	createErr error
	created   []createRequest
	createdAs []string

	startErr, stopErr, removeErr error
	stopOpts                     container.StopOptions
	removeOpts                   container.RemoveOptions

	logs     io.ReadCloser
	logsErr  error
	logsOpts container.LogsOptions

	pullStream string // the JSON stream ImagePull returns
	pullErr    error
	pullRef    string
	pullOpts   image.PullOptions
	images     map[string]image.InspectResponse // by reference; absent: 404

	networks         map[string]bool
	networkErr       error // NetworkInspect
	networkCreateErr error
	networkCreated   []network.CreateOptions

	// streams are what successive Events calls return, in order; once they
	// are used up a call gets a stream that stays open and silent.
	streams    []fakeStream
	eventsOpts []events.ListOptions
}

// fakeStream is one Events stream: its messages, then err (nil: it stays
// open until the caller's ctx ends).
type fakeStream struct {
	msgs []events.Message
	err  error
}

var _ engine = (*fakeEngine)(nil)

// Errors as the SDK returns them: the daemon's message with a category.
func notFound(what string) error {
	return fmt.Errorf("Error response from daemon: No such %s: %w", what, cerrdefs.ErrNotFound)
}
func conflict(msg string) error {
	return fmt.Errorf("Error response from daemon: %s: %w", msg, cerrdefs.ErrConflict)
}

func (f *fakeEngine) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeEngine) called(prefix string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

func (f *fakeEngine) ContainerList(_ context.Context, opts container.ListOptions) ([]container.Summary, error) {
	f.record("list " + strings.Join(opts.Filters.Get("label"), ","))
	return f.containers, f.listErr
}

func (f *fakeEngine) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	f.record("inspect " + id)
	if f.inspectErr != nil {
		return container.InspectResponse{}, f.inspectErr
	}
	info, ok := f.inspect[id]
	if !ok {
		return info, notFound("container: " + id)
	}
	return info, nil
}

func (f *fakeEngine) ContainerCreate(_ context.Context, cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	f.record("create " + name)
	f.created = append(f.created, createRequest{cfg, hc, nc})
	f.createdAs = append(f.createdAs, name)
	return container.CreateResponse{ID: "0123456789abcdef0123"}, f.createErr
}

func (f *fakeEngine) ContainerStart(_ context.Context, id string, _ container.StartOptions) error {
	f.record("start " + id)
	return f.startErr
}

func (f *fakeEngine) ContainerStop(_ context.Context, id string, opts container.StopOptions) error {
	f.record("stop " + id)
	f.stopOpts = opts
	return f.stopErr
}

func (f *fakeEngine) ContainerRemove(_ context.Context, id string, opts container.RemoveOptions) error {
	f.record("remove " + id)
	f.removeOpts = opts
	return f.removeErr
}

func (f *fakeEngine) ContainerLogs(_ context.Context, id string, opts container.LogsOptions) (io.ReadCloser, error) {
	f.record("logs " + id)
	f.logsOpts = opts
	return f.logs, f.logsErr
}

func (f *fakeEngine) ImagePull(_ context.Context, ref string, opts image.PullOptions) (io.ReadCloser, error) {
	f.record("pull " + ref)
	f.pullRef, f.pullOpts = ref, opts
	if f.pullErr != nil {
		return nil, f.pullErr
	}
	return io.NopCloser(strings.NewReader(f.pullStream)), nil
}

func (f *fakeEngine) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	f.record("image-inspect " + ref)
	info, ok := f.images[ref]
	if !ok {
		return info, notFound("image: " + ref)
	}
	return info, nil
}

func (f *fakeEngine) NetworkInspect(_ context.Context, name string, _ network.InspectOptions) (network.Inspect, error) {
	f.record("network-inspect " + name)
	if f.networkErr != nil {
		return network.Inspect{}, f.networkErr
	}
	if !f.networks[name] {
		return network.Inspect{}, fmt.Errorf("Error response from daemon: network %s not found: %w", name, cerrdefs.ErrNotFound)
	}
	return network.Inspect{Name: name}, nil
}

func (f *fakeEngine) NetworkCreate(_ context.Context, name string, opts network.CreateOptions) (network.CreateResponse, error) {
	f.record("network-create " + name)
	f.networkCreated = append(f.networkCreated, opts)
	return network.CreateResponse{ID: "net"}, f.networkCreateErr
}

func (f *fakeEngine) Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error) {
	f.mu.Lock()
	f.calls = append(f.calls, "events")
	f.eventsOpts = append(f.eventsOpts, opts)
	var st fakeStream
	if len(f.streams) > 0 {
		st, f.streams = f.streams[0], f.streams[1:]
	}
	f.mu.Unlock()
	msgs, errs := make(chan events.Message), make(chan error, 1)
	go func() {
		for _, m := range st.msgs {
			select {
			case msgs <- m:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
		}
		if st.err != nil {
			errs <- st.err
			return
		}
		<-ctx.Done()
		errs <- ctx.Err()
	}()
	return msgs, errs
}
