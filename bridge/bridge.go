// Package bridge is the gRPC side of gearbridge: it serves remote workers
// (WorkerService), passive-result senders (ResultService) and operators
// (AdminService) over mutual TLS, and translates to and from the classic
// Mod-Gearman queues on gearmand.
//
// Each remote worker session gets its own Gearman worker connection per
// gearmand, registering exactly the queues the session asked for and is
// allowed. A connection grabs a job only while its session has credit (free
// worker slots), so nothing is hoarded and gearmand's balancing between
// classic and remote workers stays real. A job is completed towards gearmand
// only after its result is on the result queue; closing the connection makes
// gearmand requeue whatever was unfinished.
package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// Config is the bridge's configuration. Zero values take the defaults of
// DefaultConfig through withDefaults; Validate only checks.
type Config struct {
	// Servers are the gearmand addresses (host:port). A session holds a
	// worker connection to each, as classic workers do.
	Servers []string
	// Key is the classic payload key; Encryption selects AES (the classic
	// default) or base64 only.
	Key        string
	Encryption bool
	// ResultQueue is used for results of jobs that name none, and for
	// passive results.
	ResultQueue string
	// WorkersMaySend lets worker certificates use ResultService when a
	// sender rule allows their identity. Off by default: a worker's
	// certificate then cannot send passive results.
	WorkersMaySend bool
	// DupServers get a copy of every result, like the classic dupserver
	// option (every entry gets one): passive results as sent, worker
	// results as passive results (the classic dup_results_are_passive=yes).
	DupServers []string
	// ResumeGrace is how long a session outlives its stream, waiting for the
	// worker to reconnect.
	ResumeGrace time.Duration
	// JobTimeout is the plugin timeout for jobs that carry none (event
	// handlers, notifications), like the classic job_timeout.
	JobTimeout time.Duration
	// TimeoutGrace is added to a job's timeout before the bridge gives up on
	// the worker and writes the timeout result itself.
	TimeoutGrace time.Duration
	// TimeoutReturn is the return code of timeout results (0..3).
	TimeoutReturn int
	// MaxMessageBytes bounds every gRPC message the bridge receives.
	MaxMessageBytes int
	// MaxSlots bounds the slots one session may announce.
	MaxSlots int
	// ProbeInterval is how often each gearmand is asked whether it answers
	// (health and outage logging); zero means DefaultProbeInterval.
	ProbeInterval time.Duration
	// SendTimeout bounds one send to a worker: a worker that does not read
	// its stream for that long is detached (and may resume), so that its
	// jobs are not held hostage.
	SendTimeout time.Duration
	// HelloTimeout bounds the wait for a session's first message.
	HelloTimeout time.Duration
	// MaxSessions bounds the worker sessions the bridge holds at once, and
	// MaxSessionsPerIdentity those of one certificate identity. A session
	// counts while attached and while it waits for its worker to resume.
	// Each one holds two gearmand connections per server, so that without
	// a limit one certificate could use up gearmand's connections.
	MaxSessions            int
	MaxSessionsPerIdentity int
	// HandshakeTimeout bounds a new connection's TLS and HTTP/2 setup; a
	// connection that has not completed it by then is closed.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that has carried no call for that
	// long (a worker's session stream keeps its connection busy).
	IdleTimeout time.Duration
	// DrainTimeout bounds graceful shutdown.
	DrainTimeout time.Duration
	// Authz decides who may do what; nil denies everything (or, with
	// AuthzFile, means: load that file).
	Authz *Authz
	// AuthzFile, if set, is the authorization file that Reload reads again.
	AuthzFile string
	// CertsDir, if set, is the CA directory the bridge signs with and keeps
	// enrollment tokens and revocations in. It enables EnrollService, lets
	// clients without a certificate connect (for enrollment only: every
	// other call verifies the client certificate itself; see
	// ServerTLSConfig) and closes sessions of revoked certificates. Deps.TLS
	// is then required.
	CertsDir string
	// RevocationsFile, if set, is a revocation list (certs' revoked.json)
	// for a bridge without CertsDir: revoked certificates and identities
	// are refused and their sessions closed, and the file is watched like
	// the others. With CertsDir the list is CertsDir/revoked.json; this may
	// only name that same file.
	RevocationsFile string
	// CertLifetime is the lifetime of enrolled and renewed certificates;
	// zero is the certs package's default (90 days).
	CertLifetime time.Duration
	// WatchInterval is how often the files Reload reads are checked for
	// changes.
	WatchInterval time.Duration
}

// DefaultConfig returns the defaults: one local gearmand, AES on, results
// to check_results, 30 s resume grace, classic 60 s job timeout.
func DefaultConfig() Config {
	return Config{
		Servers:         []string{"localhost:4730"},
		Encryption:      true,
		ResultQueue:     "check_results",
		ResumeGrace:     30 * time.Second,
		JobTimeout:      60 * time.Second,
		TimeoutGrace:    10 * time.Second, // covers the worker's TERM→KILL grace and a result's round trip
		TimeoutReturn:   2,                // CRITICAL: the classic default, as the C worker and the shipped config files
		MaxMessageBytes: 4 << 20,          // results carry at most 1 MiB of output by default
		MaxSlots:        10000,
		HelloTimeout:    10 * time.Second,
		// A site runs a handful of workers per certificate; 32 leaves room
		// for restarts whose old sessions still wait out their resume
		// grace. 1024 sessions are 2048 connections per gearmand, well
		// within its default limits.
		MaxSessions:            1024,
		MaxSessionsPerIdentity: 32,
		// A TLS 1.3 handshake takes a few round trips; 10 s covers a slow
		// satellite link and frees a connection that never speaks.
		HandshakeTimeout: 10 * time.Second,
		// Senders submit every few seconds to minutes; a connection without
		// a call for 2 minutes (or one that never makes any) is closed, and
		// the client reconnects when it has something to send.
		IdleTimeout:   2 * time.Minute,
		SendTimeout:   30 * time.Second, // far beyond any healthy link's stall, well within a check's timeout
		DrainTimeout:  30 * time.Second,
		WatchInterval: DefaultWatchInterval,
	}
}

// Validate checks the configuration without changing it.
func (c Config) Validate() error {
	var errs []error
	if len(c.Servers) == 0 {
		errs = append(errs, errors.New("server: at least one gearmand is needed"))
	}
	if c.Encryption && c.Key == "" {
		errs = append(errs, errors.New("key: encryption is on but no key is set (set --key or --keyfile, or --encryption=no)"))
	}
	if c.ResultQueue == "" {
		errs = append(errs, errors.New("result-queue: must not be empty"))
	}
	if c.TimeoutReturn < 0 || c.TimeoutReturn > 3 {
		errs = append(errs, fmt.Errorf("timeout-return: %d is not a return code 0..3", c.TimeoutReturn))
	}
	for name, d := range map[string]time.Duration{
		"resume-grace": c.ResumeGrace, "job-timeout": c.JobTimeout, "timeout-grace": c.TimeoutGrace,
		"hello-timeout": c.HelloTimeout, "send-timeout": c.SendTimeout, "drain-timeout": c.DrainTimeout, "watch-interval": c.WatchInterval,
		"handshake-timeout": c.HandshakeTimeout, "idle-timeout": c.IdleTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %v", name, d))
		}
	}
	if c.MaxMessageBytes <= 0 {
		errs = append(errs, fmt.Errorf("max-message-bytes: must be positive, got %d", c.MaxMessageBytes))
	}
	if c.MaxSlots <= 0 {
		errs = append(errs, fmt.Errorf("max-slots: must be positive, got %d", c.MaxSlots))
	}
	if c.MaxSessions <= 0 {
		errs = append(errs, fmt.Errorf("max-sessions: must be positive, got %d", c.MaxSessions))
	}
	if c.MaxSessionsPerIdentity <= 0 {
		errs = append(errs, fmt.Errorf("max-sessions-per-identity: must be positive, got %d", c.MaxSessionsPerIdentity))
	}
	if c.Authz != nil {
		if err := c.Authz.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.CertsDir != "" && c.RevocationsFile != "" && filepath.Clean(c.RevocationsFile) != filepath.Join(c.CertsDir, certs.RevocationsFile) {
		errs = append(errs, fmt.Errorf("revocations: with certs-dir the bridge reads %s; %s would not be the list certs revoke writes",
			filepath.Join(c.CertsDir, certs.RevocationsFile), c.RevocationsFile))
	}
	if c.CertLifetime < 0 {
		errs = append(errs, fmt.Errorf("cert-lifetime: must not be negative, got %v", c.CertLifetime))
	}
	return errors.Join(errs...)
}

// Deps are what the bridge takes from its owner.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Gearman connects the bridge to gearmand; nil uses the real protocol
	// package (tests inject fakes).
	Gearman Gearman
	// Version is reported in status.
	Version string
	// TLS is the bridge's own certificate and CA. Its certificate must
	// carry the bridge role, be for server authentication, be valid and
	// chain to the CA, or New fails. It is reloaded by Reload; a reloaded
	// certificate that fails those checks is refused and the previous one
	// served on (see servedTLS). With Config.CertsDir, it also verifies
	// client certificates per call.
	TLS *certs.Reloader
}

// Bridge serves remote workers and senders.
type Bridge struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	gm      Gearman
	results ResultSubmitter
	dups    []*gearman.Client
	codec   *modgearman.Codec
	health  *health.Server
	started time.Time
	version string

	authzPtr      atomic.Pointer[Authz] // operatorAuthz + enrolledRules
	operatorAuthz atomic.Pointer[Authz]
	enrolledRules atomic.Pointer[Authz]
	enrolledMu    sync.Mutex // serialises writes of enrolled-authz.json

	tlsR    *certs.Reloader
	served  atomic.Pointer[servedTLS]        // what the bridge serves; see servedTLS
	tlsSeen atomic.Pointer[x509.Certificate] // tlsR's certificate when last checked
	tlsMu   sync.Mutex                       // serialises adoptTLS
	rl      *rateLog                         // refusals a peer can provoke at will
	up      *upstream                        // which gearmands are unreachable
	caPtr   atomic.Pointer[certs.CA]         // with CertsDir
	revoked *certs.Revocations               // with CertsDir or RevocationsFile
	tokens  *certs.Tokens                    // with CertsDir
	limiter *rateLimiter
	gates   sleepGates // sessions asleep on gearmand, by queue set

	mu       sync.Mutex
	sessions map[string]*session
	closing  bool

	nextSession atomic.Uint64
	wg          sync.WaitGroup // sessions' goroutines

	srvMu sync.Mutex
	srv   *grpc.Server

	closeOnce sync.Once
	closeErr  error
}

// New builds a bridge. It connects nothing until Serve.
func New(cfg Config, deps Deps) (b *Bridge, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bridge config: %w", err)
	}
	codec, err := modgearman.NewCodec(cfg.Key, cfg.Encryption)
	if err != nil {
		return nil, fmt.Errorf("bridge config: %w", err)
	}
	// The bridge's own certificate first: a bridge that must not serve it
	// starts nothing.
	var served *servedTLS
	if deps.TLS != nil {
		if served, err = loadServedTLS(deps.TLS, cfg.CertsDir != ""); err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gm := deps.Gearman
	if gm == nil {
		gm = NewGearman(cfg.Servers, log)
		defer func() {
			if err != nil {
				_ = gm.Close() // its client's goroutines would outlive New
			}
		}()
	}
	b = &Bridge{
		cfg:      cfg,
		log:      log,
		m:        newMetrics(deps.Registerer),
		gm:       gm,
		codec:    codec,
		health:   health.NewServer(),
		started:  time.Now(),
		version:  deps.Version,
		sessions: map[string]*session{},
	}
	b.results = gm.Results()
	if deps.Registerer != nil {
		deps.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gearbridge_bridge_session_cert_expiry_earliest_timestamp_seconds",
			Help: "Earliest end of validity among the certificates of attached worker sessions (Unix seconds; 0 when none is attached).",
		}, b.earliestSessionExpiry), newIdentitySessions(b))
	}
	for _, d := range cfg.DupServers {
		b.dups = append(b.dups, gearman.NewClient([]string{d}, gearman.ClientOptions{Logger: log}))
	}
	dups := b.dups // b is nil by then when New fails
	defer func() {
		if err != nil {
			for _, d := range dups {
				_ = d.Close()
			}
		}
	}()
	az := cfg.Authz
	if az == nil && cfg.AuthzFile != "" {
		if az, err = LoadAuthz(cfg.AuthzFile); err != nil {
			return nil, fmt.Errorf("bridge config: %w", err)
		}
	}
	if az == nil {
		az = &Authz{}
	}
	b.operatorAuthz.Store(az)
	b.enrolledRules.Store(&Authz{})
	b.tlsR = deps.TLS
	b.rl = newRateLog(rateLogEvery, time.Now)
	b.up = newUpstream(log, len(gm.Servers()), b.setServing)
	b.up.gauge = b.m.gearmandUp
	for _, srv := range gm.Servers() {
		b.m.gearmandUp.WithLabelValues(srv) // 0 until the first probe answers
	}
	if served != nil {
		b.served.Store(served)
		b.tlsSeen.Store(deps.TLS.Leaf())
	}
	b.limiter = newRateLimiter()
	if cfg.CertsDir != "" {
		if deps.TLS == nil {
			return nil, errors.New("bridge: certs-dir needs the bridge's TLS material (Deps.TLS)")
		}
		ca, err := certs.LoadCA(cfg.CertsDir)
		if err != nil {
			return nil, fmt.Errorf("bridge: certs-dir: %w", err)
		}
		b.caPtr.Store(ca)
		if b.revoked, err = ca.Revocations(); err != nil {
			return nil, fmt.Errorf("bridge: certs-dir: %w", err)
		}
		b.tokens = certs.OpenTokens(cfg.CertsDir)
		doc, err := readEnrolled(filepath.Join(cfg.CertsDir, EnrolledAuthzFile))
		if err != nil {
			return nil, fmt.Errorf("bridge: certs-dir: %w", err)
		}
		b.enrolledRules.Store(toAuthz(doc))
	} else if cfg.RevocationsFile != "" {
		if b.revoked, err = certs.LoadRevocations(cfg.RevocationsFile); err != nil {
			return nil, fmt.Errorf("bridge: revocations: %w", err)
		}
		if _, err := os.Stat(cfg.RevocationsFile); errors.Is(err, fs.ErrNotExist) {
			log.Warn("revocation list does not exist (yet); nothing is revoked until gearbridge certs revoke writes it", "file", cfg.RevocationsFile)
		}
	}
	b.applyAuthz()
	return b, nil
}

func (b *Bridge) authz() *Authz { return b.authzPtr.Load() }

// currentCA is the CA the bridge signs enrolled and renewed certificates
// with; Reload replaces it.
func (b *Bridge) currentCA() *certs.CA { return b.caPtr.Load() }

// applyAuthz makes the operator's rules plus the enrolled rules effective.
func (b *Bridge) applyAuthz() {
	op, en := b.operatorAuthz.Load(), b.enrolledRules.Load()
	b.authzPtr.Store(&Authz{Rules: slices.Concat(op.Rules, en.Rules)})
	b.recheckSessions()
}

// SetAuthz replaces the operator's authorization rules, for reloads. Rules
// added by enrollment stay.
func (b *Bridge) SetAuthz(a *Authz) error {
	if err := a.Validate(); err != nil {
		return err
	}
	b.operatorAuthz.Store(a)
	b.applyAuthz()
	return nil
}

// ServerTLSConfig returns the TLS configuration to serve with, built from
// Deps.TLS. Without CertsDir, TLS requires a client certificate and
// verifies it in the handshake. With CertsDir, the handshake also admits
// clients without a certificate, so that they can enroll; every call other
// than Enroll and the health check then verifies the client certificate
// (CA, validity, role, revocation) and is refused with Unauthenticated and
// a logged reason.
//
// Every handshake uses the material last accepted by servedTLS, so that a
// reloaded certificate the bridge must not serve never reaches a client.
func (b *Bridge) ServerTLSConfig() (*tls.Config, error) {
	st := b.servedTLS()
	if st == nil {
		return nil, errors.New("bridge: no TLS material (Deps.TLS)")
	}
	cfg := st.cfg.Clone()
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return b.servedTLS().cfg.GetCertificate(hello)
	}
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		return b.servedTLS().cfg.GetConfigForClient(hello)
	}
	return cfg, nil
}

// maxStreamsPerConn bounds the calls one connection carries at once. A
// worker needs its session stream and now and then a renewal, a sender or
// an operator's tool one call at a time; 16 leaves room and stops one
// connection from opening streams without end.
const maxStreamsPerConn = 16

// ServerOptions returns the gRPC options the bridge needs: TLS (1.3, client
// certificates required — the tls.Config decides) with failed handshakes
// logged and counted, message and stream limits, a bound on connection
// setup, closing idle connections, and keepalive enforcement that lets
// workers behind NAT ping every 20 s.
func (b *Bridge) ServerOptions(tlsConfig *tls.Config) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(handshakeCreds{TransportCredentials: credentials.NewTLS(tlsConfig), b: b}),
		grpc.MaxRecvMsgSize(b.cfg.MaxMessageBytes),
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		// Fixed flow-control windows: gRPC's default estimates the
		// bandwidth-delay product with a PING for every read of data, a
		// write and a read more for each message of a worker. A worker's
		// stream carries small messages; a fixed window bounds what one
		// connection may have unread as well as the estimate does.
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(streamWindow),
		grpc.ConnectionTimeout(b.cfg.HandshakeTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             15 * time.Second, // below the workers' 20 s pings, so none is punished
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: b.cfg.IdleTimeout,
			Time:              30 * time.Second,
			Timeout:           10 * time.Second,
		}),
	}
}

// streamWindow is the flow-control window of each worker stream and
// connection, in both directions (see worker's dial options).
const streamWindow = 1 << 20

// Register adds the bridge's services and the standard health service to s.
func (b *Bridge) Register(s *grpc.Server) {
	pb.RegisterWorkerServiceServer(s, &workerService{b: b})
	pb.RegisterAdminServiceServer(s, &adminService{b: b})
	pb.RegisterResultServiceServer(s, &resultService{b: b})
	if b.cfg.CertsDir != "" {
		pb.RegisterEnrollServiceServer(s, &enrollService{b: b})
	}
	healthpb.RegisterHealthServer(s, b.health)
}

// Serve serves on lis until ctx ends or Shutdown is called, then shuts down
// gracefully. tlsConfig must require and verify client certificates.
func (b *Bridge) Serve(ctx context.Context, lis net.Listener, tlsConfig *tls.Config) error {
	if tlsConfig == nil {
		return errors.New("bridge: serve: a TLS configuration is required")
	}
	s := grpc.NewServer(b.ServerOptions(tlsConfig)...)
	b.Register(s)
	b.srvMu.Lock()
	if b.srv != nil {
		b.srvMu.Unlock()
		return errors.New("bridge: serve called twice")
	}
	b.srv = s
	b.srvMu.Unlock()
	b.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, svc := range []string{pb.WorkerService_ServiceDesc.ServiceName, pb.AdminService_ServiceDesc.ServiceName, pb.ResultService_ServiceDesc.ServiceName} {
		b.health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	}
	b.log.Info("bridge serving", "addr", lis.Addr().String(), "servers", b.cfg.Servers)

	wctx, stopWatch := context.WithCancel(ctx)
	var watchWG sync.WaitGroup
	watchWG.Go(func() { b.watch(wctx) })
	watchWG.Go(func() { b.expireSessions(wctx) })
	watchWG.Go(func() { b.probe(wctx) })
	watchWG.Go(func() { b.watchServedTLS(wctx) })
	defer watchWG.Wait()
	defer stopWatch()

	errc := make(chan error, 1)
	go func() { errc <- s.Serve(lis) }()
	select {
	case err := <-errc:
		_ = b.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), b.cfg.DrainTimeout)
	defer cancel()
	err := b.Shutdown(sctx)
	<-errc
	return err
}

// Shutdown stops the bridge: health goes NOT_SERVING, attached workers are
// told to drain, the bridge waits (bounded by ctx) for their results, then
// closes every session so that gearmand requeues what is unfinished. It may
// be called more than once.
func (b *Bridge) Shutdown(ctx context.Context) error {
	b.closeOnce.Do(func() { b.closeErr = b.shutdown(ctx) })
	return b.closeErr
}

func (b *Bridge) shutdown(ctx context.Context) error {
	b.health.Shutdown() // every service NOT_SERVING
	b.mu.Lock()
	b.closing = true
	sessions := make([]*session, 0, len(b.sessions))
	for _, s := range b.sessions {
		sessions = append(sessions, s)
	}
	b.mu.Unlock()
	b.log.Info("bridge stopping; draining sessions", "sessions", len(sessions))
	for _, s := range sessions {
		s.drain("bridge is shutting down")
	}
	// Wait for in-flight jobs to come back, bounded by ctx.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		busy := 0
		for _, s := range sessions {
			if s.detached() {
				// A stopping bridge cannot take the worker back, so its jobs
				// go back to gearmand now: waiting would only turn them into
				// timeout results for plugins that may never have run.
				s.close("the bridge is shutting down and the worker is away")
				continue
			}
			busy += s.inFlight()
		}
		if busy == 0 {
			break
		}
		select {
		case <-ctx.Done():
			b.log.Warn("drain timed out; unfinished jobs go back to gearmand", "in_flight", busy)
			break wait
		case <-tick.C:
		}
	}
	b.srvMu.Lock()
	srv := b.srv
	b.srvMu.Unlock()
	if srv != nil {
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			srv.Stop()
			<-stopped
		}
	}
	for _, s := range sessions {
		s.close("bridge shut down")
	}
	b.wg.Wait()
	for _, d := range b.dups {
		_ = d.Close()
	}
	err := b.gm.Close()
	b.log.Info("bridge stopped")
	return err
}

// removeSession forgets a closed session.
func (b *Bridge) removeSession(s *session) {
	b.mu.Lock()
	if b.sessions[s.id] == s {
		delete(b.sessions, s.id)
	}
	b.mu.Unlock()
}
