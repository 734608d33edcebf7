// Package service is the process lifecycle shared by messagekit's binaries,
// so that each cmd/<binary>/main.go only declares its configuration and
// wires its components:
//
//	func main() {
//		var cfg Config
//		service.Main(service.Spec{
//			Name: "messagekit-bridge", Summary: "…",
//			Config: &cfg, Common: &cfg.Common, HTTPAddr: &cfg.HTTPAddr,
//			Run: func(ctx context.Context, rt *service.Runtime) error { … },
//		})
//	}
//
// Execute, which Main wraps, does in order:
//
//  1. Parse the arguments: none runs the service; "migrate" applies the
//     database migrations and exits; "migrate status" lists them; "help",
//     "-h" or "--help" prints the usage (summary, commands and every
//     variable with its default and description) to standard output. Any
//     other argument is a usage error.
//  2. Load the configuration (config.Load). An invalid value prints one line
//     naming the variable to standard error; nothing has started yet.
//  3. For a run: set up tracing (telemetry), apply migrations when
//     MIGRATE_ON_START=true, listen on HTTP_ADDR and serve /healthz, /readyz
//     and /metrics there, log a "starting" line with the address actually
//     bound, and call Spec.Run.
//  4. When ctx ends (Main: SIGINT or SIGTERM), /readyz turns to 503
//     "stopping" and Run's context is cancelled. A separate context bounded
//     by SHUTDOWN_TIMEOUT then covers waiting for Run to return, shutting
//     the HTTP server down, the cleanups Run registered (newest first), the
//     readiness checks' own resources and the tracing flush.
//
// Logs are JSON lines (log/slog) on standard error, each with the
// attribute service=<Name>; standard output carries only command output
// (usage, migrate status).
//
// Exit codes: ExitOK (0) after a clean shutdown or a successful command,
// ExitFailure (1) when Run, the HTTP listener, tracing set-up, a migration
// or a cleanup failed or the shutdown timed out, and ExitUsage (2) for a bad
// argument or configuration value.
package service
