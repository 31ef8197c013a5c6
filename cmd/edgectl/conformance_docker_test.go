package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/outpost-edge/outpost/runtime/agent/docker/dockertest"
	"github.com/outpost-edge/outpost/runtime/conformance"
)

// TestConformance_DockerImages runs edgectl conformance on the sample modules' images on
// a real Docker Engine (skipped with -short or without one; run under the Docker lock):
// an image named plainly and one with the docker: prefix, and an image the engine lacks.
func TestConformance_DockerImages(t *testing.T) {
	dc := dockertest.Client(t)
	dockertest.Cleanup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	relayer := dockertest.BuildImage(t, ctx, "outpost-edgectl-test/relayer", "1", "github.com/outpost-edge/outpost/cmd/relayer")
	broken := dockertest.BuildImage(t, ctx, "outpost-edgectl-test/brokenmodule", "1", "github.com/outpost-edge/outpost/cmd/brokenmodule")
	dir := t.TempDir()
	js := filepath.Join(dir, "report.json")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // in stdout, or stderr when the run could not be made
	}{
		{name: "image by reference", args: []string{relayer, "--spec", "../relayer/conformance.json", "--json", js}, wantCode: exitOK,
			want: []string{"Conformance of module relayer (image " + relayer + ")", "PASS  sigterm", "docker stats", "\nOK\n"}},
		{name: "docker prefix, a failing module", args: []string{"docker:" + broken, "--spec", "../brokenmodule/conformance.json", "--env", "BROKEN_FAULTS=sigterm"},
			wantCode: exitFailed, want: []string{"Conformance of module brokenmodule (image " + broken + ")", "FAIL  sigterm", "FAILED: sigterm\n"}},
		{name: "image the engine lacks", args: []string{"outpost-edgectl-test/missing:none"}, wantCode: exitUsage,
			want: []string{"not a file here, so it was taken for an image reference", "image not found in the Docker Engine"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := cli(t, env{DockerLabels: dockertest.Labels(t)}, append([]string{"conformance"}, tt.args...)...)
			t.Logf("took %v\nstdout:\n%s\nstderr:\n%s", time.Since(start).Round(100*time.Millisecond), stdout, stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			args := filters.NewArgs(filters.Arg("label", conformance.LabelOwner+"="+conformance.Owner))
			for k, v := range dockertest.Labels(t) {
				args.Add("label", k+"="+v)
			}
			if left, err := dc.ContainerList(context.Background(), container.ListOptions{All: true, Filters: args}); err != nil || len(left) > 0 {
				t.Errorf("containers left behind: %d (%v)", len(left), err)
			}
		})
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep conformance.Report
	if err := json.Unmarshal(b, &rep); err != nil || rep.Target != "image "+relayer || rep.Failed != 0 {
		t.Errorf("JSON report: %+v, %v", rep, err)
	}
}
