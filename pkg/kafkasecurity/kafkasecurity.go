package kafkasecurity

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"

	"github.com/firstunicorn/messagekit-go/pkg/tlsfiles"
)

// SASL mechanisms Config accepts, spelled as Kafka and sarama spell them.
const (
	PLAIN       = sarama.SASLTypePlaintext   // "PLAIN"
	SCRAMSHA256 = sarama.SASLTypeSCRAMSHA256 // "SCRAM-SHA-256"
	SCRAMSHA512 = sarama.SASLTypeSCRAMSHA512 // "SCRAM-SHA-512"
)

// Config is how a Kafka client connects. The zero value is plaintext
// without authentication, sarama's default.
type Config struct {
	// TLS turns TLS on with the system roots. Any field of TLSFiles turns
	// it on too.
	TLS bool
	// TLSFiles are the CA bundle, the client certificate and key (mutual
	// TLS) and the server name to expect.
	TLSFiles tlsfiles.Config
	// Mechanism is the SASL mechanism: PLAIN, SCRAM-SHA-256 or
	// SCRAM-SHA-512; empty means no SASL.
	Mechanism string
	// Username and Password are the SASL credentials; both are required
	// with a Mechanism.
	Username string
	Password string
}

// TLSEnabled reports whether c connects with TLS.
func (c Config) TLSEnabled() bool { return c.TLS || !c.TLSFiles.IsZero() }

// Validate reports a Config that cannot work: an unknown mechanism, a
// mechanism without user or password, credentials without a mechanism.
// It reads no file (Apply does).
func (c Config) Validate() error {
	switch c.Mechanism {
	case "":
		if c.Username != "" || c.Password != "" {
			return errors.New("SASL credentials given without a SASL mechanism")
		}
		return nil
	case PLAIN, SCRAMSHA256, SCRAMSHA512:
	default:
		return fmt.Errorf("unknown SASL mechanism %q: want %s, %s or %s", c.Mechanism, PLAIN, SCRAMSHA256, SCRAMSHA512)
	}
	if c.Username == "" {
		return fmt.Errorf("SASL %s needs a user name", c.Mechanism)
	}
	if c.Password == "" {
		return fmt.Errorf("SASL %s needs a password", c.Mechanism)
	}
	return nil
}

// Apply sets sc's Net.TLS and Net.SASL from c and leaves the rest of sc
// alone. It returns Validate's error, or the error of reading the TLS
// files (naming the file, never a key or password).
func (c Config) Apply(sc *sarama.Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.TLSEnabled() {
		tc, err := c.TLSFiles.Load()
		if err != nil {
			return fmt.Errorf("kafka TLS: %w", err)
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if c.Mechanism == "" {
		return nil
	}
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	sc.Net.SASL.Mechanism = sarama.SASLMechanism(c.Mechanism)
	sc.Net.SASL.User = c.Username
	sc.Net.SASL.Password = c.Password
	switch c.Mechanism {
	case SCRAMSHA256:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case SCRAMSHA512:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	}
	return nil
}

// NewSarama returns sarama.NewConfig() with c applied and ClientID set to
// clientID (when not empty).
func (c Config) NewSarama(clientID string) (*sarama.Config, error) {
	sc := sarama.NewConfig()
	if clientID != "" {
		sc.ClientID = clientID
	}
	if err := c.Apply(sc); err != nil {
		return nil, err
	}
	return sc, nil
}

// Describe says how c connects, for error messages and logs, without the
// password: e.g. "TLS on (CA file /etc/kafka/ca.pem), SASL SCRAM-SHA-512 as
// user bridge" or "TLS off, no SASL".
func (c Config) Describe() string {
	var b strings.Builder
	if c.TLSEnabled() {
		b.WriteString("TLS on")
		var parts []string
		if c.TLSFiles.CAFile != "" {
			parts = append(parts, "CA file "+c.TLSFiles.CAFile)
		} else {
			parts = append(parts, "system roots")
		}
		if c.TLSFiles.CertFile != "" {
			parts = append(parts, "client certificate "+c.TLSFiles.CertFile)
		}
		if c.TLSFiles.ServerName != "" {
			parts = append(parts, "server name "+c.TLSFiles.ServerName)
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	} else {
		b.WriteString("TLS off")
	}
	if c.Mechanism == "" {
		b.WriteString(", no SASL")
	} else {
		fmt.Fprintf(&b, ", SASL %s as user %s", c.Mechanism, c.Username)
	}
	return b.String()
}

// Explain wraps a connection error err with what was tried (Describe) and,
// where the error alone says nothing useful, the likely causes: a broker
// closing the connection (EOF) during SASL means wrong credentials, a
// mechanism the listener does not offer or a missing TLS; without TLS it
// may be a TLS listener. It returns nil for a nil err.
func (c Config) Explain(err error) error {
	if err == nil {
		return nil
	}
	hint := ""
	closed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "EOF")
	switch {
	case closed && c.Mechanism != "":
		hint = "; the broker closed the connection: check the SASL user, password and mechanism"
		if !c.TLSEnabled() {
			hint += ", and whether the listener wants TLS (KAFKA_TLS)"
		}
	case closed && !c.TLSEnabled():
		hint = "; the broker closed the connection: a TLS or SASL listener? (KAFKA_TLS, KAFKA_SASL_MECHANISM)"
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		hint = "; check the SASL user and password"
	}
	return &explained{err: err, msg: fmt.Sprintf("%v (kafka with %s%s)", err, c.Describe(), hint)}
}

type explained struct {
	err error
	msg string
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// scramClient is sarama's SCRAMClient on xdg-go/scram.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *scramClient) Begin(user, password, authzID string) error {
	client, err := s.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = client.NewConversation()
	return nil
}

func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }

func (s *scramClient) Done() bool { return s.conv.Done() }
