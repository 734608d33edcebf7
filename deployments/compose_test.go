package deployments_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const composeFile = "docker-compose.yml"

type compose struct {
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Image string `json:"image"`
	Build *struct {
		Context    string `json:"context"`
		Dockerfile string `json:"dockerfile"`
		Target     string `json:"target"`
	} `json:"build"`
	Command     []string       `json:"command"`
	Entrypoint  []string       `json:"entrypoint"`
	Environment map[string]any `json:"environment"`
	Ports       []string       `json:"ports"`
	Volumes     []string       `json:"volumes"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Healthcheck *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
	Profiles        []string `json:"profiles"`
	StopGracePeriod string   `json:"stop_grace_period"`
	Restart         string   `json:"restart"`
}

// env returns the service's environment as strings.
func (s composeService) env() map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = fmt.Sprint(v)
		} else {
			out[k] = ""
		}
	}
	return out
}

// ours reports whether the service runs an image built from this
// repository's Dockerfile.
func (s composeService) ours() bool { return s.Build != nil && path.Clean(s.Build.Context) == ".." }

// healthChecked reports whether the service has a health check.
func (s composeService) healthChecked() bool {
	return s.Healthcheck != nil && len(s.Healthcheck.Test) > 0
}

// oneShot reports whether the service is a job that runs to completion.
func (s composeService) oneShot() bool { return s.Restart == "no" }

// containerPorts returns the container side of the service's port mappings.
func (s composeService) containerPorts() []string {
	var out []string
	for _, p := range s.Ports {
		p, _, _ = strings.Cut(p, "/")
		out = append(out, p[strings.LastIndex(p, ":")+1:])
	}
	return out
}

// mounts returns the service's volumes: source -> target.
func (s composeService) mounts() map[string]string {
	out := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			out[parts[0]] = parts[1]
		}
	}
	return out
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	var c compose
	if err := yaml.Unmarshal(readFile(t, composeFile), &c); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	if len(c.Services) == 0 {
		t.Fatalf("%s has no services", composeFile)
	}
	return c
}

var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate resolves ${VAR:-default} to its default and ${VAR} and
// ${VAR:?message} to "<VAR>", as with an empty .env.
func interpolate(s string) string {
	return interpolation.ReplaceAllStringFunc(s, func(m string) string {
		sub := interpolation.FindStringSubmatch(m)
		if strings.HasSuffix(sub[2], "-") {
			return sub[3]
		}
		return "<" + sub[1] + ">"
	})
}

// composeBinary is one of our services with what it runs.
type composeBinary struct {
	service string
	composeService
	binary string // the command's program
	pkg    string // its package directory
	cfg    binaryConfig
	env    map[string]string // interpolated
}

func (b composeBinary) migration() bool { return slices.Equal(b.Command[1:], []string{"migrate"}) }

// loadComposeBinaries returns the services built from the Dockerfile, with
// the binary each runs and its Config; it reports services whose image,
// target or command do not match the Dockerfile.
func loadComposeBinaries(t *testing.T, c compose) []composeBinary {
	t.Helper()
	df := parseDockerfile(t, repoPath("Dockerfile"))
	imageTarget := map[string]string{}
	var out []composeBinary
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if !s.ours() {
			continue
		}
		if s.Build.Dockerfile != "" && s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s: builds %s, not the repository's Dockerfile", name, s.Build.Dockerfile)
			continue
		}
		target := df.defaultTarget()
		if s.Build.Target != "" {
			target = df.stage(s.Build.Target)
		}
		if target == nil {
			t.Errorf("%s: build target %q is not a stage of the Dockerfile", name, s.Build.Target)
			continue
		}
		if prev, ok := imageTarget[s.Image]; ok && prev != target.name {
			t.Errorf("%s: image %q is also built from target %q: one tag, two images", name, s.Image, prev)
		}
		imageTarget[s.Image] = target.name
		bins := df.binaries(target)
		if len(s.Command) == 0 || bins[s.Command[0]] == "" {
			t.Errorf("%s: command %v runs none of target %q's binaries %v", name, s.Command, target.name, sortedKeys(bins))
			continue
		}
		b := composeBinary{service: name, composeService: s, binary: s.Command[0], pkg: bins[s.Command[0]], env: map[string]string{}}
		cfg, err := loadBinaryConfig(t, b.pkg)
		if err != nil {
			t.Errorf("%s: the Config of %s: %v", name, b.pkg, err)
			continue
		}
		b.cfg = cfg
		for k, v := range s.env() {
			b.env[k] = interpolate(v)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		t.Fatal("no service is built from the Dockerfile")
	}
	return out
}

// prometheusScrapes returns, per job, its metrics path and host:port
// targets (DNS discovery included) from prometheus/prometheus.yml.
func prometheusScrapes(t *testing.T) (map[string]scrapeJob, []string) {
	t.Helper()
	var p struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName     string `json:"job_name"`
			MetricsPath string `json:"metrics_path"`
			Static      []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
			DNS []struct {
				Names []string `json:"names"`
				Port  int      `json:"port"`
			} `json:"dns_sd_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/prometheus.yml"), &p); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	jobs := map[string]scrapeJob{}
	for _, sc := range p.ScrapeConfigs {
		j := scrapeJob{path: sc.MetricsPath}
		if j.path == "" {
			j.path = "/metrics"
		}
		for _, s := range sc.Static {
			j.targets = append(j.targets, s.Targets...)
		}
		for _, d := range sc.DNS {
			for _, n := range d.Names {
				j.targets = append(j.targets, fmt.Sprintf("%s:%d", n, d.Port))
			}
		}
		jobs[sc.JobName] = j
	}
	return jobs, p.RuleFiles
}

type scrapeJob struct {
	path    string
	targets []string
}

// Every service built here runs a binary of its build target, with only
// variables its Config reads (every DESIGN.md §5 one it reads set
// explicitly), exposes the port it listens on, is scraped there by
// Prometheus on a path it serves, starts after the migrations, and is given
// more time to stop than its SHUTDOWN_TIMEOUT.
func TestComposeServicesMatchBinaries(t *testing.T) {
	c := loadCompose(t)
	bins := loadComposeBinaries(t, c)
	jobs, _ := prometheusScrapes(t)

	var migrate string
	for _, b := range bins {
		if b.migration() {
			migrate = b.service
			if !b.cfg.ServiceMain || !b.oneShot() {
				t.Errorf("%s: `%s migrate` must be internal/service's subcommand, run once (restart: \"no\")", b.service, b.binary)
			}
		}
	}
	if migrate == "" {
		t.Fatal("no service runs `<binary> migrate`")
	}

	serving := 0
	for _, b := range bins {
		for _, name := range sortedKeys(b.env) {
			if !readsVar(b.cfg, name) && !externalVar(name) {
				t.Errorf("%s sets %s, which %s's Config does not read", b.service, name, b.pkg)
			}
		}
		if b.migration() {
			continue
		}
		serving++
		if strings.HasPrefix(b.pkg, "cmd/") {
			for _, name := range designVars {
				if _, reads := b.cfg.Vars[name]; reads && b.env[name] == "" {
					t.Errorf("%s does not set %s (DESIGN.md §5), which %s reads", b.service, name, b.binary)
				}
			}
		}

		port := fmt.Sprint(listenPort(t, b.cfg.effective(b.env, "HTTP_ADDR")))
		if !slices.Contains(b.containerPorts(), port) {
			t.Errorf("%s listens on %s (HTTP_ADDR) but publishes %v", b.service, port, b.Ports)
		}
		scraped := false
		for _, name := range sortedKeys(jobs) {
			if slices.Contains(jobs[name].targets, b.service+":"+port) {
				scraped = true
				if !b.cfg.serves(t, jobs[name].path) {
					t.Errorf("prometheus job %s scrapes %s:%s%s, which %s does not serve", name, b.service, port, jobs[name].path, b.binary)
				}
			}
		}
		if !scraped {
			t.Errorf("no prometheus job scrapes %s:%s", b.service, port)
		}

		if _, ok := b.cfg.Vars["SHUTDOWN_TIMEOUT"]; ok {
			shutdown := durationOf(t, "SHUTDOWN_TIMEOUT", b.cfg.effective(b.env, "SHUTDOWN_TIMEOUT"))
			g := b.StopGracePeriod
			if g == "" {
				g = "10s" // Docker's default
			}
			grace := durationOf(t, b.service+" stop_grace_period", g)
			if grace <= shutdown {
				t.Errorf("%s: stop_grace_period %v is not above SHUTDOWN_TIMEOUT %v: Docker would kill it mid-shutdown", b.service, grace, shutdown)
			}
		}
		if !dependsOnCompleted(c, b.service, migrate, map[string]bool{}) {
			t.Errorf("%s does not wait (depends_on: service_completed_successfully) for %s", b.service, migrate)
		}
	}
	if serving == 0 {
		t.Fatal("no service of ours serves")
	}
}

// dependsOnCompleted reports whether service waits, directly or through its
// dependencies, for job to complete successfully.
func dependsOnCompleted(c compose, service, job string, seen map[string]bool) bool {
	if seen[service] {
		return false
	}
	seen[service] = true
	for dep, d := range c.Services[service].DependsOn {
		if dep == job && d.Condition == "service_completed_successfully" {
			return true
		}
		if dependsOnCompleted(c, dep, job, seen) {
			return true
		}
	}
	return false
}

// Dependencies are ordered by health, every long-running infrastructure
// service has a health check, volumes are named and declared, bind mounts
// exist, and PostgreSQL runs with logical decoding.
func TestComposeInfrastructure(t *testing.T) {
	c := loadCompose(t)
	used := map[string]bool{}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		for dep, d := range s.DependsOn {
			target, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s depends on unknown service %s", name, dep)
			case d.Condition == "service_healthy" && !target.healthChecked():
				t.Errorf("%s waits for %s to be healthy, which has no health check", name, dep)
			case d.Condition == "service_completed_successfully" && !target.oneShot():
				t.Errorf("%s waits for %s to complete, which restarts (restart: %q)", name, dep, target.Restart)
			case d.Condition == "":
				t.Errorf("%s depends on %s without a condition", name, dep)
			}
		}
		// Our images are distroless: nothing inside could run a check.
		if !s.ours() && !s.oneShot() && !s.healthChecked() {
			t.Errorf("%s has no health check", name)
		}
		for src := range s.mounts() {
			switch {
			case strings.HasPrefix(src, "."):
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			case strings.HasPrefix(src, "/"):
				t.Errorf("%s mounts host path %s: use a named volume or a path in the repository", name, src)
			default:
				used[src] = true
				if _, ok := c.Volumes[src]; !ok {
					t.Errorf("%s uses volume %s, which is not declared under volumes:", name, src)
				}
			}
		}
	}
	for v := range c.Volumes {
		if !used[v] {
			t.Errorf("volume %s is declared but unused", v)
		}
	}

	pg, ok := c.Services[loadConnector(t).Config["database.hostname"]]
	if !ok {
		t.Fatalf("no service %q (the connector's database.hostname)", loadConnector(t).Config["database.hostname"])
	}
	if !slices.Contains(pg.Command, "wal_level=logical") {
		t.Errorf("the PostgreSQL service's command %v does not set wal_level=logical", pg.Command)
	}
}

var secretName = regexp.MustCompile(`PASSWORD|_PASS$|TOKEN|SECRET`)

// urlPassword finds the password of a URL with user information.
var urlPassword = regexp.MustCompile(`://[^:@/\s]+:([^@/\s]+)@`)

// pureReference matches a value that is one ${VAR…} reference.
var pureReference = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[?][^}]*)?\}$`)

// The compose file holds no secret: passwords and tokens, alone or inside
// URLs, come from deployments/.env; .env.example names every variable the
// file needs and leaves the secret ones empty.
func TestComposeNoSecrets(t *testing.T) {
	raw := string(readFile(t, composeFile))
	c := loadCompose(t)
	for _, name := range sortedKeys(c.Services) {
		for k, v := range c.Services[name].env() {
			if secretName.MatchString(k) && !pureReference.MatchString(v) {
				t.Errorf("%s: %s=%q is written down; use ${%s:?…} from .env", name, k, v, k)
			}
			if m := urlPassword.FindStringSubmatch(v); m != nil && !pureReference.MatchString(m[1]) {
				t.Errorf("%s: %s has a literal password in its URL", name, k)
			}
		}
	}

	example := map[string]string{}
	optional := map[string]bool{}
	commented := regexp.MustCompile(`^#\s*([A-Z_][A-Z0-9_]*)=`)
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, ".env.example")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := commented.FindStringSubmatch(line); m != nil {
			optional[m[1]] = true
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf(".env.example: %q is not NAME=value", line)
			continue
		}
		example[k] = v
		if secretName.MatchString(k) && v != "" {
			t.Errorf(".env.example: %s has a value; leave secrets empty", k)
		}
	}

	referenced := map[string]bool{}
	withoutEscapes := strings.ReplaceAll(raw, "$$", "")
	for _, m := range interpolation.FindAllStringSubmatch(withoutEscapes, -1) {
		name, hasDefault := m[1], strings.HasSuffix(m[2], "-")
		referenced[name] = true
		if _, ok := example[name]; !ok && !hasDefault {
			t.Errorf("%s needs ${%s}, which .env.example does not list", composeFile, name)
		}
		if optional[name] && !hasDefault {
			t.Errorf(".env.example lists %s as optional, but %s has no default for it", name, composeFile)
		}
	}
	for name := range example {
		if !referenced[name] {
			t.Errorf(".env.example lists %s, which %s does not use", name, composeFile)
		}
	}
	for name := range optional {
		if !referenced[name] {
			t.Errorf(".env.example mentions %s, which %s does not use", name, composeFile)
		}
	}
}

// The one-shot registration job posts deployments/debezium/ as it is
// (mounted, not copied), after the schema exists and Connect is healthy;
// Connect and PostgreSQL are set up the way the connector expects.
func TestComposeRegistersConnector(t *testing.T) {
	c := loadCompose(t)
	conn := loadConnector(t)

	var job string
	for _, name := range sortedKeys(c.Services) {
		if _, ok := c.Services[name].env()["CONNECTOR_FILE"]; ok {
			if job != "" {
				t.Fatalf("both %s and %s register a connector", job, name)
			}
			job = name
		}
	}
	if job == "" {
		t.Fatal("no service registers the connector (CONNECTOR_FILE)")
	}
	s := c.Services[job]
	env := s.env()
	if env["CONNECTOR_NAME"] != conn.Name {
		t.Errorf("%s: CONNECTOR_NAME %q, the file names %q", job, env["CONNECTOR_NAME"], conn.Name)
	}
	if target, ok := s.mounts()["./debezium"]; !ok || path.Dir(env["CONNECTOR_FILE"]) != target {
		t.Errorf("%s: CONNECTOR_FILE %s is not in a mount of ./debezium (mounts %v)", job, env["CONNECTOR_FILE"], s.mounts())
	} else if b, err := os.ReadFile(path.Join("debezium", path.Base(env["CONNECTOR_FILE"]))); err != nil || !bytes.Equal(b, readFile(t, "debezium/outbox-connector.json")) {
		t.Errorf("%s: CONNECTOR_FILE %s is not debezium/outbox-connector.json (%v)", job, env["CONNECTOR_FILE"], err)
	}
	if !s.oneShot() {
		t.Errorf("%s must run once (restart: \"no\")", job)
	}

	// The script it runs is mounted from the repository and posts the file.
	var script string
	for src, target := range s.mounts() {
		if slices.Contains(s.Entrypoint, target) || slices.Contains(s.Command, target) {
			script = src
		}
	}
	if script == "" {
		t.Fatalf("%s runs no mounted script (entrypoint %v)", job, s.Entrypoint)
	}
	body := string(readFile(t, script))
	for _, want := range []string{"$CONNECTOR_FILE", "/connectors", "POST"} {
		if !strings.Contains(body, want) {
			t.Errorf("%s does not mention %s", script, want)
		}
	}

	connectURL, err := url.Parse(env["CONNECT_URL"])
	if err != nil {
		t.Fatal(err)
	}
	connect, ok := c.Services[connectURL.Hostname()]
	if !ok {
		t.Fatalf("%s: CONNECT_URL %s names no service", job, env["CONNECT_URL"])
	}
	if s.DependsOn[connectURL.Hostname()].Condition != "service_healthy" {
		t.Errorf("%s does not wait for %s to be healthy", job, connectURL.Hostname())
	}
	for _, b := range loadComposeBinaries(t, c) {
		if b.migration() && !dependsOnCompleted(c, job, b.service, map[string]bool{}) {
			t.Errorf("%s does not wait for %s: the filtered publication needs outbox_events", job, b.service)
		}
		// A producer (it has an outbox Relay) writes only once the slot
		// exists: Debezium publishes nothing written before (no_data).
		if _, writes := b.cfg.Vars["RELAY_ENABLED"]; writes && !dependsOnCompleted(c, b.service, job, map[string]bool{}) {
			t.Errorf("%s writes the outbox before %s created the slot: those events would never be published", b.service, job)
		}
	}

	// ${env:NAME} in the connector needs the env config provider and NAME.
	cenv := connect.env()
	providerRef := regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}`)
	for key, v := range conn.Config {
		for _, m := range providerRef.FindAllStringSubmatch(v, -1) {
			if _, ok := cenv[m[1]]; !ok {
				t.Errorf("%s reads ${env:%s}, which the Connect service does not set", key, m[1])
			}
			if !slices.Contains(strings.Split(cenv["CONNECT_CONFIG_PROVIDERS"], ","), "env") ||
				cenv["CONNECT_CONFIG_PROVIDERS_ENV_CLASS"] != "org.apache.kafka.common.config.provider.EnvVarConfigProvider" {
				t.Errorf("%s uses ${env:…}, but Connect's env config provider is not enabled", key)
			}
		}
	}

	// The database the connector reads, and its user.
	pg := c.Services[conn.Config["database.hostname"]]
	if got := pg.env()["POSTGRES_DB"]; got != conn.Config["database.dbname"] {
		t.Errorf("PostgreSQL creates database %q, the connector reads %q", got, conn.Config["database.dbname"])
	}
	if conn.Config["database.port"] != "5432" {
		t.Errorf("the connector's database.port is %s; PostgreSQL listens on 5432 in its container", conn.Config["database.port"])
	}
	role := regexp.MustCompile(`(?is)CREATE\s+ROLE\s+"?` + regexp.QuoteMeta(conn.Config["database.user"]) + `"?\s[^;]*\bREPLICATION\b`)
	found := false
	for src, target := range pg.mounts() {
		if strings.HasPrefix(target, "/docker-entrypoint-initdb.d/") && role.Match(readFile(t, src)) {
			found = true
		}
	}
	if !found {
		t.Errorf("no init script of %s creates role %s with REPLICATION", conn.Config["database.hostname"], conn.Config["database.user"])
	}
}

// The services agree with each other and with the connector: topics,
// exchanges, the slot, and a Relay that stays off while Debezium publishes.
func TestComposeWiring(t *testing.T) {
	c := loadCompose(t)
	conn := loadConnector(t)
	topic := conn.Config["transforms.outbox.route.topic.replacement"]
	byBinary := map[string]composeBinary{}
	exchanges, dlxs := map[string][]string{}, map[string][]string{}
	for _, b := range loadComposeBinaries(t, c) {
		if b.migration() {
			continue
		}
		byBinary[b.binary] = b
		if _, ok := b.cfg.Vars["OUTBOX_TOPIC"]; ok {
			if got := b.cfg.effective(b.env, "OUTBOX_TOPIC"); got != topic {
				t.Errorf("%s: OUTBOX_TOPIC %q, Debezium publishes to %q", b.service, got, topic)
			}
		}
		if _, ok := b.cfg.Vars["RELAY_ENABLED"]; ok && b.cfg.effective(b.env, "RELAY_ENABLED") != "false" {
			t.Errorf("%s runs the outbox Relay next to Debezium: every event would be published twice", b.service)
		}
		if _, ok := b.cfg.Vars["AMQP_EXCHANGE"]; ok {
			v := b.cfg.effective(b.env, "AMQP_EXCHANGE")
			exchanges[v] = append(exchanges[v], b.service)
		}
		if _, ok := b.cfg.Vars["AMQP_DLX"]; ok {
			v := b.cfg.effective(b.env, "AMQP_DLX")
			dlxs[v] = append(dlxs[v], b.service)
		}
	}
	if len(exchanges) != 1 {
		t.Errorf("the services disagree on AMQP_EXCHANGE: %v", exchanges)
	}
	if len(dlxs) != 1 {
		t.Errorf("the services disagree on AMQP_DLX: %v", dlxs)
	}

	bridge, ok := byBinary["bridge"]
	if !ok {
		t.Fatal("no bridge service")
	}
	bookkeeper, ok := byBinary["dlq-bookkeeper"]
	if !ok {
		t.Fatal("no dlq-bookkeeper service")
	}
	admin, ok := byBinary["admin-api"]
	if !ok {
		t.Fatal("no admin-api service")
	}
	topics := strings.Split(bridge.cfg.effective(bridge.env, "KAFKA_TOPICS"), ",")
	if !slices.Contains(topics, topic) {
		t.Errorf("the bridge consumes %v, not %q where Debezium publishes", topics, topic)
	}
	dlq := bridge.cfg.effective(bridge.env, "KAFKA_DLQ_TOPIC")
	if dlq == "" {
		dlq = topics[0] + ".dlq"
	}
	if got := strings.Split(bookkeeper.cfg.effective(bookkeeper.env, "DLQ_KAFKA_TOPICS"), ","); !slices.Contains(got, dlq) {
		t.Errorf("the bookkeeper reads %v, not the bridge's DLQ topic %q", got, dlq)
	}
	if got := admin.cfg.effective(admin.env, "OUTBOX_SLOT_NAME"); got != conn.Config["slot.name"] {
		t.Errorf("admin-api: OUTBOX_SLOT_NAME %q, the connector's slot is %q", got, conn.Config["slot.name"])
	}

	// The topics exist before anyone uses them, with the partitions the
	// bridge replicas share: a job runs kafka-topics.sh over "topic:partitions".
	created := ""
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if text := strings.Join(append(s.Entrypoint, s.Command...), " "); strings.Contains(text, "kafka-topics.sh") {
			created += text
			if bridge.DependsOn[name].Condition != "service_completed_successfully" {
				t.Errorf("the bridge does not wait for %s to create the topics", name)
			}
		}
	}
	for _, tp := range append(topics, dlq) {
		if !strings.Contains(created, `"`+tp+`:`) {
			t.Errorf("no one-shot job creates topic %s", tp)
		}
	}
}
