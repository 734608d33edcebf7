package deployments_test

import (
	"bufio"
	"bytes"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// exportedMetrics returns every metric name the code registers: the
// "messagekit_…" string literals of non-test Go files.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	literal := regexp.MustCompile(`"(messagekit_[a-z0-9_]+)"`)
	names := map[string]bool{}
	for _, dir := range []string{"cmd", "internal", "pkg"} {
		err := filepath.WalkDir(repoPath(dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			for _, m := range literal.FindAllSubmatch(readFile(t, p), -1) {
				names[string(m[1])] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// markdownAnchors returns the GitHub anchors of a Markdown file's headings.
func markdownAnchors(t *testing.T, name string) map[string]bool {
	t.Helper()
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	anchors := map[string]bool{}
	inCode := false
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, name)))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		anchors[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(title), ""), " ", "-")] = true
	}
	return anchors
}

// Every alert is complete, points to a runbook section that exists, names
// only metrics the code exports (so a renamed metric can not silently
// disable an alert), watches the connector's slot, and selects the jobs
// that Prometheus (compose) and the ServiceMonitor (Kubernetes) produce.
func TestAlerts(t *testing.T) {
	var file struct {
		Groups []struct {
			Name  string      `json:"name"`
			Rules []alertRule `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, "prometheus/alerts.yml"), &file); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	metrics := exportedMetrics(t)
	if !metrics["messagekit_bridge_consumer_lag_records"] {
		t.Fatalf("found no metric names in the code (%d names)", len(metrics))
	}
	anchors := markdownAnchors(t, repoPath("docs", "operations.md"))
	slot := loadConnector(t).Config["slot.name"]
	metricRef := regexp.MustCompile(`\bmessagekit_[a-z0-9_]+`)
	slotRef := regexp.MustCompile(`slot_name="([^"]*)"`)
	jobRef := regexp.MustCompile(`job=~"([^"]*)"`)

	jobs, _ := prometheusScrapes(t)
	var services []string
	for _, o := range kustomize(t, "k8s/base") {
		if o.Kind == "Service" {
			services = append(services, o.Metadata.Name)
		}
	}

	seen := map[string]bool{}
	count := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			count++
			if r.Alert == "" || seen[r.Alert] {
				t.Errorf("group %s: alert name %q missing or repeated", g.Name, r.Alert)
			}
			seen[r.Alert] = true
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s has no summary", r.Alert)
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook"], "docs/operations.md#")
			if !ok || !anchors[anchor] {
				t.Errorf("%s: runbook %q is not a section of docs/operations.md", r.Alert, r.Annotations["runbook"])
			}
			for _, m := range metricRef.FindAllString(r.Expr, -1) {
				base := m
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(m, suffix); ok && metrics[b] {
						base = b
					}
				}
				if !metrics[base] {
					t.Errorf("%s uses metric %s, which no code exports", r.Alert, m)
				}
			}
			for _, m := range slotRef.FindAllStringSubmatch(r.Expr, -1) {
				if m[1] != slot {
					t.Errorf("%s watches slot %q, the connector's is %q", r.Alert, m[1], slot)
				}
			}
			for _, m := range jobRef.FindAllStringSubmatch(r.Expr, -1) {
				re := regexp.MustCompile("^(?:" + m[1] + ")$")
				for _, name := range services {
					if !re.MatchString(name) {
						t.Errorf("%s: job=~%q misses Kubernetes Service %s (the ServiceMonitor's job label)", r.Alert, m[1], name)
					}
					if _, ok := jobs[name]; !ok {
						t.Errorf("prometheus.yml has no job %s: the alerts' job names would differ from Kubernetes'", name)
					}
				}
			}
		}
	}
	if count == 0 {
		t.Fatal("alerts.yml has no rules")
	}
}
