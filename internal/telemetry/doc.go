// Package telemetry sets up OpenTelemetry tracing for a messagekit binary.
//
// Tracing is configured by the standard OTEL_* variables, which the
// OpenTelemetry SDK and autoexport read themselves (exporter, endpoint,
// protocol, sampler, resource attributes, batch settings). It is off unless
// asked for: EnabledFromEnv decides, from those same variables, whether to
// build an SDK at all, and New takes that decision as Config.Enabled. The
// decision is the only thing this package derives from OTEL_* itself, and it
// reads them through a lookup function that the caller passes (the service
// package passes os.LookupEnv), so nothing here touches the environment
// implicitly.
//
// The package holds no global state: New returns the provider and propagator
// and the caller decides whether to install them as the otel globals.
package telemetry
