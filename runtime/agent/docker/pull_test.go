package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

const (
	testPassword = "Sup3r-s3cret!"
	digestA      = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB      = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

var testAuth = &deployment.RegistryCredential{Username: "edge", Password: testPassword, Address: "x.azurecr.io"}

// pullStream is a pull stream of the engine: one JSON object per line.
func pullStream(msgs ...string) string { return strings.Join(msgs, "\r\n") + "\r\n" }

var okStream = pullStream(
	`{"status":"Pulling from m","id":"1"}`,
	`{"status":"Pulling fs layer","progressDetail":{},"id":"a22ccacbe8e0"}`,
	`{"status":"Downloading","progressDetail":{"current":36446,"total":788229},"progress":"[=>   ]  36.45kB/788.2kB","id":"a22ccacbe8e0"}`,
	`{"status":"Download complete","progressDetail":{},"id":"a22ccacbe8e0"}`,
	`{"status":"Pull complete","progressDetail":{},"id":"a22ccacbe8e0"}`,
	`{"status":"Digest: `+digestA+`"}`,
	`{"status":"Status: Downloaded newer image for x.azurecr.io/m:1"}`,
)

func TestPull_Progress(t *testing.T) {
	f := &fakeEngine{pullStream: okStream, images: map[string]image.InspectResponse{"x.azurecr.io/m:1": {ID: "sha256:1"}}}
	var got []agent.PullProgress
	if err := newRuntime(f, Options{}).Pull(context.Background(), "x.azurecr.io/m:1", nil, func(p agent.PullProgress) { got = append(got, p) }); err != nil {
		t.Fatal(err)
	}
	want := []agent.PullProgress{
		{Status: "Pulling from m"},
		{Layer: "a22ccacbe8e0", Status: "Pulling fs layer"},
		{Layer: "a22ccacbe8e0", Status: "Downloading", Current: 36446, Total: 788229},
		{Layer: "a22ccacbe8e0", Status: "Download complete"},
		{Layer: "a22ccacbe8e0", Status: "Pull complete"},
		{Status: "Digest: " + digestA},
		{Status: "Status: Downloaded newer image for x.azurecr.io/m:1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("progress\n got %+v\nwant %+v", got, want)
	}
	if f.pullOpts.RegistryAuth != "" {
		t.Errorf("anonymous pull sent credentials %q", f.pullOpts.RegistryAuth)
	}
}

func TestPull_SendsCredentials(t *testing.T) {
	f := &fakeEngine{pullStream: okStream, images: map[string]image.InspectResponse{"x.azurecr.io/m:1": {ID: "sha256:1"}}}
	if err := newRuntime(f, Options{}).Pull(context.Background(), "x.azurecr.io/m:1", testAuth, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.URLEncoding.DecodeString(f.pullOpts.RegistryAuth)
	if err != nil {
		t.Fatalf("X-Registry-Auth %q: %v", f.pullOpts.RegistryAuth, err)
	}
	var got struct{ Username, Password, ServerAddress string }
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.Username != "edge" || got.Password != testPassword || got.ServerAddress != "x.azurecr.io" {
		t.Errorf("X-Registry-Auth carries %+v", got)
	}
}

func TestPull_Errors(t *testing.T) {
	present := map[string]image.InspectResponse{"x.azurecr.io/m:1": {ID: "sha256:1"}}
	for _, tc := range []struct {
		name    string
		engine  *fakeEngine
		image   string
		auth    *deployment.RegistryCredential
		opts    Options
		want    error  // errors.Is
		wantMsg string // in the message
		noPull  bool   // refused before asking the engine
	}{
		{
			name:   "http-unauthorized",
			engine: &fakeEngine{pullErr: fmt.Errorf("Error response from daemon: Head \"https://x.azurecr.io/v2/m/manifests/1\": unauthorized: authentication required: %w", cerrdefs.ErrUnauthenticated)},
			auth:   testAuth, want: ErrUnauthorized, wantMsg: `registry x.azurecr.io, as user "edge"`,
		},
		{
			name:   "http-500-unauthorized-text",
			engine: &fakeEngine{pullErr: errors.New("Error response from daemon: unauthorized: authentication required")},
			auth:   testAuth, want: ErrUnauthorized, wantMsg: "authentication",
		},
		{
			name:   "no-credentials",
			engine: &fakeEngine{pullErr: errors.New(`Error response from daemon: Head "http://x.azurecr.io/v2/m/manifests/1": no basic auth credentials`)},
			want:   ErrUnauthorized, wantMsg: "without credentials",
		},
		{
			name:   "stream-denied",
			engine: &fakeEngine{pullStream: pullStream(`{"status":"Pulling from m","id":"1"}`, `{"errorDetail":{"message":"pull access denied for m"},"error":"pull access denied for m"}`)},
			auth:   testAuth, want: ErrUnauthorized, wantMsg: "pull access denied",
		},
		{
			name:   "password-echoed-is-redacted",
			engine: &fakeEngine{pullErr: errors.New("unauthorized: bad password " + testPassword)},
			auth:   testAuth, want: ErrUnauthorized, wantMsg: "[REDACTED]",
		},
		{
			name:   "not-in-registry",
			engine: &fakeEngine{pullErr: fmt.Errorf("Error response from daemon: manifest for x.azurecr.io/m:1 not found: manifest unknown: %w", cerrdefs.ErrNotFound)},
			want:   ErrImageUnknown, wantMsg: "manifest unknown",
		},
		{
			name:    "stream-error-surfaced",
			engine:  &fakeEngine{pullStream: pullStream(`{"status":"Extracting","id":"l1"}`, `{"errorDetail":{"message":"write /var/lib/docker/tmp: no space left on device"}}`)},
			wantMsg: "no space left on device",
		},
		{
			name:    "stream-broken",
			engine:  &fakeEngine{pullStream: `{"status":"Downloading","id":"l1"}` + "\n" + `{"status":`},
			wantMsg: "reading the engine's pull stream",
		},
		{
			name:    "engine-has-no-image-after-pull",
			engine:  &fakeEngine{pullStream: okStream},
			wantMsg: "after pull",
		},
		{name: "invalid-reference", engine: &fakeEngine{}, image: "UPPER/Case:1", want: ErrInvalidImage, noPull: true},
		{name: "require-digest", engine: &fakeEngine{}, opts: Options{RequireDigest: true}, want: ErrUnpinned, wantMsg: "name@sha256", noPull: true},
		{
			name:   "digest-mismatch",
			engine: &fakeEngine{pullStream: okStream, images: map[string]image.InspectResponse{"x.azurecr.io/m@" + digestA: {ID: "sha256:1", RepoDigests: []string{"x.azurecr.io/m@" + digestB, "x.azurecr.io/other@" + digestA}}}},
			image:  "x.azurecr.io/m@" + digestA, want: ErrDigestMismatch,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.engine.images == nil && tc.name != "engine-has-no-image-after-pull" {
				tc.engine.images = present
			}
			ref := tc.image
			if ref == "" {
				ref = "x.azurecr.io/m:1"
			}
			err := newRuntime(tc.engine, tc.opts).Pull(context.Background(), ref, tc.auth, func(agent.PullProgress) {})
			if err == nil {
				t.Fatal("Pull succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q, want it to contain %q", err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Errorf("error %q shows the password", err)
			}
			if tc.want != ErrUnauthorized && errors.Is(err, ErrUnauthorized) {
				t.Errorf("error %v wrongly classified as refused credentials", err)
			}
			if pulled := tc.engine.called("pull "); pulled == tc.noPull {
				t.Errorf("engine asked to pull: %v, want %v", pulled, !tc.noPull)
			}
		})
	}
}

func TestPull_PinnedDigestVerified(t *testing.T) {
	for _, tc := range []struct{ name, image, repoDigest string }{
		{"registry", "x.azurecr.io/m@" + digestA, "x.azurecr.io/m@" + digestA},
		{"loopback-port", "127.0.0.1:5000/a/m@" + digestA, "127.0.0.1:5000/a/m@" + digestA},
		{"docker-hub-familiar", "alpine@" + digestA, "alpine@" + digestA},
		{"docker-hub-full", "docker.io/library/alpine@" + digestA, "alpine@" + digestA},
		{"tag-and-digest", "x.azurecr.io/m:1@" + digestA, "x.azurecr.io/m@" + digestA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEngine{pullStream: okStream, images: map[string]image.InspectResponse{
				tc.image: {ID: "sha256:1", RepoDigests: []string{"x.azurecr.io/m@" + digestB, tc.repoDigest}},
			}}
			if err := newRuntime(f, Options{RequireDigest: true}).Pull(context.Background(), tc.image, nil, nil); err != nil {
				t.Errorf("Pull %s: %v", tc.image, err)
			}
		})
	}
}

func TestPull_ContextCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	f := &fakeEngine{}
	rt := newRuntime(&cancelingEngine{fakeEngine: f, stream: pr}, Options{})
	go func() {
		pw.Write([]byte(`{"status":"Downloading","id":"l1"}` + "\n"))
		cancel()
		pw.CloseWithError(context.Canceled) // what the HTTP body does when ctx ends
	}()
	err := rt.Pull(ctx, "x.azurecr.io/m:1", nil, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Pull: %v, want context.Canceled", err)
	}
}

// cancelingEngine returns a pull stream the test controls.
type cancelingEngine struct {
	*fakeEngine
	stream io.ReadCloser
}

func (c *cancelingEngine) ImagePull(context.Context, string, image.PullOptions) (io.ReadCloser, error) {
	return c.stream, nil
}
