package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
)

var (
	buildsMu sync.Mutex
	builds   = map[string]*buildResult{}
)

type buildResult struct {
	once sync.Once
	pkg  string
	ref  string
	err  error
}

// BuildImage builds goPackage (an import path in this module, e.g.
// "github.com/outpost-edge/outpost/runtime/agent/docker/dockertest/testprog")
// as a static binary (CGO_ENABLED=0) into a FROM scratch image name:tag,
// whose entry point is the binary, at /<last element of goPackage>. The
// image is built once per test process; later calls return the same
// reference. It carries LabelRun, so Main (or a later run's sweep)
// removes it.
func BuildImage(t testing.TB, ctx context.Context, name, tag, goPackage string) string {
	t.Helper()
	cli := Client(t)
	ref := name + ":" + tag
	buildsMu.Lock()
	b, ok := builds[ref]
	if !ok {
		b = &buildResult{pkg: goPackage}
		builds[ref] = b
	}
	buildsMu.Unlock()
	if b.pkg != goPackage {
		t.Fatalf("dockertest: image %s is already built from %s, not %s", ref, b.pkg, goPackage)
	}
	b.once.Do(func() {
		b.ref, b.err = buildImage(ctx, cli, name, ref, goPackage)
	})
	if b.err != nil {
		t.Fatalf("dockertest: build image %s: %v", ref, b.err)
	}
	return b.ref
}

func buildImage(ctx context.Context, cli *client.Client, name, ref, goPackage string) (string, error) {
	dir, err := os.MkdirTemp("", "dockertest-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)

	bin := path.Base(goPackage)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, bin), goPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", goPackage, err, out)
	}
	binary, err := os.ReadFile(filepath.Join(dir, bin))
	if err != nil {
		return "", err
	}
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY %s /%s\nENTRYPOINT [\"/%s\"]\n", bin, bin, bin)
	buildContext, err := tarFiles(map[string]tarFile{
		"Dockerfile": {mode: 0o644, data: []byte(dockerfile)},
		bin:          {mode: 0o755, data: binary},
	})
	if err != nil {
		return "", err
	}
	resp, err := cli.ImageBuild(ctx, bytes.NewReader(buildContext), build.ImageBuildOptions{
		Tags:        []string{ref},
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1, // the engine's legacy builder: no BuildKit needed
		Labels:      map[string]string{LabelRun: run, LabelImage: name},
	})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := StreamError(resp.Body); err != nil {
		return "", err
	}
	return ref, nil
}

type tarFile struct {
	mode int64
	data []byte
}

func tarFiles(files map[string]tarFile) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// StreamError reads one of the engine's JSON message streams (build, pull,
// push) to its end and returns the first error in it.
func StreamError(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}
