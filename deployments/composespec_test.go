package deployments_test

import (
	"bufio"
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadComposeProject loads docker-compose.yml as `docker compose config`
// does (Compose Specification schema, interpolation, anchors and merges),
// with env as the only environment and every profile on.
func loadComposeProject(t *testing.T, env []string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithName("messagekit"), cli.WithEnv(env), cli.WithProfiles([]string{"*"}))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

// exampleEnv returns .env.example's settings, with fill for empty values.
func exampleEnv(t *testing.T, fill string) []string {
	t.Helper()
	var env []string
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, ".env.example")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "=") {
			line += fill
		}
		env = append(env, line)
	}
	return env
}

// The file is valid Compose (checked with compose-go, the library behind
// `docker compose`, since no Docker engine runs here); it loads with the
// variables .env.example names and refuses to load while a secret is
// missing; and compose-go reads the same services and variables as the
// other tests' simpler parser.
func TestComposeSpec(t *testing.T) {
	p, err := loadComposeProject(t, exampleEnv(t, "placeholder"))
	if err != nil {
		t.Fatalf("%s with .env.example filled in: %v", composeFile, err)
	}
	if _, err := loadComposeProject(t, exampleEnv(t, "")); err == nil || !strings.Contains(err.Error(), "required variable") {
		t.Errorf("%s loads with the secrets of .env.example left empty (err %v): it must refuse", composeFile, err)
	}

	raw := loadCompose(t)
	if got, want := sortedKeys(p.Services), sortedKeys(raw.Services); !slices.Equal(got, want) {
		t.Fatalf("compose-go sees services %v, the tests' parser %v", got, want)
	}
	for name, s := range p.Services {
		got, want := sortedKeys(s.Environment), sortedKeys(raw.Services[name].env())
		if !slices.Equal(got, want) {
			t.Errorf("%s: compose-go sees variables %v, the tests' parser %v", name, got, want)
		}
		if d := raw.Services[name].StopGracePeriod; d != "" && (s.StopGracePeriod == nil || s.StopGracePeriod.String() != strings.TrimSpace(d)) {
			t.Errorf("%s: stop_grace_period %q read as %v", name, d, s.StopGracePeriod)
		}
	}
}
