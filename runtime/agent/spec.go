package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"

	"github.com/outpost-edge/outpost/runtime/deployment"
)

// Spec returns the ModuleSpec the runtime creates module m from.
//
// The spec hash covers exactly what changes the container: the module's
// version, the resolved image, the final environment (manifest env,
// injected variables, createOptions.Env) and createOptions (compared as
// JSON, so key order and white space do not matter). A change to any of
// them recreates the module. Status, restartPolicy, imagePullPolicy and
// startupOrder are deliberately left out: the agent applies them without
// touching the container, where Azure recreates on any difference but the
// status. version stays in, as in Azure, so that bumping it is the
// operator's way to force a redeploy (for example of a moving :latest tag).
func (d Desired) Spec(m deployment.Module) ModuleSpec {
	image := d.image(m.Image)
	env := Env(m, d.Inject[m.Name])
	h := specHash(m.Version, image, env, m.CreateOptions)
	return ModuleSpec{
		Name:          m.Name,
		Image:         image,
		Env:           env,
		CreateOptions: m.CreateOptions,
		Labels: map[string]string{
			LabelOwner:    Owner,
			LabelModule:   m.Name,
			LabelSpecHash: h,
			LabelImage:    m.Image,
			LabelVersion:  m.Version,
		},
		Hash: h,
	}
}

// image resolves a nested-edge "$upstream:<port>/…" image against the
// parent's host name, when one is configured.
func (d Desired) image(image string) string {
	const upstream = "$upstream"
	if d.Upstream != "" && strings.HasPrefix(image, upstream+":") {
		return d.Upstream + image[len(upstream):]
	}
	return image
}

func specHash(version, image string, env []string, createOptions string) string {
	doc := struct {
		Version       string          `json:"version"`
		Image         string          `json:"image"`
		Env           []string        `json:"env"`
		CreateOptions json.RawMessage `json:"createOptions"`
	}{version, image, env, canonicalJSON(createOptions)}
	if doc.Env == nil {
		doc.Env = []string{}
	}
	b, _ := json.Marshal(doc) // cannot fail: strings and valid JSON only
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// canonicalJSON re-encodes s with sorted keys and no white space (numbers
// kept as written); text that is not JSON is encoded as a JSON string.
func canonicalJSON(s string) json.RawMessage {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err == nil && !dec.More() {
		if b, err := json.Marshal(v); err == nil {
			return b
		}
	}
	b, _ := json.Marshal(s)
	return b
}

// Credential picks the registryCredentials entry for pulling image, and
// returns its name and a copy (nil when none applies). The registry host is
// the image's first path component when it contains "." or ":" or is
// "localhost"; otherwise the image is on Docker Hub. An entry applies when
// its address, without scheme and path and case-insensitively, equals the
// host; for Docker Hub, "docker.io", "index.docker.io" and
// "registry-1.docker.io" all apply. Entries are tried in name order, so the
// choice is stable.
//
// Azure differs in two ways: it compares the address verbatim (so
// "https://x.azurecr.io" never matches) and gives a single-segment image
// ("alpine") no credentials, although it too comes from Docker Hub.
func Credential(image string, creds map[string]deployment.RegistryCredential) (string, *deployment.RegistryCredential) {
	host := registryHost(image)
	names := make([]string, 0, len(creds))
	for name := range creds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := creds[name]
		if sameRegistry(normalizeAddress(c.Address), host) {
			return name, &c
		}
	}
	return "", nil
}

const dockerHub = "docker.io"

func registryHost(image string) string {
	first, _, ok := strings.Cut(image, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return strings.ToLower(first)
	}
	return dockerHub
}

func normalizeAddress(addr string) string {
	addr = strings.TrimSpace(addr)
	if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
	}
	addr, _, _ = strings.Cut(addr, "/")
	return strings.ToLower(addr)
}

func sameRegistry(addr, host string) bool {
	if host == dockerHub {
		switch addr {
		case "docker.io", "index.docker.io", "registry-1.docker.io":
			return true
		}
		return false
	}
	return addr == host
}
