package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"

	"github.com/firstunicorn/messagekit-go/internal/config"
	"github.com/firstunicorn/messagekit-go/internal/health"
	"github.com/firstunicorn/messagekit-go/internal/logging"
	"github.com/firstunicorn/messagekit-go/internal/migrate"
	"github.com/firstunicorn/messagekit-go/internal/telemetry"
)

// Exit codes returned by Execute.
const (
	// ExitOK: a clean shutdown, or a command that succeeded.
	ExitOK = 0
	// ExitFailure: Run, the listener, tracing set-up, a migration or a
	// cleanup failed, or the shutdown exceeded SHUTDOWN_TIMEOUT.
	ExitFailure = 1
	// ExitUsage: a bad argument or configuration value; nothing started.
	ExitUsage = 2
)

// Spec describes a binary to Main and Execute.
type Spec struct {
	// Name is the binary's name, e.g. "messagekit-bridge": the prefix of
	// error lines, the service attribute of log lines and the default
	// OpenTelemetry service.name.
	Name string
	// Summary is one line saying what the binary does, shown first by help.
	Summary string
	// Description is shown by help under the summary; it may span lines.
	Description string
	// Config points to the binary's configuration struct, loaded by
	// config.Load (and listed by help).
	Config any
	// Common points to the config.Common embedded in *Config.
	Common *config.Common
	// HTTPAddr points to the field of *Config that holds HTTP_ADDR, where
	// the health and metrics endpoints are served.
	HTTPAddr *config.ListenAddr
	// Run is the binary's work loop. It registers readiness checks and
	// cleanups on rt, calls rt.SetReady once it serves, and blocks until
	// ctx is cancelled (or its work fails). Returning a non-nil error makes
	// the process exit with ExitFailure; returning nil before ctx ends shuts
	// the process down with ExitOK.
	Run func(ctx context.Context, rt *Runtime) error
	// ReadTimeout bounds reading one request, headers and body, so that a
	// client sending slowly cannot hold a handler (and its connection) open
	// without end; zero means [DefaultReadTimeout]. Responses are not
	// bounded: a streaming response may run as long as it writes.
	ReadTimeout time.Duration
}

// Time bounds of the HTTP server of every binary.
const (
	// DefaultReadTimeout is the default [Spec.ReadTimeout]: time for a
	// request of a few MiB at a slow client's pace.
	DefaultReadTimeout = 30 * time.Second
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout = 10 * time.Second
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout = 2 * time.Minute
)

// Main runs the binary described by spec with the process's arguments and
// exits with Execute's code. SIGINT and SIGTERM start the graceful shutdown;
// a second one kills the process at once (Go's default behaviour, restored
// after the first).
func Main(spec Spec) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := Execute(ctx, spec, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type command int

const (
	cmdServe command = iota
	cmdHelp
	cmdMigrateUp
	cmdMigrateStatus
	cmdConfig
	cmdVersion
)

// parseArgs maps the command line to a command, or an error for stderr.
func parseArgs(args []string) (command, error) {
	switch strings.Join(args, " ") {
	case "":
		return cmdServe, nil
	case "help", "-h", "-help", "--help":
		return cmdHelp, nil
	case "migrate", "migrate up":
		return cmdMigrateUp, nil
	case "migrate status":
		return cmdMigrateStatus, nil
	case "config":
		return cmdConfig, nil
	case "version", "-version", "--version":
		return cmdVersion, nil
	}
	if args[0] == "migrate" {
		return 0, fmt.Errorf("unknown migrate command %q (want up or status)", strings.Join(args[1:], " "))
	}
	return 0, fmt.Errorf("unknown command %q", strings.Join(args, " "))
}

// Execute runs spec with args (without the program name) and returns the
// exit code; it does not call os.Exit. ctx ending starts the graceful
// shutdown (Main cancels it on SIGINT or SIGTERM). Usage goes to stdout;
// errors and logs go to stderr. Execute reads the process environment for
// the configuration and the OTEL_* variables. A panic in Run (not in
// goroutines Run starts) is logged with its stack and ends in ExitFailure,
// rather than Go's exit code 2, which means a usage error here. An
// incomplete spec is reported on stderr with ExitFailure.
func Execute(ctx context.Context, spec Spec, args []string, stdout, stderr io.Writer) int {
	if spec.Name == "" || spec.Config == nil || spec.Common == nil || spec.HTTPAddr == nil || spec.Run == nil {
		fmt.Fprintf(stderr, "%s: service.Spec needs Name, Config, Common, HTTPAddr and Run\n", spec.Name)
		return ExitFailure
	}
	cmd, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", spec.Name, err, spec.Name)
		return ExitUsage
	}
	if cmd == cmdHelp {
		if err := WriteUsage(stdout, spec); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
			return ExitFailure
		}
		return ExitOK
	}
	if cmd == cmdVersion {
		if err := writeVersion(stdout, spec.Name); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
			return ExitFailure
		}
		return ExitOK
	}
	if err := config.Load(spec.Config); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
		return ExitUsage
	}
	if err := checkTracesExporter(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
		return ExitUsage
	}
	if cmd == cmdConfig {
		if err := config.WriteEffective(stdout, spec.Config); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
			return ExitFailure
		}
		return ExitOK
	}
	logger := logging.New(stderr, spec.Common.LogLevel.Level()).With(slog.String("service", spec.Name))

	switch cmd {
	case cmdMigrateUp:
		if err := migrate.Up(ctx, spec.Common.DatabaseURL, logger); err != nil {
			logger.Error("migrate failed", slog.Any("error", err))
			return ExitFailure
		}
		return ExitOK
	case cmdMigrateStatus:
		if err := migrate.Status(ctx, spec.Common.DatabaseURL, stdout); err != nil {
			logger.Error("migrate status failed", slog.Any("error", err))
			return ExitFailure
		}
		return ExitOK
	}
	return serve(ctx, spec, logger)
}

// WriteUsage writes the help text of spec to w: summary, description,
// commands, every configuration variable with its default and description,
// the endpoints and the exit codes.
func WriteUsage(w io.Writer, spec Spec) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s - %s\n\n", spec.Name, spec.Summary)
	if spec.Description != "" {
		fmt.Fprintf(&b, "%s\n\n", strings.TrimSpace(spec.Description))
	}
	fmt.Fprintf(&b, "Usage:\n")
	for _, c := range [][2]string{
		{"", "run until SIGTERM or SIGINT"},
		{"migrate", "apply pending database migrations to DATABASE_URL and exit"},
		{"migrate status", "list the migrations and whether each is applied"},
		{"config", "check the configuration and print every variable: value (secrets as ***) and source (default, env, file)"},
		{"version", "print the module version, VCS revision and Go version"},
		{"help", "show this help (also -h, --help)"},
	} {
		fmt.Fprintf(&b, "  %-40s %s\n", strings.TrimSpace(spec.Name+" "+c[0]), c[1])
	}
	fmt.Fprintf(&b, "\nConfiguration (environment variables):\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	otelRow := config.Var{Name: "OTEL_*", Description: "standard OpenTelemetry SDK variables; tracing is on only when " +
		"OTEL_TRACES_EXPORTER (otlp or console; none turns it off) or OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set"}
	if err := config.WriteUsage(w, spec.Config, otelRow); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "\nSecrets (%s) may be given as <NAME>_FILE=<path> instead: the value is read from\nthe file, one trailing newline dropped; setting both is an error.\n", strings.Join(fileVars(spec.Config), ", ")); err != nil {
		return err
	}
	_, err := io.WriteString(w, `
HTTP endpoints on HTTP_ADDR:
  GET /healthz   200 while the process runs
  GET /readyz    200 when every dependency answers, else 503; JSON per dependency
  GET /metrics   Prometheus metrics

Exit status: 0 after a clean shutdown or a successful command, 1 on a runtime
failure or a shutdown that exceeded SHUTDOWN_TIMEOUT, 2 on a usage or
configuration error.
`)
	return err
}

// tracesExporters are the OTEL_TRACES_EXPORTER values the SDK's autoexport
// package builds an exporter for.
var tracesExporters = []string{"otlp", "console", "none"}

// checkTracesExporter refuses an OTEL_TRACES_EXPORTER the SDK does not
// know, which would otherwise fail only once tracing starts.
func checkTracesExporter() error {
	v, ok := os.LookupEnv("OTEL_TRACES_EXPORTER")
	if !ok || strings.TrimSpace(v) == "" {
		return nil
	}
	for _, e := range strings.Split(v, ",") {
		if !slices.Contains(tracesExporters, strings.TrimSpace(e)) {
			return config.Invalid("OTEL_TRACES_EXPORTER", v, "want otlp, console or none")
		}
	}
	return nil
}

// fileVars lists the variables of spec that may be given as <NAME>_FILE.
func fileVars(spec any) []string {
	vars, _ := config.Vars(spec)
	var names []string
	for _, v := range vars {
		if v.File {
			names = append(names, v.Name)
		}
	}
	return names
}

func serve(ctx context.Context, spec Spec, logger *slog.Logger) int {
	tracing, err := telemetry.New(ctx, telemetry.Config{
		ServiceName: spec.Name,
		Enabled:     telemetry.EnabledFromEnv(os.LookupEnv),
	})
	if err != nil {
		logger.Error("tracing set-up failed", slog.Any("error", err))
		return ExitFailure
	}
	// The process entry point owns the otel globals, for instrumentation
	// libraries that read them.
	otel.SetTracerProvider(tracing.TracerProvider())
	otel.SetTextMapPropagator(tracing.Propagator())
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("opentelemetry error", slog.Any("error", err))
	}))

	code := run(ctx, spec, logger, tracing)

	// run flushes traces on its shutdown path; this covers its early
	// returns (Shutdown is idempotent).
	shutdownCtx, cancel := context.WithTimeout(context.Background(), spec.Common.ShutdownTimeout)
	defer cancel()
	if err := tracing.Shutdown(shutdownCtx); err != nil {
		logger.Error("flushing traces failed", slog.Any("error", err))
		code = ExitFailure
	}
	return code
}

func run(ctx context.Context, spec Spec, logger *slog.Logger, tracing *telemetry.Tracing) int {
	if spec.Common.MigrateOnStart {
		if err := migrate.Up(ctx, spec.Common.DatabaseURL, logger); err != nil {
			logger.Error("migrate on start failed", slog.Any("error", err))
			return ExitFailure
		}
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	checks, err := health.New(health.Config{Registry: registry, Logger: logger})
	if err != nil {
		logger.Error("health set-up failed", slog.Any("error", err))
		return ExitFailure
	}

	ln, err := net.Listen("tcp", spec.HTTPAddr.String())
	if err != nil {
		logger.Error("listen failed", slog.String("http_addr", spec.HTTPAddr.String()), slog.Any("error", err))
		return ExitFailure
	}
	mux := http.NewServeMux()
	checks.Register(mux)
	readTimeout := spec.ReadTimeout
	if readTimeout <= 0 {
		readTimeout = DefaultReadTimeout
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: min(ReadHeaderTimeout, readTimeout),
		ReadTimeout:       readTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	rt := &Runtime{
		logger:   logger,
		registry: registry,
		tracing:  tracing,
		checks:   checks,
		mux:      mux,
		addr:     ln.Addr(),
	}

	logger.Info("starting", slog.String("http_addr", ln.Addr().String()),
		slog.Bool("tracing", tracing.Enabled()), slog.String("log_level", spec.Common.LogLevel.String()))

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	// Run's context is cancelled by this function, not by ctx directly, so
	// that /readyz already says "stopping" when the work loop sees the
	// cancellation and starts to drain.
	runCtx, cancelRun := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelRun(nil)
	runErr := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				runErr <- fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		runErr <- spec.Run(runCtx, rt)
	}()

	code := ExitOK
	runDone := false
	select {
	case <-ctx.Done():
		logger.Info("shutting down", slog.String("reason", context.Cause(ctx).Error()))
	case err := <-runErr:
		runDone = true
		if ctx.Err() != nil {
			// The loop returned because shutdown began: report it as the
			// shutdown path does, whichever case select picked.
			logger.Info("shutting down", slog.String("reason", context.Cause(ctx).Error()))
			if err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("work loop failed", slog.Any("error", err))
				code = ExitFailure
			}
			break
		}
		if err != nil {
			logger.Error("work loop failed; shutting down", slog.Any("error", err))
			code = ExitFailure
		} else {
			logger.Info("work loop finished; shutting down")
		}
	case err := <-serveErr:
		logger.Error("http server failed; shutting down", slog.Any("error", err))
		code = ExitFailure
	}

	checks.SetState(health.Stopping)
	cancelRun(context.Cause(ctx))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), spec.Common.ShutdownTimeout)
	defer cancel()
	timeout := spec.Common.ShutdownTimeout.String()

	if !runDone {
		select {
		case err := <-runErr:
			if err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("work loop failed", slog.Any("error", err))
				code = ExitFailure
			}
		case <-shutdownCtx.Done():
			logger.Error("shutdown timed out waiting for the work loop", slog.String("shutdown_timeout", timeout))
			code = ExitFailure
		}
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Error("shutdown timed out waiting for http requests", slog.String("shutdown_timeout", timeout), slog.Any("error", err))
		_ = srv.Close()
		code = ExitFailure
	}
	for _, err := range rt.runCleanups(shutdownCtx) {
		logger.Error("cleanup failed", slog.Any("error", err))
		code = ExitFailure
	}
	if err := checks.Close(); err != nil {
		logger.Warn("closing readiness checks failed", slog.Any("error", err))
	}
	if err := tracing.Shutdown(shutdownCtx); err != nil {
		logger.Error("flushing traces failed", slog.Any("error", err))
		code = ExitFailure
	}

	if code == ExitOK {
		logger.Info("shut down cleanly")
	} else {
		logger.Error("shut down with errors", slog.Int("exit_code", code))
	}
	return code
}
