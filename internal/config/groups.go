package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/logging"
	"github.com/firstunicorn/messagekit-go/pkg/kafkasecurity"
	"github.com/firstunicorn/messagekit-go/pkg/tlsfiles"
)

// Common holds the settings every binary has (DESIGN.md §5), to embed in a
// binary's config struct. HTTP_ADDR is not here because its default differs
// between binaries.
type Common struct {
	// DatabaseURL is DATABASE_URL, a PostgreSQL URL or keyword/value string.
	DatabaseURL string `envconfig:"DATABASE_URL" default:"postgres://localhost:5432/messagekit" file:"true" desc:"PostgreSQL connection string (URL or keyword=value); TLS with sslmode=verify-full&sslrootcert=<CA file>, sslcert and sslkey for a client certificate; or DATABASE_URL_FILE"`
	// MigrateOnStart is MIGRATE_ON_START: apply migrations before serving.
	MigrateOnStart bool `envconfig:"MIGRATE_ON_START" default:"false" desc:"apply database migrations before serving"`
	// ShutdownTimeout is SHUTDOWN_TIMEOUT, the bound on a graceful shutdown.
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"30s" desc:"time allowed for a graceful shutdown after SIGTERM or SIGINT"`
	// LogLevel is LOG_LEVEL.
	LogLevel logging.Level `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	// Env is MESSAGEKIT_ENV; "production" refuses the localhost defaults.
	Env string `envconfig:"MESSAGEKIT_ENV" default:"" desc:"production: refuse to start while DATABASE_URL, AMQP_URL or KAFKA_BROKERS is unset or points at localhost"`
}

func (c *Common) check() error {
	if c.ShutdownTimeout <= 0 {
		return Invalid("SHUTDOWN_TIMEOUT", c.ShutdownTimeout.String(), "must be positive")
	}
	if _, err := pgconn.ParseConfig(c.DatabaseURL); err != nil {
		// pgconn's message quotes the string with its password masked.
		return &Error{Var: "DATABASE_URL", Redacted: true, Err: err}
	}
	switch c.Env {
	case "", EnvProduction, "development", "test":
	default:
		return Invalid("MESSAGEKIT_ENV", c.Env, "want production, development or test (or unset)")
	}
	return nil
}

// EnvProduction is the MESSAGEKIT_ENV value under which Load refuses the
// localhost defaults of DATABASE_URL, AMQP_URL and KAFKA_BROKERS.
const EnvProduction = "production"

// Kafka holds the Kafka connection settings shared by the binaries that use
// Kafka, to embed in a binary's config struct.
type Kafka struct {
	// KafkaBrokers is KAFKA_BROKERS.
	KafkaBrokers Brokers `envconfig:"KAFKA_BROKERS" default:"localhost:9092" desc:"Kafka bootstrap brokers, comma-separated host:port"`
	// KafkaTLS is KAFKA_TLS: TLS with the system roots.
	KafkaTLS bool `envconfig:"KAFKA_TLS" default:"false" desc:"connect to Kafka with TLS (system roots unless KAFKA_TLS_CA_FILE); any KAFKA_TLS_* file turns it on"`
	// KafkaTLSCAFile is KAFKA_TLS_CA_FILE.
	KafkaTLSCAFile string `envconfig:"KAFKA_TLS_CA_FILE" desc:"PEM bundle of the CAs that sign the brokers' certificates"`
	// KafkaTLSCertFile and KafkaTLSKeyFile are KAFKA_TLS_CERT_FILE and
	// KAFKA_TLS_KEY_FILE, the client certificate for mutual TLS.
	KafkaTLSCertFile string `envconfig:"KAFKA_TLS_CERT_FILE" desc:"PEM client certificate for mutual TLS (with KAFKA_TLS_KEY_FILE)"`
	KafkaTLSKeyFile  string `envconfig:"KAFKA_TLS_KEY_FILE" desc:"PEM private key of KAFKA_TLS_CERT_FILE"`
	// KafkaTLSServerName is KAFKA_TLS_SERVER_NAME.
	KafkaTLSServerName string `envconfig:"KAFKA_TLS_SERVER_NAME" desc:"name the brokers' certificates must carry; empty: the host of each broker address"`
	// KafkaSASLMechanism is KAFKA_SASL_MECHANISM.
	KafkaSASLMechanism string `envconfig:"KAFKA_SASL_MECHANISM" desc:"SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL"`
	// KafkaSASLUsername is KAFKA_SASL_USERNAME.
	KafkaSASLUsername string `envconfig:"KAFKA_SASL_USERNAME" desc:"SASL user name"`
	// KafkaSASLPassword is KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE).
	KafkaSASLPassword Secret `envconfig:"KAFKA_SASL_PASSWORD" desc:"SASL password (secret, never printed); or KAFKA_SASL_PASSWORD_FILE"`
}

// KafkaSecurity returns the TLS and SASL settings of k, for
// kafkasecurity's Apply and NewSarama.
func (k *Kafka) KafkaSecurity() kafkasecurity.Config {
	return kafkasecurity.Config{
		TLS: k.KafkaTLS,
		TLSFiles: tlsfiles.Config{
			CAFile: k.KafkaTLSCAFile, CertFile: k.KafkaTLSCertFile, KeyFile: k.KafkaTLSKeyFile,
			ServerName: k.KafkaTLSServerName,
		},
		Mechanism: k.KafkaSASLMechanism,
		Username:  k.KafkaSASLUsername,
		Password:  k.KafkaSASLPassword.Reveal(),
	}
}

func (k *Kafka) check() error {
	switch m := k.KafkaSASLMechanism; m {
	case "":
		if k.KafkaSASLUsername != "" {
			return Invalid("KAFKA_SASL_MECHANISM", "", "must be set when KAFKA_SASL_USERNAME is: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
		if k.KafkaSASLPassword.IsSet() {
			return Invalid("KAFKA_SASL_MECHANISM", "", "must be set when KAFKA_SASL_PASSWORD is: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
	case kafkasecurity.PLAIN, kafkasecurity.SCRAMSHA256, kafkasecurity.SCRAMSHA512:
		if k.KafkaSASLUsername == "" {
			return &Error{Var: "KAFKA_SASL_USERNAME", Err: fmt.Errorf("must be set with KAFKA_SASL_MECHANISM=%s", m)}
		}
		if !k.KafkaSASLPassword.IsSet() {
			return &Error{Var: "KAFKA_SASL_PASSWORD", Err: fmt.Errorf("must be set (or KAFKA_SASL_PASSWORD_FILE) with KAFKA_SASL_MECHANISM=%s", m)}
		}
	default:
		return Invalid("KAFKA_SASL_MECHANISM", m, "want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (upper case, as Kafka spells them)")
	}
	return checkTLSFiles("KAFKA_TLS_", k.KafkaSecurity().TLSFiles)
}

// AMQP holds the RabbitMQ settings shared by the binaries that use RabbitMQ,
// to embed in a binary's config struct.
type AMQP struct {
	// AMQPURL is AMQP_URL.
	AMQPURL string `envconfig:"AMQP_URL" default:"amqp://guest:guest@localhost:5672/" file:"true" desc:"RabbitMQ URL (amqp:// or amqps:// for TLS); or AMQP_URL_FILE"`
	// AMQPDLX is AMQP_DLX, the dead-letter exchange consumer queues use.
	AMQPDLX string `envconfig:"AMQP_DLX" default:"events.dlx" desc:"dead-letter exchange (durable topic) of consumer queues"`
	// AMQPTLSCAFile is AMQP_TLS_CA_FILE.
	AMQPTLSCAFile string `envconfig:"AMQP_TLS_CA_FILE" desc:"with amqps://: PEM bundle of the CAs that sign RabbitMQ's certificate; empty: the system roots"`
	// AMQPTLSCertFile and AMQPTLSKeyFile are AMQP_TLS_CERT_FILE and
	// AMQP_TLS_KEY_FILE, the client certificate for mutual TLS.
	AMQPTLSCertFile string `envconfig:"AMQP_TLS_CERT_FILE" desc:"with amqps://: PEM client certificate (with AMQP_TLS_KEY_FILE)"`
	AMQPTLSKeyFile  string `envconfig:"AMQP_TLS_KEY_FILE" desc:"with amqps://: PEM private key of AMQP_TLS_CERT_FILE"`
	// AMQPTLSServerName is AMQP_TLS_SERVER_NAME.
	AMQPTLSServerName string `envconfig:"AMQP_TLS_SERVER_NAME" desc:"with amqps://: name RabbitMQ's certificate must carry; empty: the host of AMQP_URL"`

	tls *tls.Config
}

// AMQPTLS returns the TLS configuration of an amqps:// AMQP_URL, built from
// the AMQP_TLS_* files by Load; nil for amqp:// (and before Load).
func (a *AMQP) AMQPTLS() *tls.Config { return a.tls }

func (a *AMQP) check() error {
	if _, err := amqp.ParseURI(a.AMQPURL); err != nil {
		// url.Error quotes the whole URL, password included: keep only
		// the reason, and never print the value.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = fmt.Errorf("not a URL (%v); percent-encode reserved characters in the user name and password", ue.Err)
		}
		return &Error{Var: "AMQP_URL", Redacted: true, Err: err}
	}
	if err := checkURLPort(a.AMQPURL); err != nil {
		return &Error{Var: "AMQP_URL", Redacted: true, Err: err}
	}
	if err := CheckAMQPName("AMQP_DLX", a.AMQPDLX); err != nil {
		return err
	}
	files := tlsfiles.Config{CAFile: a.AMQPTLSCAFile, CertFile: a.AMQPTLSCertFile, KeyFile: a.AMQPTLSKeyFile, ServerName: a.AMQPTLSServerName}
	if !strings.HasPrefix(a.AMQPURL, "amqps://") {
		if !files.IsZero() {
			return &Error{Var: firstSet(map[string]string{"AMQP_TLS_CA_FILE": files.CAFile, "AMQP_TLS_CERT_FILE": files.CertFile,
				"AMQP_TLS_KEY_FILE": files.KeyFile, "AMQP_TLS_SERVER_NAME": files.ServerName}),
				Err: errors.New("is set but AMQP_URL is not amqps://: TLS settings need an amqps:// URL")}
		}
		a.tls = nil
		return nil
	}
	if err := checkTLSFiles("AMQP_TLS_", files); err != nil {
		return err
	}
	tc, err := files.Load()
	if err != nil {
		return &Error{Var: "AMQP_TLS_CA_FILE", Err: err}
	}
	if tc.ServerName == "" {
		// amqp091 would set it on the shared config at every dial.
		if uri, err := amqp.ParseURI(a.AMQPURL); err == nil {
			tc.ServerName = uri.Host
		}
	}
	a.tls = tc
	return nil
}

// firstSet returns the first name, in a fixed order, whose value is set.
func firstSet(vars map[string]string) string {
	for _, suffix := range []string{"CA_FILE", "CERT_FILE", "KEY_FILE", "SERVER_NAME"} {
		for name, v := range vars {
			if strings.HasSuffix(name, suffix) && v != "" {
				return name
			}
		}
	}
	return ""
}

// checkTLSFiles loads files piece by piece so that the error names the
// variable (prefix + CA_FILE, CERT_FILE or KEY_FILE) at fault.
func checkTLSFiles(prefix string, files tlsfiles.Config) error {
	if files.CAFile != "" {
		if _, err := (tlsfiles.Config{CAFile: files.CAFile}).Load(); err != nil {
			return &Error{Var: prefix + "CA_FILE", Err: err}
		}
	}
	switch {
	case files.CertFile != "" && files.KeyFile == "":
		return &Error{Var: prefix + "KEY_FILE", Err: fmt.Errorf("must be set with %sCERT_FILE", prefix)}
	case files.KeyFile != "" && files.CertFile == "":
		return &Error{Var: prefix + "CERT_FILE", Err: fmt.Errorf("must be set with %sKEY_FILE", prefix)}
	case files.CertFile != "":
		if _, err := (tlsfiles.Config{CertFile: files.CertFile, KeyFile: files.KeyFile}).Load(); err != nil {
			return &Error{Var: prefix + "CERT_FILE", Err: err}
		}
	}
	return nil
}

// checkURLPort rejects a URL whose port is not a number from 1 to 65535
// (url.Parse accepts any digits, and a dial to port 99999 fails forever).
func checkURLPort(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return nil // reported by the caller's parser
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("port %s: want a number from 1 to 65535", p)
		}
	}
	return nil
}

// Catalog holds the event catalog settings (DESIGN.md §5, §13) of the
// binaries that validate against one, to embed in a binary's config struct.
// Neither EVENT_CATALOG_PATH nor EVENT_CATALOG_REPO_URL set means no catalog.
type Catalog struct {
	// CatalogPath is EVENT_CATALOG_PATH, a catalog directory.
	CatalogPath string `envconfig:"EVENT_CATALOG_PATH" desc:"event catalog directory (events.toml, services.toml, schemas/), e.g. kept by a git-sync sidecar; reloaded every EVENT_CATALOG_REFRESH_INTERVAL"`
	// CatalogRepoURL is EVENT_CATALOG_REPO_URL, a git repository.
	CatalogRepoURL Secret `envconfig:"EVENT_CATALOG_REPO_URL" desc:"git repository of the event catalog (https://, ssh://, file:// or a local path), read in process; exclusive with EVENT_CATALOG_PATH"`
	// CatalogBranch is EVENT_CATALOG_BRANCH.
	CatalogBranch string `envconfig:"EVENT_CATALOG_BRANCH" default:"main" desc:"branch of EVENT_CATALOG_REPO_URL"`
	// CatalogRefresh is EVENT_CATALOG_REFRESH_INTERVAL.
	CatalogRefresh Interval `envconfig:"EVENT_CATALOG_REFRESH_INTERVAL" default:"3600s" desc:"how often the event catalog is read again (seconds, or a duration such as 5m); a failed read keeps the last good catalog"`
	// CatalogStrict is EVENT_CATALOG_STRICT_MODE.
	CatalogStrict bool `envconfig:"EVENT_CATALOG_STRICT_MODE" default:"false" desc:"true refuses (the bridge dead-letters with stage VALIDATE) events whose type, source or data the catalog does not accept; false counts and logs them"`
}

func (c *Catalog) check() error {
	if c.CatalogPath != "" && c.CatalogRepoURL.IsSet() {
		return &Error{Var: "EVENT_CATALOG_PATH", Err: errors.New("set either EVENT_CATALOG_PATH or EVENT_CATALOG_REPO_URL, not both")}
	}
	if c.CatalogRefresh <= 0 {
		return Invalid("EVENT_CATALOG_REFRESH_INTERVAL", time.Duration(c.CatalogRefresh).String(), "must be positive")
	}
	if c.CatalogRepoURL.IsSet() && c.CatalogBranch == "" {
		return &Error{Var: "EVENT_CATALOG_BRANCH", Err: errEmpty}
	}
	return nil
}
