package telemetry_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/firstunicorn/messagekit-go/internal/telemetry"
)

// TestEnabledFromEnv pins the on/off rule: off when nothing is set, so a
// binary started without OTEL_* never tries to reach a collector.
func TestEnabledFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"unset", nil, false},
		{"exporter console", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{"exporter otlp", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none"}, false},
		{"exporter empty", map[string]string{"OTEL_TRACES_EXPORTER": ""}, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{"none beats endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, false},
		{"sdk disabled", map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "console"}, false},
		{"sdk not disabled", map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "console"}, true},
		{"only service name", map[string]string{"OTEL_SERVICE_NAME": "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			if got := telemetry.EnabledFromEnv(lookup); got != tt.want {
				t.Fatalf("EnabledFromEnv(%v) = %v, want %v", tt.env, got, tt.want)
			}
		})
	}
}

// TestOffIsNoop pins that a disabled set-up records nothing.
func TestOffIsNoop(t *testing.T) {
	tr, err := telemetry.New(context.Background(), telemetry.Config{ServiceName: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.TracerProvider().Tracer("test").Start(context.Background(), "op")
	defer span.End()
	if tr.Enabled() || span.IsRecording() || span.SpanContext().IsValid() {
		t.Fatalf("disabled tracing records spans (enabled=%v recording=%v)", tr.Enabled(), span.IsRecording())
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestNewRequiresServiceName(t *testing.T) {
	if _, err := telemetry.New(context.Background(), telemetry.Config{}); err == nil {
		t.Fatal("New without ServiceName succeeded")
	}
}

// TestShutdownFlushes pins that spans still buffered by the batch processor
// are exported by Shutdown, with service.name on the resource.
func TestShutdownFlushes(t *testing.T) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "600000") // nothing leaves before Shutdown
	exp := &keepingExporter{InMemoryExporter: tracetest.NewInMemoryExporter()}
	tr, err := telemetry.New(context.Background(), telemetry.Config{ServiceName: "svc", Enabled: true, Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.TracerProvider().Tracer("test").Start(context.Background(), "op")
	span.End()
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans exported before Shutdown; the test cannot tell flushing apart", n)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "op" {
		t.Fatalf("exported %v, want the one span", spans)
	}
	if v, ok := spans[0].Resource.Set().Value("service.name"); !ok || v.AsString() != "svc" {
		t.Fatalf("service.name = %v, want svc", v)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// TestPropagator pins W3C tracecontext and baggage.
func TestPropagator(t *testing.T) {
	tr, err := telemetry.New(context.Background(), telemetry.Config{ServiceName: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	carrier := propagation.MapCarrier{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"baggage":     "k=v",
	}
	ctx := tr.Propagator().Extract(context.Background(), carrier)
	if sc := trace.SpanContextFromContext(ctx); sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("traceparent not extracted: %v", sc)
	}
	out := propagation.MapCarrier{}
	tr.Propagator().Inject(ctx, out)
	if out["traceparent"] == "" || out["baggage"] != "k=v" {
		t.Fatalf("Inject wrote %v", out)
	}
}

// keepingExporter keeps its spans on Shutdown, where InMemoryExporter
// forgets them.
type keepingExporter struct{ *tracetest.InMemoryExporter }

func (keepingExporter) Shutdown(context.Context) error { return nil }

const helperVar = "MESSAGEKIT_TELEMETRY_HELPER"

// TestConsoleExporter runs the exporter autoexport picks for
// OTEL_TRACES_EXPORTER=console in a child process (it writes to the
// process's standard output) and checks that the span appears there only
// after Shutdown was called.
func TestConsoleExporter(t *testing.T) {
	if os.Getenv(helperVar) == "1" {
		consoleHelper()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestConsoleExporter$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperVar+"=1", "OTEL_TRACES_EXPORTER=console",
		"OTEL_BSP_SCHEDULE_DELAY=600000", "OTEL_SERVICE_NAME=", "OTEL_RESOURCE_ATTRIBUTES=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	marker := strings.Index(out, "SHUTDOWN-NEXT")
	span := strings.Index(out, `"Name":"console-span"`)
	if marker < 0 || span < 0 || span < marker {
		t.Fatalf("want the span exported after the marker, got:\n%s", out)
	}
	if !strings.Contains(out, "messagekit-telemetry-test") {
		t.Fatalf("service.name missing from exported span:\n%s", out)
	}
}

func consoleHelper() {
	ctx := context.Background()
	tr, err := telemetry.New(ctx, telemetry.Config{
		ServiceName: "messagekit-telemetry-test",
		Enabled:     telemetry.EnabledFromEnv(os.LookupEnv),
	})
	if err != nil {
		panic(err)
	}
	if !tr.Enabled() {
		panic("tracing not enabled by OTEL_TRACES_EXPORTER=console")
	}
	_, span := tr.TracerProvider().Tracer("test").Start(ctx, "console-span")
	span.End()
	os.Stdout.WriteString("SHUTDOWN-NEXT\n")
	if err := tr.Shutdown(ctx); err != nil {
		panic(err)
	}
}
