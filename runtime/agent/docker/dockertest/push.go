package dockertest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/docker/docker/client"
)

// Media types of a Docker image manifest (schema 2), which every engine
// pulls.
const (
	mediaManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaConfig   = "application/vnd.docker.container.image.v1+json"
	mediaLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// Push copies localImage (a local image such as BuildImage returns) from
// the engine into the registry under the same path and tag, and returns the
// reference to pull, "127.0.0.1:<port>/<path>:<tag>", and the manifest's
// digest, "sha256:…". Each Push makes a new image: its config gets
// LabelPush with a nonce (a new image id) and its layers are compressed
// anew with a nonce (new blob digests), so that a pull of it downloads
// every layer although the engine has the same content locally.
func (r *Registry) Push(t testing.TB, ctx context.Context, localImage string) (ref, digest string) {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(localImage)
	if err != nil {
		t.Fatalf("dockertest: push %q: %v", localImage, err)
	}
	tagged, ok := reference.TagNameOnly(named).(reference.Tagged)
	if !ok {
		t.Fatalf("dockertest: push %q: a tag is needed", localImage)
	}
	repo, tag := reference.Path(named), tagged.Tag()
	digest, err = r.push(ctx, Client(t), localImage, repo, tag)
	if err != nil {
		t.Fatalf("dockertest: push %s to %s: %v", localImage, r.addr, err)
	}
	return r.addr + "/" + repo + ":" + tag, digest
}

// PinnedRef turns a reference and a digest as Push returns them into
// "127.0.0.1:<port>/<path>@sha256:…".
func PinnedRef(ref, digest string) string {
	name := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name = ref[:i]
	}
	return name + "@" + digest
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
	Digest    string `json:"digest"`
}

func (r *Registry) push(ctx context.Context, cli *client.Client, localImage, repo, tag string) (string, error) {
	config, layers, err := save(ctx, cli, localImage)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	// A new label makes a new image id: an engine that has the image id
	// already skips the layers of a pull altogether.
	if config, err = withLabel(config, LabelPush, hex.EncodeToString(nonce)); err != nil {
		return "", err
	}
	manifest := struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}{SchemaVersion: 2, MediaType: mediaManifest}

	for _, layer := range layers {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Comment = hex.EncodeToString(nonce) // a new blob digest per push
		zw.Write(layer)
		if err := zw.Close(); err != nil {
			return "", err
		}
		d, err := r.uploadBlob(ctx, repo, gz.Bytes())
		if err != nil {
			return "", err
		}
		manifest.Layers = append(manifest.Layers, descriptor{mediaLayer, int64(gz.Len()), d})
	}
	d, err := r.uploadBlob(ctx, repo, config)
	if err != nil {
		return "", err
	}
	manifest.Config = descriptor{mediaConfig, int64(len(config)), d}

	body, err := json.Marshal(manifest)
	if err != nil {
		return "", err
	}
	resp, err := r.do(ctx, http.MethodPut, r.url("/v2/"+repo+"/manifests/"+tag), mediaManifest, body)
	if err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	want := sha256Digest(body)
	if got := resp.Header.Get("Docker-Content-Digest"); got != want {
		return "", fmt.Errorf("manifest stored as %q, want %q", got, want)
	}
	return want, nil
}

// withLabel sets a label in an image config.
func withLabel(config []byte, key, value string) ([]byte, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cfg, _ := doc["config"].(map[string]any)
	if cfg == nil {
		cfg = map[string]any{}
		doc["config"] = cfg
	}
	labels, _ := cfg["Labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
		cfg["Labels"] = labels
	}
	labels[key] = value
	return json.Marshal(doc)
}

// save exports localImage from the engine ("docker save") and returns its
// config and its layers, uncompressed, in order.
func save(ctx context.Context, cli *client.Client, localImage string) (config []byte, layers [][]byte, err error) {
	rc, err := cli.ImageSave(ctx, []string{localImage})
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading the saved image: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if files[path.Clean(h.Name)], err = io.ReadAll(tr); err != nil {
			return nil, nil, err
		}
	}
	var manifest []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		return nil, nil, fmt.Errorf("saved image: manifest.json with one image wanted (%v)", err)
	}
	config, ok := files[path.Clean(manifest[0].Config)]
	if !ok {
		return nil, nil, fmt.Errorf("saved image: no config %s", manifest[0].Config)
	}
	for _, name := range manifest[0].Layers {
		layer, ok := files[path.Clean(name)]
		if !ok {
			return nil, nil, fmt.Errorf("saved image: no layer %s", name)
		}
		layers = append(layers, layer)
	}
	return config, layers, nil
}

// uploadBlob stores blob in repo with a monolithic upload and returns its
// digest.
func (r *Registry) uploadBlob(ctx context.Context, repo string, blob []byte) (string, error) {
	d := sha256Digest(blob)
	resp, err := r.do(ctx, http.MethodPost, r.url("/v2/"+repo+"/blobs/uploads/"), "", nil)
	if err != nil {
		return "", fmt.Errorf("start upload of %s: %w", d, err)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", fmt.Errorf("upload location: %w", err)
	}
	target := r.url("/").ResolveReference(loc)
	q := target.Query()
	q.Set("digest", d)
	target.RawQuery = q.Encode()
	if _, err := r.do(ctx, http.MethodPut, target, "application/octet-stream", blob); err != nil {
		return "", fmt.Errorf("upload %s: %w", d, err)
	}
	return d, nil
}

func (r *Registry) url(p string) *url.URL {
	return &url.URL{Scheme: "http", Host: r.addr, Path: p}
}

// do sends one request with the registry's credentials and fails on any
// status but 2xx. The body of the response is read and closed.
func (r *Registry) do(ctx context.Context, method string, u *url.URL, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if r.user != "" {
		req.SetBasicAuth(r.user, r.password)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, u.Path, resp.Status, bytes.TrimSpace(msg))
	}
	return resp, nil
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
