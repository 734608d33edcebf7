package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/stack"
)

// progressLine prints stack.Progress: rewritten in place on a terminal,
// else a line every five seconds (for logs and CI).
type progressLine struct {
	obs      *stack.Observer
	terminal bool
	last     time.Time
	shown    bool
}

func newProgressLine(obs *stack.Observer) *progressLine {
	fi, err := os.Stdout.Stat()
	return &progressLine{obs: obs, terminal: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

func (l *progressLine) show(ctx context.Context) {
	if !l.terminal && time.Since(l.last) < 5*time.Second {
		return
	}
	l.print(ctx)
}

// end prints the latest figures and ends the line.
func (l *progressLine) end(ctx context.Context) {
	l.print(ctx)
	if l.terminal && l.shown {
		fmt.Println()
	}
	l.shown = false
}

func (l *progressLine) print(ctx context.Context) {
	l.last = time.Now()
	p, err := l.obs.Progress(ctx)
	text := p.String()
	if err != nil {
		text = "progress: " + err.Error()
	}
	if l.terminal {
		fmt.Printf("\r\033[K%s", text)
		l.shown = true
	} else {
		fmt.Println(text)
	}
}

// replayAll replays every pending dead letter with the admin API's bulk
// replay, the README's curl.
func replayAll(ctx context.Context, addr, token string) (int, error) {
	total := 0
	for {
		body := bytes.NewBufferString(`{"status":"pending","limit":10000}`)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/dead-letters/replay", body)
		if err != nil {
			return total, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return total, err
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return total, fmt.Errorf("replay: %s: %s", resp.Status, b)
		}
		var out struct {
			Count int `json:"replayed_count"`
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return total, fmt.Errorf("replay answer %s: %w", b, err)
		}
		total += out.Count
		if out.Count < 10000 {
			return total, nil
		}
	}
}
