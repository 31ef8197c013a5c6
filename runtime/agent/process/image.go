package process

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// execPrefix marks an image that names an executable by absolute path.
const execPrefix = "exec:"

// resolveImage maps an image reference onto the executable that runs it
// (see the package documentation, "Images"):
//
//	exec:/abs/path[:tag]                      -> /abs/path
//	[registry[:port]/][path/]name[:tag][@dig] -> <imageDir>/name
//
// The tag and digest are ignored (the manifest validator appends ":latest"
// to any image without one). It does not look at the file system.
func resolveImage(image, imageDir string) (string, error) {
	if rest, ok := strings.CutPrefix(image, execPrefix); ok {
		p := stripTag(rest)
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("image %q: %s needs an absolute path: %w", image, execPrefix, agent.ErrImageNotFound)
		}
		return filepath.Clean(p), nil
	}
	name := stripTag(image[strings.LastIndexByte(image, '/')+1:])
	switch {
	case name == "" || name == "." || name == "..":
		return "", fmt.Errorf("image %q: no executable name in it: %w", image, agent.ErrImageNotFound)
	case imageDir == "":
		return "", fmt.Errorf("image %q: no image directory configured (use %s/abs/path for an absolute path): %w", image, execPrefix, agent.ErrImageNotFound)
	}
	return filepath.Join(imageDir, name), nil
}

// stripTag removes a digest ("@…") and a tag (":…") from the last path
// segment of ref.
func stripTag(ref string) string {
	dir, last := "", ref
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		dir, last = ref[:i+1], ref[i+1:]
	}
	last, _, _ = strings.Cut(last, "@")
	last, _, _ = strings.Cut(last, ":")
	return dir + last
}

// checkExecutable reports why path cannot be run, if it cannot: it must be
// a regular file (symbolic links followed) with an execute bit set.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s is not executable", path)
	}
	return nil
}

// findImage resolves image and checks that the executable is there.
func findImage(image, imageDir string) (string, error) {
	path, err := resolveImage(image, imageDir)
	if err != nil {
		return "", err
	}
	if err := checkExecutable(path); err != nil {
		return "", fmt.Errorf("image %q: %w: %w", image, agent.ErrImageNotFound, err)
	}
	return path, nil
}

// imageID is "sha256:" and the hex SHA-256 of the executable's content, the
// process runtime's counterpart of a Docker image id (reported as
// imageHash): it changes when the file is replaced by another build.
func imageID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
