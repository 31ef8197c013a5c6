package conformance

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// sweep removes the kit's containers that runs on this host left behind when they were
// killed before they could remove them (LabelPID names a process that no longer exists).
// Containers of runs still going, this process's included, are left alone. It is best
// effort: trouble is logged, and the run goes on.
func sweep(ctx context.Context, eng dockerEngine, log *slog.Logger) {
	host, _ := os.Hostname()
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	list, err := eng.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelOwner+"="+Owner), filters.Arg("label", LabelHost+"="+host))})
	if err != nil {
		log.Warn("listing the containers of earlier conformance runs", "err", err)
		return
	}
	for _, c := range list {
		if processAlive(c.Labels[LabelPID]) {
			continue
		}
		err := eng.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			log.Warn("removing a container of an earlier conformance run", "container", c.Names, "err", err)
			continue
		}
		log.Info("removed a container an earlier conformance run left behind", "container", c.Names, "pid", c.Labels[LabelPID])
	}
}

// processAlive reports whether process pid exists on this host. A label that is not a
// process id counts as alive: the container is not the sweep's to judge.
func processAlive(pid string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return true
	}
	err = syscall.Kill(n, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
