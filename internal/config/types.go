package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// ListenAddr is an address to listen on, host:port, where host may be empty
// (all interfaces), a name or an IP, and port is a number from 0 to 65535
// (0 picks a free port). Its Decode method validates.
type ListenAddr string

// Decode sets a from s, or returns an error saying what form is wanted.
func (a *ListenAddr) Decode(s string) error {
	if strings.TrimSpace(s) == "" {
		return errEmpty
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port, e.g. :9090 or 127.0.0.1:9090")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || port == "" || n > 65535 {
		return fmt.Errorf("port %q: want a number from 0 to 65535", port)
	}
	*a = ListenAddr(s)
	return nil
}

// String returns the address as given.
func (a ListenAddr) String() string { return string(a) }

// Brokers is a non-empty, comma-separated list of Kafka broker addresses,
// each host:port with a non-empty host and a port from 1 to 65535. Spaces
// around entries are ignored. Its Decode method validates.
type Brokers []string

// Decode sets b from s. It returns an error for an empty list, an empty
// entry or an entry that is not host:port.
func (b *Brokers) Decode(s string) error {
	entries, err := splitList(s)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.ContainsAny(e, " \t\r\n") {
			return fmt.Errorf("broker %q has a space in it: separate brokers with commas", e)
		}
		host, port, err := net.SplitHostPort(e)
		if err != nil || host == "" {
			return fmt.Errorf("broker %q: want host:port", e)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("broker %q: want a port from 1 to 65535", e)
		}
	}
	*b = entries
	return nil
}

// String joins the list with commas, as it is written in the environment.
func (b Brokers) String() string { return strings.Join(b, ",") }

// List is a non-empty, comma-separated list of names (topics, queues,
// binding keys). Spaces around entries are ignored; an empty entry is an
// error. Its Decode method validates.
type List []string

// Decode sets l from s, or returns an error for an empty list or entry.
func (l *List) Decode(s string) error {
	entries, err := splitList(s)
	if err != nil {
		return err
	}
	*l = entries
	return nil
}

// String joins the list with commas, as it is written in the environment.
func (l List) String() string { return strings.Join(l, ",") }

func splitList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errEmpty
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
		if parts[i] == "" {
			return nil, fmt.Errorf("entry %d is empty", i+1)
		}
	}
	return parts, nil
}

// Secret is a string that must not be printed: String, GoString,
// MarshalText and LogValue return a placeholder, Load never puts its value in an error, and
// usage output shows no default for it. Use Reveal where the value is needed.
type Secret string

const redacted = "[REDACTED]"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s != "" }

// String returns a placeholder, never the value.
func (s Secret) String() string { return redacted }

// GoString returns a placeholder, never the value (for %#v).
func (s Secret) GoString() string { return redacted }

// MarshalText returns a placeholder, never the value, so encoding/json and
// similar encoders cannot print it either.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue returns a placeholder, never the value, so slog cannot log it.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// Interval is a duration given as a number of seconds ("3600", the Python
// messagekit's form) or as a Go duration ("1h", "90s").
type Interval time.Duration

// Decode sets i from s.
func (i *Interval) Decode(s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		return errEmpty
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		*i = Interval(time.Duration(n * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want seconds (3600) or a duration (1h, 90s)")
	}
	*i = Interval(d)
	return nil
}

// String returns the interval as a Go duration.
func (i Interval) String() string { return time.Duration(i).String() }
