package deployment

import (
	"regexp"
	"strings"
)

// imagePattern is Azure's deliberately loose check (DockerConfig.cs): any
// number of "segment/" prefixes, a name without ':' or '/', and an optional
// ":tag". A registry port lives in a prefix ("host:5000/img"); a digest
// ("img@sha256:…") passes because "img@sha256" is taken as the name and the
// hex as the tag, so no ":latest" is added to it.
var imagePattern = regexp.MustCompile(`^(?:[^/]*/)*[^/:]+(:[^/:]+)?$`)

// upstreamPattern is the nested-edge form "$upstream:<port>/…", which the
// agent resolves against its parent's host name at pull time.
var upstreamPattern = regexp.MustCompile(`^\$upstream:[1-9]`)

// normalizeImage trims image, validates it and appends ":latest" when it has
// no tag (and no digest).
func normalizeImage(image string, p path) (string, *Error) {
	image = strings.TrimSpace(image)
	if image == "" {
		return "", invalidf(p, "must not be empty")
	}
	check := image
	if image[0] == '$' {
		if !upstreamPattern.MatchString(image) {
			return "", invalidf(p, `image %s is not in the right format; only "$upstream:<port>/…" may start with "$"`, quoteValue(image))
		}
		// Validate what the agent will pull once the parent host replaces "$upstream".
		check = "upstream" + image[len("$upstream"):]
	}
	m := imagePattern.FindStringSubmatchIndex(check)
	if m == nil {
		return "", invalidf(p, "image %s is not in the right format (expected [registry/]repository[:tag])", quoteValue(image))
	}
	if m[2] < 0 { // no tag group
		image += ":latest"
	}
	return image, nil
}
