package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// buildBridge builds ./cmd/bridge of the module the tool runs in into dir.
func buildBridge(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the module: run from the repository root, or pass -bridge")
	}
	path := filepath.Join(dir, "bridge")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "./cmd/bridge")
	cmd.Dir = filepath.Dir(gomod)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/bridge: %w", err)
	}
	return path, nil
}

// child is a running bridge process.
type child struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
	started time.Time
}

// passedThrough are variables of the tool's environment the bridge gets
// too: the Go runtime's knobs, for experiments.
var passedThrough = []string{"PATH", "HOME", "GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"}

// startBridge starts path with vars (NAME=value) and no other configuration
// than passedThrough, its output going to logPath.
func startBridge(path string, vars []string, logPath string) (*child, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path)
	for _, name := range passedThrough {
		if v, ok := os.LookupEnv(name); ok {
			cmd.Env = append(cmd.Env, name+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, vars...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	c := &child{cmd: cmd, logPath: logPath, exited: make(chan struct{}), started: time.Now()}
	go func() {
		c.waitErr = cmd.Wait()
		_ = log.Close()
		close(c.exited)
	}()
	return c, nil
}

// alive reports an error when the process has exited.
func (c *child) alive() error {
	select {
	case <-c.exited:
		return fmt.Errorf("the bridge exited (%v); its log: %s\n%s", c.waitErr, c.logPath, c.logTail())
	default:
		return nil
	}
}

// logTail returns the last lines of the child's log.
func (c *child) logTail() string {
	b, _ := os.ReadFile(c.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// cpu returns the user plus system CPU time of the process so far, all
// threads, from /proc/<pid>/stat (10 ms resolution).
func (c *child) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/<pid>/stat format")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/<pid>/stat format")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// memory returns VmRSS and VmHWM (peak RSS) of the process in KiB.
func (c *child) memory() (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &rss
		case "VmHWM":
			dst = &hwm
		default:
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc status %s: %w", name, err)
		}
		*dst = v
	}
	return rss, hwm, nil
}

// exitStats is what the process used, read until it exited.
type exitStats struct {
	// cpu is the rusage at exit: user plus system time of the whole life.
	cpu time.Duration
	// hwmKiB is the last VmHWM read while the process shut down: the peak
	// RSS of its whole life. The rusage Maxrss is not used: os/exec starts
	// the child with vfork, so it counts the parent's (this tool's, with
	// kfake's records) resident set from before the exec.
	hwmKiB int64
	code   int
}

// stop sends SIGTERM and waits for the graceful shutdown (SIGKILL after
// timeout), reading VmHWM until the process is gone.
func (c *child) stop(timeout time.Duration) (exitStats, error) {
	var s exitStats
	if _, hwm, err := c.memory(); err == nil {
		s.hwmKiB = hwm
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
wait:
	for {
		select {
		case <-c.exited:
			break wait
		case <-tick.C:
			if _, hwm, err := c.memory(); err == nil {
				s.hwmKiB = max(s.hwmKiB, hwm)
			}
		case <-deadline:
			_ = c.cmd.Process.Kill()
			<-c.exited
			return s, fmt.Errorf("the bridge did not stop within %s; log: %s", timeout, c.logPath)
		}
	}
	st := c.cmd.ProcessState
	s.cpu, s.code = st.UserTime()+st.SystemTime(), st.ExitCode()
	if s.code != 0 {
		return s, fmt.Errorf("the bridge exited with code %d; its log: %s\n%s", s.code, c.logPath, c.logTail())
	}
	return s, nil
}
