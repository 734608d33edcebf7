package deployments_test

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// securedCompose is the commented secured-connections block of the
// compose file, uncommented.
type securedCompose struct {
	Secrets map[string]struct {
		File string `json:"file"`
	} `json:"secrets"`
	Services map[string]struct {
		Secrets     []string       `json:"secrets"`
		Environment map[string]any `json:"environment"`
	} `json:"services"`
}

// securedBlock returns the lines between the block's markers without
// their leading "# ".
func securedBlock(t *testing.T) []byte {
	t.Helper()
	var out bytes.Buffer
	in := false
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, composeFile)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# --- secured connections: begin"):
			in = true
		case strings.HasPrefix(line, "# --- secured connections: end"):
			return out.Bytes()
		case in:
			if !strings.HasPrefix(line, "#") {
				t.Fatalf("%s: uncommented line in the secured-connections block: %q", composeFile, line)
			}
			out.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "#"), " ") + "\n")
		}
	}
	t.Fatalf("%s has no complete secured-connections block", composeFile)
	return nil
}

// TestComposeSecuredConnections checks the commented example of secured
// connections in the compose file against the code: it is valid Compose
// YAML once uncommented; every service of ours that reaches Kafka and
// RabbitMQ is in it with Kafka TLS + SASL and amqps:// with a client
// certificate; every variable is one its binary reads; passwords and
// certificates are Compose secrets mounted as files, each declared and
// granted to the service that reads it; no password is written down.
func TestComposeSecuredConnections(t *testing.T) {
	var s securedCompose
	if err := yaml.Unmarshal(securedBlock(t), &s); err != nil {
		t.Fatalf("the secured-connections block, uncommented: %v", err)
	}
	base := loadCompose(t)
	bins := map[string]composeBinary{}
	for _, b := range loadComposeBinaries(t, base) {
		bins[b.service] = b
	}
	for name, d := range s.Secrets {
		if !strings.HasPrefix(d.File, "./secrets/") {
			t.Errorf("secret %s: file %q, want one under ./secrets/", name, d.File)
		}
	}
	want := []string{"KAFKA_TLS_CA_FILE", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD_FILE",
		"AMQP_URL", "AMQP_TLS_CA_FILE", "AMQP_TLS_CERT_FILE", "AMQP_TLS_KEY_FILE"}
	covered := 0
	for _, name := range sortedKeys(bins) {
		b := bins[name]
		_, kafka := b.cfg.Vars["KAFKA_SASL_PASSWORD"]
		_, amqp := b.cfg.Vars["AMQP_TLS_CA_FILE"]
		if b.migration() || !kafka || !amqp {
			continue
		}
		covered++
		svc, ok := s.Services[name]
		if !ok {
			t.Errorf("%s reaches Kafka and RabbitMQ but is not in the secured-connections block", name)
			continue
		}
		raw, env := map[string]string{}, map[string]string{}
		for k, v := range svc.Environment {
			raw[k] = strings.TrimSpace(toString(v))
			env[k] = interpolate(raw[k])
		}
		for _, k := range want {
			if env[k] == "" {
				t.Errorf("%s: the secured block does not set %s", name, k)
			}
		}
		if !strings.HasPrefix(env["AMQP_URL"], "amqps://") {
			t.Errorf("%s: AMQP_URL %q is not amqps://", name, env["AMQP_URL"])
		}
		for _, k := range sortedKeys(env) {
			v := env[k]
			if !readsVar(b.cfg, k) {
				t.Errorf("%s sets %s, which %s's Config does not read", name, k, b.pkg)
			}
			if secretName.MatchString(k) && !strings.HasSuffix(k, "_FILE") {
				t.Errorf("%s: %s is in the environment; mount it as a secret and set %s_FILE", name, k, k)
			}
			if m := urlPassword.FindStringSubmatch(raw[k]); m != nil && !pureReference.MatchString(m[1]) {
				t.Errorf("%s: %s has a literal password in its URL", name, k)
			}
			secret, isSecret := strings.CutPrefix(v, "/run/secrets/")
			if strings.HasSuffix(k, "_FILE") && !isSecret {
				t.Errorf("%s: %s=%q is not a Compose secret's file (/run/secrets/<name>)", name, k, v)
			}
			if !isSecret {
				continue
			}
			if _, declared := s.Secrets[secret]; !declared {
				t.Errorf("%s: %s reads secret %s, which the block does not declare", name, k, secret)
			}
			granted := false
			for _, g := range svc.Secrets {
				granted = granted || g == secret
			}
			if !granted {
				t.Errorf("%s: %s reads secret %s, which the service is not granted", name, k, secret)
			}
		}
	}
	if covered == 0 {
		t.Fatal("no service of ours reaches both Kafka and RabbitMQ")
	}
	for name := range s.Services {
		if _, ok := bins[name]; !ok {
			t.Errorf("the secured block configures %s, which is none of our services", name)
		}
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := yaml.Marshal(v)
	return string(b)
}
