package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one service of the pipeline run as an operating-system process:
// started, probed, stopped with SIGTERM, killed with SIGKILL and started
// again, as an orchestrator would. Its output goes to a log file that is
// appended to across restarts.
type Proc struct {
	Name string   // short name, e.g. "bridge"
	Path string   // executable
	Args []string // arguments after the executable
	Env  []string // the whole environment, including HTTP_ADDR
	Addr string   // host:port of its HTTP server (health, metrics)
	Log  string   // log file

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current run has exited
	exitErr error         // how the current run exited; read after done
	peakRSS int64         // bytes, the largest over finished runs
	starts  int
}

// Start starts a run. It fails if a run is still going.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		return fmt.Errorf("%s: already running", p.Name)
	}
	log, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(log, "--- run %d, %s\n", p.starts, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = p.Env
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so that a Ctrl-C in the terminal reaches the
	// runner only, which then stops the services in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		_ = log.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(done)
	}()
	go p.sampleRSS(cmd.Process.Pid, done)
	return nil
}

// sampleRSS keeps peakRSS up to date from the kernel's high-water mark of
// the run's resident set (VmHWM), every half second and at the end. The
// rusage of the exited child is no use: its ru_maxrss counts the parent's
// memory too, as the child shared it between fork and exec.
func (p *Proc) sampleRSS(pid int, done <-chan struct{}) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		p.noteRSS(pid)
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

func (p *Proc) noteRSS(pid int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return // gone, or not Linux
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				p.mu.Lock()
				p.peakRSS = max(p.peakRSS, kib*1024)
				p.mu.Unlock()
			}
			return
		}
	}
}

// Done is closed when the current run has exited.
func (p *Proc) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Running reports whether a run is going.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !isClosed(p.done)
}

// ExitErr is how the last run exited (nil for exit status 0); call it
// after Done is closed.
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// PeakRSS is the largest resident set size of the runs so far, in bytes,
// as last sampled (every half second, and before each signal).
func (p *Proc) PeakRSS() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peakRSS
}

// Pid is the current run's process id.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop sends SIGTERM and waits up to limit for the run to exit; past the
// limit it kills the process and says so. It returns how long the exit
// took and how the process exited (nil for status 0).
func (p *Proc) Stop(limit time.Duration) (time.Duration, error) {
	return p.signal(syscall.SIGTERM, limit)
}

// Kill sends SIGKILL, as a crash or the OOM killer would, and waits for the
// run to end.
func (p *Proc) Kill() error {
	_, err := p.signal(syscall.SIGKILL, time.Minute)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return nil // killed, as asked
	}
	return err
}

func (p *Proc) signal(sig syscall.Signal, limit time.Duration) (time.Duration, error) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("%s: never started", p.Name)
	}
	start := time.Now()
	if !isClosed(done) {
		p.noteRSS(cmd.Process.Pid) // its last high-water mark
		_ = cmd.Process.Signal(sig)
	}
	select {
	case <-done:
		return time.Since(start), p.ExitErr()
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		return time.Since(start), fmt.Errorf("%s did not exit within %s after %s and was killed", p.Name, limit, sig)
	}
}

// Get fetches path from the process's HTTP server and returns the status
// and body.
func (p *Proc) Get(ctx context.Context, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Ready asks /readyz once: the status code and the body in one line.
func (p *Proc) Ready(ctx context.Context) (int, string) {
	code, body, err := p.Get(ctx, "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	return code, compact(body)
}

// WaitReady polls /readyz until it answers 200, the run exits, or ctx ends.
func (p *Proc) WaitReady(ctx context.Context, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last string
	for {
		code, body := p.Ready(ctx)
		if code == http.StatusOK {
			return body, nil
		}
		last = body
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s not ready after %s: %s (log %s)", p.Name, limit, last, p.Log)
		case <-p.Done():
			return "", fmt.Errorf("%s exited: %v (log %s)\n%s", p.Name, p.ExitErr(), p.Log, p.LogTail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Metric sums the samples of a Prometheus counter or gauge on /metrics
// whose labels include every name="value" pair given (none: all samples).
func (p *Proc) Metric(ctx context.Context, name string, labels ...string) (float64, error) {
	code, body, err := p.Get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("%s /metrics: status %d", p.Name, code)
	}
	return sumMetric(body, name, labels...), nil
}

func sumMetric(text, name string, labels ...string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name) || len(line) == len(name) {
			continue
		}
		rest := line[len(name):]
		if rest[0] != ' ' && rest[0] != '{' {
			continue // a longer name with this prefix
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(rest, labels[i]+`="`+labels[i+1]+`"`) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(rest[strings.LastIndexByte(rest, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}

// LogTail returns the last n lines of the log file.
func (p *Proc) LogTail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func compact(body string) string {
	var v any
	if json.Unmarshal([]byte(body), &v) != nil {
		return strings.TrimSpace(body)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
