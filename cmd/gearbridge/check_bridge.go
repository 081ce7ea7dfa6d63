package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// bridgeCheckState is what `check --bridge` keeps between runs: the
// bridge's totals at the last run, so that the next one reports what
// happened since. A bridge that restarted in between (its uptime is
// shorter than the time since the last run, or a total went down) starts
// from zero.
type bridgeCheckState struct {
	Time     time.Time         `json:"time"`
	Uptime   time.Duration     `json:"uptime"`
	Counters map[string]uint64 `json:"counters"`
}

// Counters of the bridge's AdminService that check --bridge reads.
const (
	counterUndecodable = "jobs_undecodable_total"
	counterInvalid     = "jobs_invalid_total"
	counterJobsRefused = "jobs_refused_total"
	counterResRefused  = "results_refused_total"
	counterGmServers   = "gearmand_servers"
	counterGmDown      = "gearmand_unreachable"
)

// bridgeCheckReport is the outcome of one check --bridge, also its JSON
// form.
type bridgeCheckReport struct {
	Bridge              string         `json:"bridge"`
	Version             string         `json:"version,omitempty"`
	Sessions            map[string]int `json:"sessions_per_identity"`
	GearmandServers     uint64         `json:"gearmand_servers"`
	GearmandUnreachable uint64         `json:"gearmand_unreachable"`
	// Since the last run (or the bridge's start).
	Undecodable    uint64 `json:"jobs_undecodable"`
	InvalidJobs    uint64 `json:"jobs_invalid"`
	RefusedResults uint64 `json:"results_refused"`
	SinceStart     bool   `json:"since_bridge_start"`
}

// defaultBridgeStateFile is where check --bridge keeps its totals, one
// file per bridge address.
func defaultBridgeStateFile(addr string) string {
	name := strings.NewReplacer(":", "_", "/", "_", "[", "", "]", "").Replace(addr)
	return filepath.Join(defaultStateDir(), "check-bridge-"+name+".json")
}

// dialAdmin connects to the bridge's AdminService with an admin
// certificate.
func dialAdmin(g *globals) (pb.AdminServiceClient, func(), error) {
	if g.tlsCA == "" || g.tlsCert == "" || g.tlsKey == "" {
		return nil, nil, errors.New("--bridge needs --tls-ca, --tls-cert and --tls-key (an admin certificate)")
	}
	addr, err := bridgeAddr(g.bridge)
	if err != nil {
		return nil, nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	tc, err := certs.ClientTLSConfig(g.tlsCert, g.tlsKey, g.tlsCA, host)
	if err != nil {
		return nil, nil, err
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, nil, err
	}
	return pb.NewAdminServiceClient(cc), func() { cc.Close() }, nil
}

// checkBridge is `check --bridge ADDR` with an admin certificate. Rules,
// worst wins:
//   - the bridge does not answer: CRITICAL;
//   - jobs failed to decode since the last run (the NEB and the bridge
//     disagree on the key): CRITICAL;
//   - no gearmand reachable: CRITICAL; some unreachable: WARNING;
//   - invalid jobs plus refused results since the last run reach -c:
//     CRITICAL, -w: WARNING (0 disables, as in check_gearman);
//   - the sessions of one identity reach -C: CRITICAL, -W: WARNING;
//   - -x and no session at all: CRITICAL.
func checkBridge(ctx context.Context, out io.Writer, admin pb.AdminServiceClient, bridge, stateFile string, o checkOptions, now time.Time) (int, *bridgeCheckReport) {
	st, err := admin.GetStatus(ctx, &pb.GetStatusRequest{})
	if err != nil {
		if isTimeout(err) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return checkTimeout(out, bridge), nil
		}
		fmt.Fprintf(out, "check_gearman CRITICAL - bridge %s: %v\n", bridge, err)
		return stateCritical, nil
	}
	cur := map[string]uint64{}
	for _, c := range st.GetCounters() {
		cur[c.GetName()] = c.GetValue()
	}
	uptime := st.GetUptime().AsDuration()
	prev, stateErr := readBridgeState(stateFile)
	base := map[string]uint64{}
	sinceStart := true
	if prev != nil && now.Sub(prev.Time) < uptime {
		base, sinceStart = prev.Counters, false
	}
	delta := func(name string) uint64 {
		if b := base[name]; b <= cur[name] {
			return cur[name] - b
		}
		return cur[name] // a total went down: the bridge restarted
	}
	rep := &bridgeCheckReport{
		Bridge: bridge, Version: st.GetVersion(), Sessions: map[string]int{},
		GearmandServers: cur[counterGmServers], GearmandUnreachable: cur[counterGmDown],
		Undecodable: delta(counterUndecodable), InvalidJobs: delta(counterInvalid) + delta(counterJobsRefused),
		RefusedResults: delta(counterResRefused), SinceStart: sinceStart,
	}
	for _, s := range st.GetSessions() {
		rep.Sessions[s.GetIdentity()]++
	}
	if err := writeBridgeState(stateFile, bridgeCheckState{Time: now, Uptime: uptime, Counters: cur}); err != nil && stateErr == nil {
		stateErr = err
	}

	state := stateOK
	var msgs []string
	raise := func(s int, msg string) {
		state = max(state, s)
		msgs = append(msgs, msg)
	}
	since := "since the last run"
	if sinceStart {
		since = "since the bridge started"
	}
	if rep.Undecodable > 0 {
		raise(stateCritical, fmt.Sprintf("%d job(s) failed to decode %s: check the key (NEB and bridge must share it).", rep.Undecodable, since))
	}
	switch {
	case rep.GearmandServers > 0 && rep.GearmandUnreachable >= rep.GearmandServers:
		raise(stateCritical, "no gearmand reachable.")
	case rep.GearmandUnreachable > 0:
		raise(stateWarning, fmt.Sprintf("%d of %d gearmand unreachable.", rep.GearmandUnreachable, rep.GearmandServers))
	}
	bad := int(rep.InvalidJobs + rep.RefusedResults)
	switch {
	case o.jobsCrit > 0 && bad >= o.jobsCrit:
		raise(stateCritical, fmt.Sprintf("%d invalid job(s) and %d refused result(s) %s.", rep.InvalidJobs, rep.RefusedResults, since))
	case o.jobsWarn > 0 && bad >= o.jobsWarn:
		raise(stateWarning, fmt.Sprintf("%d invalid job(s) and %d refused result(s) %s.", rep.InvalidJobs, rep.RefusedResults, since))
	}
	identities := make([]string, 0, len(rep.Sessions))
	for id := range rep.Sessions {
		identities = append(identities, id)
	}
	slices.Sort(identities)
	for _, id := range identities {
		n := rep.Sessions[id]
		switch {
		case o.workersCrit > 0 && n >= o.workersCrit:
			raise(stateCritical, fmt.Sprintf("Identity %s has %d sessions.", id, n))
		case o.workersWarn > 0 && n >= o.workersWarn:
			raise(stateWarning, fmt.Sprintf("Identity %s has %d sessions.", id, n))
		}
	}
	if o.noWorkerCrit && len(st.GetSessions()) == 0 {
		raise(stateCritical, "no worker session.")
	}
	if stateErr != nil {
		msgs = append(msgs, fmt.Sprintf("(state file: %v)", stateErr))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "check_gearman %s - ", stateNames[state])
	if state == stateOK {
		fmt.Fprintf(&b, "bridge %s v%s: %d session(s) of %d identit%s, gearmand %d/%d reachable, no job failed to decode %s. ",
			bridge, st.GetVersion(), len(st.GetSessions()), len(identities), map[bool]string{true: "y", false: "ies"}[len(identities) == 1],
			rep.GearmandServers-rep.GearmandUnreachable, rep.GearmandServers, since)
	}
	b.WriteString(strings.Join(msgs, " "))
	fmt.Fprintf(&b, "|sessions=%d;;;0 jobs_undecodable=%d;;;0 jobs_invalid=%d;%d;%d;0 results_refused=%d;;;0 gearmand_unreachable=%d;;;0",
		len(st.GetSessions()), rep.Undecodable, rep.InvalidJobs, o.jobsWarn, o.jobsCrit, rep.RefusedResults, rep.GearmandUnreachable)
	for _, id := range identities {
		fmt.Fprintf(&b, " 'sessions_%s'=%d;%d;%d;0", id, rep.Sessions[id], o.workersWarn, o.workersCrit)
	}
	fmt.Fprintln(out, strings.TrimRight(b.String(), " "))
	return state, rep
}

func readBridgeState(file string) (*bridgeCheckState, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st bridgeCheckState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &st, nil
}

func writeBridgeState(file string, st bridgeCheckState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	return certs.WriteFileAtomic(file, data, 0o600)
}
