package deployments_test

import (
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// k8sObject is the part of a built manifest the tests read.
type k8sObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int `json:"replicas"`
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec podSpec `json:"spec"`
		} `json:"template"`
		// Service
		Ports []struct {
			Name       string `json:"name"`
			Port       int    `json:"port"`
			TargetPort any    `json:"targetPort"`
		} `json:"ports"`
		// ServiceMonitor
		Endpoints []struct {
			Port string `json:"port"`
			Path string `json:"path"`
		} `json:"endpoints"`
		// PrometheusRule
		Groups any `json:"groups"`
		// PodDisruptionBudget
		MinAvailable   any `json:"minAvailable"`
		MaxUnavailable any `json:"maxUnavailable"`
	} `json:"spec"`
	// Service selectors are a plain map.
	ServiceSelector map[string]string `json:"-"`
	Data            map[string]string `json:"data"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds"`
	AutomountServiceAccountToken  *bool  `json:"automountServiceAccountToken"`
	RestartPolicy                 string `json:"restartPolicy"`
	SecurityContext               struct {
		RunAsNonRoot   *bool  `json:"runAsNonRoot"`
		RunAsUser      *int64 `json:"runAsUser"`
		SeccompProfile struct {
			Type string `json:"type"`
		} `json:"seccompProfile"`
	} `json:"securityContext"`
	InitContainers []k8sContainer `json:"initContainers"`
	Containers     []k8sContainer `json:"containers"`
}

type k8sContainer struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
	Ports   []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	Env []struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom *struct {
			SecretKeyRef    *keyRef `json:"secretKeyRef"`
			ConfigMapKeyRef *keyRef `json:"configMapKeyRef"`
		} `json:"valueFrom"`
	} `json:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `json:"name"`
		} `json:"configMapRef"`
		SecretRef *struct {
			Name string `json:"name"`
		} `json:"secretRef"`
	} `json:"envFrom"`
	LivenessProbe   *k8sProbe `json:"livenessProbe"`
	ReadinessProbe  *k8sProbe `json:"readinessProbe"`
	SecurityContext *struct {
		AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
		Capabilities             *struct {
			Drop []string `json:"drop"`
		} `json:"capabilities"`
	} `json:"securityContext"`
	Resources struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
}

type keyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
}

// kustomize builds dir as `kustomize build` does, with the kustomize
// library (no binary needed), and decodes the output.
func kustomize(t *testing.T, dir string) []k8sObject {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []k8sObject
	for _, r := range m.Resources() {
		raw, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		var o k8sObject
		if err := json.Unmarshal(b, &o); err != nil {
			t.Fatalf("%s/%s: %v", r.GetKind(), r.GetName(), err)
		}
		if o.Kind == "Service" {
			var svc struct {
				Spec struct {
					Selector map[string]string `json:"selector"`
				} `json:"spec"`
			}
			_ = json.Unmarshal(b, &svc)
			o.ServiceSelector = svc.Spec.Selector
		}
		if o.Kind == "Secret" {
			for k, v := range o.Data {
				d, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					t.Fatalf("Secret %s key %s: %v", o.Metadata.Name, k, err)
				}
				o.Data[k] = string(d)
			}
		}
		objs = append(objs, o)
	}
	return objs
}

// exampleOverlay copies k8s/ to a temporary directory, with secrets.env
// made from secrets.env.example as an operator would, and returns the
// overlay's directory there.
func exampleOverlay(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir("k8s", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, p)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dst, "k8s", "overlays", "example")
	if err := os.WriteFile(filepath.Join(overlay, "secrets.env"), readFile(t, "k8s/overlays/example/secrets.env.example"), 0o600); err != nil {
		t.Fatal(err)
	}
	return overlay
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// The base and the example overlay build with kustomize, and what they
// produce runs the Dockerfile's binaries the way those are configured and
// served.
func TestKubernetesManifests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dir     func(*testing.T) string
		overlay bool
	}{
		{"base", func(*testing.T) string { return "k8s/base" }, false},
		{"overlays/example", exampleOverlay, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkManifests(t, kustomize(t, tc.dir(t)), tc.overlay)
		})
	}
}

func checkManifests(t *testing.T, objs []k8sObject, overlay bool) {
	df := parseDockerfile(t, repoPath("Dockerfile"))
	bins := df.binaries(df.defaultTarget())
	uid, _, _ := strings.Cut(df.defaultTarget().user, ":")

	byKind := map[string]map[string]k8sObject{}
	for _, o := range objs {
		if byKind[o.Kind] == nil {
			byKind[o.Kind] = map[string]k8sObject{}
		}
		byKind[o.Kind][o.Metadata.Name] = o
	}
	if len(byKind["Deployment"]) == 0 || len(byKind["Job"]) == 0 {
		t.Fatalf("want Deployments and a migration Job, got %v", sortedKeys(byKind))
	}
	if !overlay {
		if len(byKind["Secret"]) != 0 {
			t.Errorf("the base defines Secrets %v: it must only reference them", sortedKeys(byKind["Secret"]))
		}
		if len(byKind["ServiceMonitor"]) != 0 || len(byKind["PrometheusRule"]) != 0 {
			t.Error("the base needs the Prometheus Operator's CRDs: monitoring belongs in the optional component")
		}
	}

	var image string
	provided := map[string]bool{}
	migrationJob := false
	for _, kind := range []string{"Deployment", "Job"} {
		for _, name := range sortedKeys(byKind[kind]) {
			o := byKind[kind][name]
			pod := o.Spec.Template.Spec
			where := kind + " " + name
			if sc := pod.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil ||
				strconv.FormatInt(*sc.RunAsUser, 10) != uid || sc.SeccompProfile.Type != "RuntimeDefault" {
				t.Errorf("%s: pod securityContext wants runAsNonRoot, runAsUser %s (the image's USER) and seccomp RuntimeDefault", where, uid)
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Errorf("%s mounts a service account token it never uses", where)
			}
			for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
				where := where + " container " + c.Name
				if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
					sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
					t.Errorf("%s: want readOnlyRootFilesystem, no privilege escalation, capabilities drop ALL", where)
				}
				for _, r := range []string{"cpu", "memory"} {
					if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
						t.Errorf("%s: no %s request and limit (base/resources.yaml)", where, r)
					}
				}
				if image == "" {
					image = c.Image
				} else if c.Image != image {
					t.Errorf("%s: image %s, others run %s", where, c.Image, image)
				}
				if len(c.Command) == 0 || bins[c.Command[0]] == "" {
					t.Errorf("%s: command %v runs none of the image's binaries %v", where, c.Command, sortedKeys(bins))
					continue
				}
				cfg, err := loadBinaryConfig(t, bins[c.Command[0]])
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				env := containerEnv(t, where, c, byKind, overlay)
				for _, n := range sortedKeys(env) {
					if !readsVar(cfg, n) && !externalVar(n) {
						t.Errorf("%s sets %s, which %s's Config does not read", where, n, c.Command[0])
					}
				}
				if kind == "Job" {
					if slices.Equal(c.Command[1:], []string{"migrate"}) {
						migrationJob = true
						checkMigrationLabels(t, o, c, byKind)
					}
					continue
				}
				for n := range env {
					provided[n] = true
				}
				checkServing(t, where, o, c, cfg, env, byKind)
			}
		}
	}
	if !migrationJob {
		t.Error("no Job runs `<binary> migrate`")
	}
	for _, n := range designVars {
		if !provided[n] {
			t.Errorf("no Deployment sets %s (DESIGN.md §5)", n)
		}
	}
	otel := false
	for n := range provided {
		otel = otel || strings.HasPrefix(n, "OTEL_")
	}
	if !otel {
		t.Error("no Deployment sets an OTEL_* variable (DESIGN.md §5)")
	}

	if b := byKind["Deployment"]["messagekit-bridge"]; b.Spec.Replicas == nil || *b.Spec.Replicas < 2 {
		t.Error("the bridge runs fewer than 2 replicas")
	}
	if overlay {
		if tag := strings.TrimPrefix(image, imageName(image)); tag == "" || tag == ":latest" {
			t.Errorf("the overlay runs %s: pin a tag or digest", image)
		}
		checkMonitoring(t, byKind)
	} else {
		var c compose
		if err := yaml.Unmarshal(readFile(t, composeFile), &c); err != nil {
			t.Fatal(err)
		}
		for _, s := range c.Services {
			if s.ours() && s.Build.Target == df.defaultTarget().name && imageName(s.Image) != imageName(image) {
				t.Errorf("the base runs image %s, %s builds it as %s", image, composeFile, s.Image)
			}
		}
	}
}

// containerEnv returns the variables a container gets, with their values
// where the manifests hold them (secrets are "<secret>").
func containerEnv(t *testing.T, where string, c k8sContainer, byKind map[string]map[string]k8sObject, overlay bool) map[string]string {
	t.Helper()
	env := map[string]string{}
	lookup := func(kind string, ref keyRef) string {
		o, ok := byKind[kind][ref.Name]
		switch {
		case !ok && kind == "Secret" && !overlay:
			return "<secret>" // the base only references Secrets
		case !ok:
			t.Errorf("%s references %s %s, which is not in the build", where, kind, ref.Name)
		case ref.Key != "":
			if _, has := o.Data[ref.Key]; !has {
				t.Errorf("%s references key %s of %s %s, which it lacks", where, ref.Key, kind, ref.Name)
			}
		}
		if kind == "Secret" {
			return "<secret>"
		}
		return o.Data[ref.Key]
	}
	for _, from := range c.EnvFrom {
		kind, name := "ConfigMap", ""
		if from.ConfigMapRef != nil {
			name = from.ConfigMapRef.Name
		} else if from.SecretRef != nil {
			kind, name = "Secret", from.SecretRef.Name
		}
		o, ok := byKind[kind][name]
		if !ok {
			t.Errorf("%s: envFrom %s %s is not in the build", where, kind, name)
			continue
		}
		for k := range o.Data {
			env[k] = lookup(kind, keyRef{Name: name, Key: k})
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = lookup("Secret", *e.ValueFrom.SecretKeyRef)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			env[e.Name] = lookup("ConfigMap", *e.ValueFrom.ConfigMapKeyRef)
		default:
			env[e.Name] = "<field>"
		}
	}
	return env
}

// checkServing checks a Deployment's container against its binary: the
// §5 variables, the port, the probes, the grace period, and the Service
// and PodDisruptionBudget that select it.
func checkServing(t *testing.T, where string, o k8sObject, c k8sContainer, cfg binaryConfig, env map[string]string, byKind map[string]map[string]k8sObject) {
	t.Helper()
	for _, n := range designVars {
		if _, reads := cfg.Vars[n]; reads && env[n] == "" {
			t.Errorf("%s does not set %s (DESIGN.md §5), which %s reads", where, n, c.Command[0])
		}
	}
	port := listenPort(t, cfg.effective(env, "HTTP_ADDR"))
	portName := ""
	for _, p := range c.Ports {
		if p.ContainerPort == port {
			portName = p.Name
		}
	}
	if portName == "" {
		t.Errorf("%s listens on %d (HTTP_ADDR) but declares ports %+v", where, port, c.Ports)
	}
	resolves := func(v any) bool {
		switch v := v.(type) {
		case string:
			return v != "" && v == portName
		case float64:
			return int(v) == port
		}
		return false
	}
	for _, p := range []struct {
		kind  string
		probe *k8sProbe
		want  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			t.Errorf("%s has no HTTP %s probe", where, p.kind)
		case p.probe.HTTPGet.Path != p.want || !cfg.serves(t, p.probe.HTTPGet.Path):
			t.Errorf("%s: %s probe on %s, want %s, which the binary serves", where, p.kind, p.probe.HTTPGet.Path, p.want)
		case !resolves(p.probe.HTTPGet.Port):
			t.Errorf("%s: %s probe port %v is not HTTP_ADDR's %d", where, p.kind, p.probe.HTTPGet.Port, port)
		}
	}

	shutdown := durationOf(t, "SHUTDOWN_TIMEOUT", cfg.effective(env, "SHUTDOWN_TIMEOUT"))
	grace := 30 * time.Second // Kubernetes' default
	if g := o.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace <= shutdown {
		t.Errorf("%s: terminationGracePeriodSeconds %v is not above SHUTDOWN_TIMEOUT %v", where, grace, shutdown)
	}

	labels := o.Spec.Template.Metadata.Labels
	if !subset(o.Spec.Selector.MatchLabels, labels) {
		t.Errorf("%s: selector %v does not match its pods %v", where, o.Spec.Selector.MatchLabels, labels)
	}
	hasService := false
	for _, s := range byKind["Service"] {
		if subset(s.ServiceSelector, labels) {
			for _, p := range s.Spec.Ports {
				hasService = hasService || resolves(p.TargetPort)
			}
		}
	}
	if !hasService {
		t.Errorf("%s: no Service routes to its HTTP port %d", where, port)
	}
	hasPDB := false
	for _, p := range byKind["PodDisruptionBudget"] {
		if subset(p.Spec.Selector.MatchLabels, labels) && (p.Spec.MinAvailable != nil || p.Spec.MaxUnavailable != nil) {
			hasPDB = true
		}
	}
	if !hasPDB {
		t.Errorf("%s has no PodDisruptionBudget", where)
	}
}

// checkMigrationLabels pins the upgrade procedure of docs/operations.md:
// `-l 'app.kubernetes.io/component in (config,migration)'` selects the Job
// and everything it reads.
func checkMigrationLabels(t *testing.T, job k8sObject, c k8sContainer, byKind map[string]map[string]k8sObject) {
	t.Helper()
	const key = "app.kubernetes.io/component"
	if job.Metadata.Labels[key] != "migration" {
		t.Errorf("Job %s lacks label %s=migration", job.Metadata.Name, key)
	}
	refs := map[string]string{} // name -> kind
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil {
			refs[from.ConfigMapRef.Name] = "ConfigMap"
		}
		if from.SecretRef != nil {
			refs[from.SecretRef.Name] = "Secret"
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			refs[e.ValueFrom.SecretKeyRef.Name] = "Secret"
		}
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			refs[e.ValueFrom.ConfigMapKeyRef.Name] = "ConfigMap"
		}
	}
	for name, kind := range refs {
		if o, ok := byKind[kind][name]; ok && o.Metadata.Labels[key] != "config" {
			t.Errorf("%s %s, which the migration Job reads, lacks label %s=config", kind, name, key)
		}
	}
}

// checkMonitoring: the ServiceMonitor scrapes every Service on a port it
// has and a path the binaries serve; the PrometheusRule carries exactly
// the alerts of prometheus/alerts.yml.
func checkMonitoring(t *testing.T, byKind map[string]map[string]k8sObject) {
	t.Helper()
	if len(byKind["ServiceMonitor"]) == 0 {
		t.Fatal("the overlay has no ServiceMonitor")
	}
	for _, svc := range sortedKeys(byKind["Service"]) {
		s := byKind["Service"][svc]
		scraped := false
		for _, sm := range byKind["ServiceMonitor"] {
			if !subset(sm.Spec.Selector.MatchLabels, s.Metadata.Labels) {
				continue
			}
			for _, ep := range sm.Spec.Endpoints {
				for _, p := range s.Spec.Ports {
					if p.Name == ep.Port {
						scraped = true
						if !served(t, ep.Path) {
							t.Errorf("ServiceMonitor %s scrapes %s, which the binaries do not serve", sm.Metadata.Name, ep.Path)
						}
					}
				}
			}
		}
		if !scraped {
			t.Errorf("no ServiceMonitor scrapes Service %s", svc)
		}
	}

	var alerts struct {
		Groups any `json:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/alerts.yml"), &alerts); err != nil {
		t.Fatal(err)
	}
	rules := byKind["PrometheusRule"]
	if len(rules) != 1 {
		t.Fatalf("want one PrometheusRule, got %v", sortedKeys(rules))
	}
	for _, r := range rules {
		if !reflect.DeepEqual(r.Spec.Groups, alerts.Groups) {
			t.Errorf("PrometheusRule %s differs from prometheus/alerts.yml", r.Metadata.Name)
		}
	}
}

// Resource requests and limits are set in base/resources.yaml and nowhere
// else, so the measured figures go into one file.
func TestKubernetesResourcesInOnePlace(t *testing.T) {
	key := regexp.MustCompile(`(?m)^[ \t]+resources:`)
	err := filepath.WalkDir("k8s", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		if filepath.ToSlash(p) != "k8s/base/resources.yaml" && key.Match(readFile(t, p)) {
			t.Errorf("%s sets resources: keep them in k8s/base/resources.yaml", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
