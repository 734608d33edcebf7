package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
)

// startCPUProfile starts profiling the process's CPU into path
// (BRIDGE_CPU_PROFILE) and returns the cleanup that finishes the file.
func startCPUProfile(path string) (func(context.Context) error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("BRIDGE_CPU_PROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(fmt.Errorf("BRIDGE_CPU_PROFILE: %w", err), f.Close())
	}
	return func(context.Context) error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
