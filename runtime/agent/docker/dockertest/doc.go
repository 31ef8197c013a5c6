// Package dockertest is test support for code that drives a real Docker
// Engine: a shared client that skips tests when no engine answers, images
// built FROM scratch from a Go package of this module, an in-process
// container registry on loopback with basic authentication, and clean-up by
// label.
//
// # Basics
//
// Tests call Client(t) first: it skips under -short and when no engine
// answers (run scripts/docker-up.sh; set OUTPOST_DOCKER_REQUIRED=1 to make
// a missing engine a failure instead). Cleanup(t) removes what the test
// labelled with Labels(t) when it ends. BuildImage compiles a package with
// CGO_ENABLED=0 into a one-file image, once per test process.
// StartRegistry serves a registry (distribution/v3, in memory, htpasswd
// basic auth) on 127.0.0.1; Docker trusts 127.0.0.0/8 registries over plain
// HTTP, so the engine pulls from it with no configuration.
//
// A test package's TestMain should end with Main, which removes the
// images the process built:
//
//	func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }
//
// # Labels and clean-up
//
// Everything a test process creates carries LabelRun = its process id:
// containers (through Labels), images (BuildImage) and networks (named
// by Network). The first Cleanup of a process also removes the objects of
// earlier test processes that no longer exist (an interrupted run), so
// nothing accumulates, while the objects of test processes running at the
// same time are left alone.
//
// # Caveats
//
// Registry.Push uploads a variant of a local image (a nonce label in its
// config, its layers compressed anew), so the engine knows neither the
// image nor the layer digests, and a pull downloads them for real, with
// "Downloading" progress, although the content is local. The pushed image
// keeps LabelRun, so the clean-up by label removes what tests pulled too.
// StartRegistry silences the global logrus logger of the process (level
// fatal): the registry logs every request, challenge and 404 through it.
package dockertest
