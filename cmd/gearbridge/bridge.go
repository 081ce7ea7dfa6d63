package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gearbridge/gearbridge/bridge"
	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/internal/buildinfo"
	"github.com/gearbridge/gearbridge/internal/certwatch"
	"github.com/gearbridge/gearbridge/internal/config"
)

// bridgeOptions is the bridge's YAML configuration; keys are spelled like
// the flags.
type bridgeOptions struct {
	// CPUProfile is a hidden flag for benchmarks: write a pprof CPU
	// profile of the whole run to this file.
	CPUProfile      string        `mapstructure:"cpuprofile"`
	Servers         []string      `mapstructure:"server"`
	DupServers      []string      `mapstructure:"dupserver"`
	WorkersMaySend  bool          `mapstructure:"workers-may-send"`
	Key             string        `mapstructure:"key" oneof:"key"`
	KeyFile         string        `mapstructure:"keyfile" oneof:"key"`
	Encryption      bool          `mapstructure:"encryption"`
	Listen          string        `mapstructure:"listen"`
	TLSCA           string        `mapstructure:"tls-ca"`
	TLSCert         string        `mapstructure:"tls-cert"`
	TLSKey          string        `mapstructure:"tls-key"`
	Authz           string        `mapstructure:"authz"`
	CertsDir        string        `mapstructure:"certs-dir"`
	Revocations     string        `mapstructure:"revocations"`
	CertLifetime    time.Duration `mapstructure:"cert-lifetime"`
	ResultQueue     string        `mapstructure:"result-queue"`
	ResumeGrace     time.Duration `mapstructure:"resume-grace"`
	JobTimeout      time.Duration `mapstructure:"job-timeout"`
	TimeoutGrace    time.Duration `mapstructure:"timeout-grace"`
	TimeoutReturn   int           `mapstructure:"timeout-return"`
	DrainTimeout    time.Duration `mapstructure:"drain-timeout"`
	SendTimeout     time.Duration `mapstructure:"send-timeout"`
	MaxMessageBytes int           `mapstructure:"max-message-bytes"`
	MaxSessions     int           `mapstructure:"max-sessions"`
	MaxSessionsPer  int           `mapstructure:"max-sessions-per-identity"`
	MetricsListen   string        `mapstructure:"metrics-listen"`
	LogLevel        string        `mapstructure:"log-level"`
	LogFormat       string        `mapstructure:"log-format"`
}

// loadBridgeOptions returns the defaults overlaid with the config file (if
// any), GEARBRIDGE_* variables and the flags set in fs.
func loadBridgeOptions(fs *pflag.FlagSet, file string) (bridgeOptions, error) {
	d := bridge.DefaultConfig()
	opts := bridgeOptions{
		Servers:         []string{"localhost:4730"},
		Encryption:      true,
		Listen:          ":4731",
		ResultQueue:     d.ResultQueue,
		ResumeGrace:     d.ResumeGrace,
		JobTimeout:      d.JobTimeout,
		TimeoutGrace:    d.TimeoutGrace,
		TimeoutReturn:   d.TimeoutReturn,
		DrainTimeout:    d.DrainTimeout,
		SendTimeout:     d.SendTimeout,
		MaxMessageBytes: d.MaxMessageBytes,
		MaxSessions:     d.MaxSessions,
		MaxSessionsPer:  d.MaxSessionsPerIdentity,
		LogLevel:        "info",
		LogFormat:       "text",
	}
	err := config.Load(&opts, file, fs)
	return opts, err
}

func newBridgeCmd(s streams, g *globals) *cobra.Command {
	d := bridge.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "bridge",
		Short: "Serve remote workers and senders over mutual-TLS gRPC",
		Long: `Serve remote workers over mutual-TLS gRPC and translate to and from the
classic Mod-Gearman queues on gearmand.

Every identity needs a rule in the --authz file; without one everything is
denied. For a single-tenant setup:

  rules:
    - {identity: "*", role: worker, queues: ["*"]}
    - {identity: "*", role: sender, hosts: ["*"]}
    - {identity: "*", role: admin}

A worker's identifier (its worker_<identifier> status queue, the name in its
results) is its certificate identity; a worker rule's identifiers: [globs]
lets the identities it matches use other names. --max-sessions-per-identity
and --max-sessions bound the sessions (each holds two gearmand connections
per server); one over the limit is refused with ResourceExhausted.

--certs-dir DIR makes the bridge the enrollment point of the CA in DIR
(gearbridge certs init): workers and senders enroll with one-time tokens
(gearbridge certs token) and renew their certificates over their connection.
The --tls-* files default to DIR/ca.crt, DIR/bridge.crt and DIR/bridge.key.
Revocations (gearbridge certs revoke) take effect within a second: revoked
certificates are refused and their sessions closed. Without --certs-dir, pass
the CA's revocation list with --revocations DIR/revoked.json; otherwise
nothing is ever revoked.

SIGHUP, and any change of the certificate, CA, revocation or --authz files,
reloads them without dropping sessions. The bridge's own certificate must
have the bridge role, be for server authentication, chain to --tls-ca and be
valid: otherwise the bridge does not start, and a reload keeps the previous
certificate and logs why.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.Bool("workers-may-send", false, "let worker certificates send passive results when a sender rule names them")
	f.StringSlice("dupserver", nil, "gearmand `HOST[:PORT]` that gets a copy of every result, worker results as passive ones (repeatable)")
	f.String("authz", "", "authorization rules `FILE` (YAML); without it everything is denied")
	f.String("certs-dir", "", "CA `DIR`ectory to enroll, renew and revoke with (see gearbridge certs)")
	f.String("revocations", "", "revocation list `FILE` (the CA's revoked.json) for a bridge without --certs-dir; watched like the other files")
	f.Duration("cert-lifetime", 0, "lifetime of enrolled and renewed certificates (default 90 days)")
	f.String("result-queue", d.ResultQueue, "result queue for jobs that name none")
	f.Duration("resume-grace", d.ResumeGrace, "how long a session waits for its worker to reconnect")
	f.Duration("job-timeout", d.JobTimeout, "plugin timeout for jobs that carry none")
	f.Duration("timeout-grace", d.TimeoutGrace, "added to a job's timeout before the bridge writes the timeout result itself")
	f.Int("timeout-return", d.TimeoutReturn, "return code of timeout results: 0 OK, 1 WARNING, 2 CRITICAL (the classic default), 3 UNKNOWN")
	f.Duration("drain-timeout", d.DrainTimeout, "bound on graceful shutdown")
	f.Duration("send-timeout", d.SendTimeout, "detach a worker whose stream takes no message for this long (it may resume)")
	f.Int("max-message-bytes", d.MaxMessageBytes, "largest gRPC message accepted")
	f.Int("max-sessions", d.MaxSessions, "most worker sessions the bridge holds at once (each holds two gearmand connections per server)")
	f.Int("max-sessions-per-identity", d.MaxSessionsPerIdentity, "most worker sessions of one certificate identity, disconnected ones waiting to resume included")
	f.String("metrics-listen", "", "serve Prometheus metrics on `ADDR` (/metrics)")
	f.String("cpuprofile", "", "write a CPU profile of the run to `FILE` (for benchmarks)")
	_ = f.MarkHidden("cpuprofile")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		opts, err := loadBridgeOptions(cmd.Flags(), g.configFile)
		if err != nil {
			return usageError(err)
		}
		if opts.CPUProfile != "" {
			stop, err := startCPUProfile(opts.CPUProfile)
			if err != nil {
				return err
			}
			defer stop()
		}
		log, err := (&globals{logLevel: opts.LogLevel, logFormat: opts.LogFormat}).logger(s.err)
		if err != nil {
			return err
		}
		cfg, err := opts.bridgeConfig()
		if err != nil {
			return usageError(err)
		}
		if err := cfg.Validate(); err != nil {
			return usageError(fmt.Errorf("bridge config: %w", err))
		}
		if opts.CertsDir != "" {
			opts.TLSCA = cmp.Or(opts.TLSCA, filepath.Join(opts.CertsDir, certs.CACertFile))
			opts.TLSCert = cmp.Or(opts.TLSCert, filepath.Join(opts.CertsDir, "bridge.crt"))
			opts.TLSKey = cmp.Or(opts.TLSKey, filepath.Join(opts.CertsDir, "bridge.key"))
		}
		if opts.TLSCA == "" || opts.TLSCert == "" || opts.TLSKey == "" {
			return usageError(errors.New("bridge: --tls-ca, --tls-cert and --tls-key (or --certs-dir) are required (see gearbridge certs init and certs issue)"))
		}
		tlsReloader, err := certs.NewReloader(opts.TLSCert, opts.TLSKey, opts.TLSCA)
		if err != nil {
			return usageError(fmt.Errorf("bridge TLS: %w", err))
		}

		reg := processRegistry()
		b, err := bridge.New(cfg, bridge.Deps{Logger: log, Registerer: reg, Version: buildinfo.Get().Version, TLS: tlsReloader})
		if err != nil {
			return usageError(err)
		}
		tlsConfig, err := b.ServerTLSConfig()
		if err != nil {
			return usageError(err)
		}
		lis, err := net.Listen("tcp", opts.Listen)
		if err != nil {
			return fmt.Errorf("bridge: listen: %w", err)
		}
		ctx := cmd.Context()
		defer certwatch.Start(ctx, certwatch.Reloaded(tlsReloader), log, reg)()
		if opts.MetricsListen != "" {
			stop, err := serveMetrics(opts.MetricsListen, reg)
			if err != nil {
				_ = lis.Close()
				return err
			}
			defer stop()
		}
		// SIGHUP reloads the certificates and the authorization rules
		// without dropping sessions.
		defer onSIGHUP(func() {
			if err := b.Reload(); err != nil {
				log.Error("reload on SIGHUP", "err", err)
			} else {
				log.Info("reloaded TLS material, CA, revocations and authz rules")
			}
		})()
		return b.Serve(ctx, lis, tlsConfig)
	}
	return cmd
}

// bridgeConfig turns the options into the package's Config.
func (o bridgeOptions) bridgeConfig() (bridge.Config, error) {
	cfg := bridge.DefaultConfig()
	servers, err := normalizeServers(o.Servers)
	if err != nil {
		return cfg, err
	}
	dups, err := normalizeServers(o.DupServers)
	if err != nil {
		return cfg, err
	}
	cfg.DupServers = dups
	cfg.WorkersMaySend = o.WorkersMaySend
	key, err := resolveKey(o.Key, o.KeyFile)
	if err != nil {
		return cfg, err
	}
	cfg.Servers = servers
	cfg.Key = key
	cfg.Encryption = o.Encryption
	cfg.ResultQueue = o.ResultQueue
	cfg.ResumeGrace = o.ResumeGrace
	cfg.JobTimeout = o.JobTimeout
	cfg.TimeoutGrace = o.TimeoutGrace
	cfg.TimeoutReturn = o.TimeoutReturn
	cfg.DrainTimeout = o.DrainTimeout
	cfg.SendTimeout = o.SendTimeout
	cfg.MaxMessageBytes = o.MaxMessageBytes
	cfg.MaxSessions = o.MaxSessions
	cfg.MaxSessionsPerIdentity = o.MaxSessionsPer
	if o.Authz != "" {
		az, err := bridge.LoadAuthz(o.Authz)
		if err != nil {
			return cfg, err
		}
		cfg.Authz = az
		cfg.AuthzFile = o.Authz
	}
	cfg.CertsDir = o.CertsDir
	cfg.RevocationsFile = o.Revocations
	cfg.CertLifetime = o.CertLifetime
	return cfg, nil
}

// startCPUProfile writes a CPU profile to file until stop is called.
func startCPUProfile(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// processRegistry is the Prometheus registry of a long-running command,
// with the Go runtime and process collectors.
func processRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// serveMetrics serves reg on addr until the returned stop is called.
func serveMetrics(addr string, reg *prometheus.Registry) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
