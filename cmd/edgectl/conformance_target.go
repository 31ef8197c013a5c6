package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/docker/client"

	"github.com/outpost-edge/outpost/runtime/conformance"
)

// What edgectl conformance runs (--runtime).
const (
	targetAuto    = "auto"
	targetProcess = runtimeProcess
	targetDocker  = runtimeDocker
	// dockerPrefix marks a target as an image reference whatever --runtime says
	// (docker:relayer runs the image relayer even with a file called relayer here).
	dockerPrefix = "docker:"
)

// target is the module to run: its runner, the module name it suggests and what to
// release after the run.
type target struct {
	runner conformance.Runner
	name   string
	close  func() error
}

// openEngine makes a Docker Engine client; tests point it at engines of their own.
type openEngine func() (*client.Client, error)

// dockerFromEnv is the client of the Docker environment (DOCKER_HOST and the rest, as the
// docker CLI reads them), its API version negotiated.
func dockerFromEnv() (*client.Client, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

// resolveTarget decides how to run arg:
//
//   - "docker:REF", or --runtime docker: the image REF, which must be in the engine;
//   - --runtime process: the executable arg;
//   - auto: an existing file is an executable run as a process; otherwise a path ("./x",
//     "/x") is a missing executable, and anything else an image reference, which must be
//     in the engine.
//
// Errors for a target that is not there (no such file, no such image, not a reference)
// are usage errors; a Docker Engine that does not answer fails the run (exit 1).
func resolveTarget(ctx context.Context, arg, runtime string, labels map[string]string, open openEngine) (target, error) {
	ref, explicit := strings.CutPrefix(arg, dockerPrefix)
	switch {
	case runtime != targetAuto && runtime != targetProcess && runtime != targetDocker:
		return target{}, usage(fmt.Errorf("--runtime %q: want auto, process or docker", runtime))
	case explicit && runtime == targetProcess:
		return target{}, usage(fmt.Errorf("%s names an image, but --runtime is process", arg))
	case explicit || runtime == targetDocker:
		return imageTarget(ctx, ref, labels, open, "")
	case runtime == targetProcess:
		return executableTarget(arg)
	}
	_, err := os.Stat(arg)
	switch {
	case err == nil:
		return executableTarget(arg)
	case !errors.Is(err, os.ErrNotExist):
		return target{}, usage(fmt.Errorf("executable %s: %w", arg, err))
	case strings.HasPrefix(arg, ".") || filepath.IsAbs(arg):
		return target{}, usage(fmt.Errorf("executable %s: %w", arg, err))
	}
	return imageTarget(ctx, arg, labels, open, fmt.Sprintf("%s is not a file here, so it was taken for an image reference: ", arg))
}

// executableTarget runs the file path as a process.
func executableTarget(p string) (target, error) {
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return target{}, usage(fmt.Errorf("executable %s: %w", p, err))
	case fi.IsDir():
		return target{}, usage(fmt.Errorf("%s is a directory, not an executable", p))
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return target{}, usage(fmt.Errorf("executable %s: %w", p, err))
	}
	return target{runner: &conformance.ProcessRunner{Path: abs}, name: moduleNameOf(filepath.Base(p)), close: func() error { return nil }}, nil
}

// imageTarget runs the image ref, after checking that the engine holds it. why prefixes
// the errors when the target was taken for an image by elimination.
func imageTarget(ctx context.Context, ref string, labels map[string]string, open openEngine, why string) (target, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return target{}, usage(fmt.Errorf("%simage reference %q: %w", why, ref, err))
	}
	cli, err := open()
	if err != nil {
		return target{}, failed(fmt.Errorf("%simage %s: Docker client: %w", why, ref, err))
	}
	r := &conformance.DockerRunner{Image: ref, Client: cli, Labels: labels}
	if err := r.Check(ctx); err != nil {
		cli.Close()
		if errors.Is(err, conformance.ErrImageNotFound) {
			return target{}, usage(fmt.Errorf("%s%w", why, err))
		}
		return target{}, failed(fmt.Errorf("%s%w (is a Docker Engine running? scripts/docker-up.sh starts one)", why, err))
	}
	return target{runner: r, name: imageModuleName(named), close: cli.Close}, nil
}

// imageModuleName is the module name an image suggests: the last element of its
// repository path ("relayer" for localhost:5000/outpost/relayer:1.0).
func imageModuleName(named reference.Named) string {
	return sanitizeModuleName(path.Base(reference.Path(named)))
}

// moduleNameOf turns a file name into a module name: its extension dropped, the
// characters a module id may not hold replaced by '-'.
func moduleNameOf(base string) string {
	return sanitizeModuleName(strings.TrimSuffix(base, filepath.Ext(base)))
}

// sanitizeModuleName replaces the characters a module id may not hold by '-'.
func sanitizeModuleName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, s)
}
