package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// EnabledFromEnv reports whether tracing is asked for by the standard
// variables, read through lookup (os.LookupEnv in a binary):
//
//   - never when OTEL_SDK_DISABLED is "true" (any case);
//   - when OTEL_TRACES_EXPORTER is set and non-empty: unless it is "none";
//   - otherwise when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
//     OTEL_EXPORTER_OTLP_ENDPOINT is set and non-empty.
func EnabledFromEnv(lookup func(string) (string, bool)) bool {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	if strings.EqualFold(get("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	if exp := get("OTEL_TRACES_EXPORTER"); exp != "" {
		return exp != "none"
	}
	return get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || get("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

// Config configures New. The zero value (apart from ServiceName) is tracing
// off.
type Config struct {
	// ServiceName is the resource's service.name; OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES override it. Required.
	ServiceName string
	// Enabled builds an SDK tracer provider; when false New returns a noop
	// provider and nothing is exported.
	Enabled bool
	// Exporter replaces the autoexport exporter (chosen by
	// OTEL_TRACES_EXPORTER, default otlp) when non-nil; for tests.
	Exporter sdktrace.SpanExporter
}

// Tracing is a process's tracing set-up. Its methods are safe for
// concurrent use.
type Tracing struct {
	provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider // nil when off
}

// New builds the tracer provider described by cfg, with a batch span
// processor and a resource carrying service.name plus whatever the OTEL_*
// resource variables add. It returns an error when ServiceName is empty, when
// autoexport rejects the exporter settings (e.g. an unknown
// OTEL_TRACES_EXPORTER), or when the resource cannot be built.
func New(ctx context.Context, cfg Config) (*Tracing, error) {
	if cfg.ServiceName == "" {
		return nil, errors.New("telemetry: ServiceName is required")
	}
	if !cfg.Enabled {
		return &Tracing{provider: noop.NewTracerProvider()}, nil
	}
	exp := cfg.Exporter
	if exp == nil {
		var err error
		if exp, err = autoexport.NewSpanExporter(ctx); err != nil {
			return nil, fmt.Errorf("telemetry: span exporter: %w", err)
		}
	}
	// Later options win: the environment may override service.name.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("telemetry: resource: %w", err), exp.Shutdown(ctx))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracing{provider: tp, sdk: tp}, nil
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// TracerProvider returns the provider to pass to instrumented components: an
// SDK provider when enabled, a noop provider otherwise.
func (t *Tracing) TracerProvider() trace.TracerProvider { return t.provider }

// Propagator returns the W3C tracecontext and baggage propagator, used for
// Kafka and AMQP headers whether or not tracing is enabled, so that trace
// context passes through a process that does not record spans.
func (t *Tracing) Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Shutdown flushes buffered spans and stops the exporter, within ctx's
// deadline. It is a no-op when tracing is off, and returns the exporter's
// error, if any. Calling it more than once is harmless.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}
