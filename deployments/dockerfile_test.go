package deployments_test

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The image is reproducible, runs as a non-root uid Kubernetes can verify,
// has no HEALTHCHECK (orchestrators probe), and its default target holds
// every binary under cmd/.
func TestDockerfile(t *testing.T) {
	df := parseDockerfile(t, repoPath("Dockerfile"))

	if slices.Contains(df.instructions, "HEALTHCHECK") {
		t.Error("Dockerfile has a HEALTHCHECK: orchestrators probe /healthz and /readyz, and the image has nothing to run one with")
	}
	if len(df.goBuilds) == 0 {
		t.Fatal("Dockerfile runs no go build")
	}
	for _, b := range df.goBuilds {
		if !strings.Contains(b, "-trimpath") {
			t.Errorf("go build without -trimpath (not reproducible): %s", b)
		}
		// `<binary> version` must say what was built: .git is not in the
		// context, so the revision is injected (internal/service).
		if strings.Contains(b, "./cmd/") && (!strings.Contains(b, "internal/service.revision=${REVISION}") ||
			!strings.Contains(b, "internal/service.version=${VERSION}")) {
			t.Errorf("go build of the services without the version and revision injected: %s", b)
		}
	}
	for _, s := range df.stages {
		if s.parent != nil {
			continue
		}
		last := s.base[strings.LastIndex(s.base, "/")+1:]
		last, _, _ = strings.Cut(last, "@")
		_, tag, tagged := strings.Cut(last, ":")
		if (!tagged && !strings.Contains(s.base, "@sha256:")) || tag == "latest" {
			t.Errorf("stage %q: base image %q is not pinned by tag or digest", s.name, s.base)
		}
	}

	targets := 0
	for _, s := range df.stages {
		bins := df.binaries(s)
		if len(bins) == 0 {
			continue
		}
		targets++
		uid, _, _ := strings.Cut(s.user, ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("target %q: USER %q, want a numeric non-root uid (runAsNonRoot can verify only a number)", s.name, s.user)
		}
		if len(s.cmd) == 0 || bins[s.cmd[0]] == "" {
			t.Errorf("target %q: CMD %v names none of its binaries %v", s.name, s.cmd, sortedKeys(bins))
		}
		for bin, pkg := range bins {
			if _, err := os.Stat(repoPath(pkg)); err != nil {
				t.Errorf("target %q builds %s from %s, which does not exist", s.name, bin, pkg)
			}
		}
	}
	if targets == 0 {
		t.Fatal("no stage installs a binary in /usr/local/bin")
	}

	// Every command under cmd/ is in the default image, named as its directory.
	entries, err := os.ReadDir(repoPath("cmd"))
	if err != nil {
		t.Fatal(err)
	}
	def := df.binaries(df.defaultTarget())
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if def[e.Name()] != "cmd/"+e.Name() {
			t.Errorf("the default target %q lacks cmd/%s (has %v)", df.defaultTarget().name, e.Name(), def)
		}
	}
}

// The parser the other tests rely on understands the Dockerfile: a broken
// parse would let them pass vacuously.
func TestDockerfileParse(t *testing.T) {
	df := parseDockerfile(t, repoPath("Dockerfile"))
	def := df.binaries(df.defaultTarget())
	for _, bin := range []string{"bridge", "dlq-bookkeeper", "admin-api"} {
		if def[bin] == "" {
			t.Errorf("default target binaries %v lack %s", def, bin)
		}
	}
	ex := df.stage("examples")
	if ex == nil {
		t.Fatal("no stage examples")
	}
	if got := df.binaries(ex); got["producer"] != "examples/producer" || got["consumer"] != "examples/consumer" {
		t.Errorf("examples target binaries = %v", got)
	}
	if imageName("registry.example.com:5000/a/b:1.2@sha256:ab") != "registry.example.com:5000/a/b" || imageName("b") != "b" {
		t.Error("imageName is wrong")
	}
}
