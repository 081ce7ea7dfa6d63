package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/buildinfo"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// topOptions are gearman_top's flags (wire contract §6.4).
type topOptions struct {
	hosts    []string
	sHosts   []string // -s, classic gearman_top's other spelling of -H
	interval float64
	quiet    bool
	batch    bool
	version  bool
	output   string
}

func newTopCmd(s streams, g *globals) *cobra.Command {
	o := topOptions{}
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show gearmand queues (like gearman_top) and bridge sessions",
		Long: `Show the queues of one or more gearmand like gearman_top: workers
available, jobs waiting and jobs running per queue. -H (or -s, as classic
gearman_top) names a gearmand and may be repeated. The screen is redrawn
every -i seconds until q is pressed (or Ctrl-C). -b prints once (or, with
-i, every interval without clearing the screen); with -b, --output json
prints one JSON object per interval instead of the tables.

With --bridge and an admin certificate (--tls-*), also the bridge's remote
worker sessions: identifier, certificate identity, peer address, connected
since, state, slots, credit, jobs in flight and done, queues.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.version {
				_, err := fmt.Fprintf(s.out, "gearman_top: version %s\n", buildinfo.Get())
				return err
			}
			switch o.output {
			case "text":
			case "json":
				if !o.batch {
					return usageError(errors.New("top: --output json needs -b (batch mode)"))
				}
			default:
				return usageError(fmt.Errorf("top: --output %q: want text or json", o.output))
			}
			servers, err := normalizeServers(append(append(append([]string(nil), o.hosts...), o.sHosts...), g.servers...))
			if err != nil {
				return usageError(err)
			}
			var admin pb.AdminServiceClient
			if g.bridge != "" {
				a, closeAdmin, err := dialAdmin(g)
				if err != nil {
					return usageError(fmt.Errorf("top: %w", err))
				}
				defer closeAdmin()
				admin = a
			}
			if len(servers) == 0 {
				servers = []string{"localhost:4730"}
			}
			if o.interval <= 0 {
				return usageError(fmt.Errorf("top: -i must be positive, got %v", o.interval))
			}
			interval := time.Duration(o.interval * float64(time.Second))
			ctx := cmd.Context()
			if !o.batch {
				// Interactive: q on stdin ends the loop.
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
				stop := watchKeys(s.in, cancel)
				defer stop()
			}
			loop := !o.batch || cmd.Flags().Changed("interval")
			for {
				snap := takeSnapshot(ctx, servers, g.bridge, admin, time.Now())
				if ctx.Err() != nil && !o.batch {
					return nil // q pressed while the snapshot was taken
				}
				switch {
				case o.output == "json":
					if err := json.NewEncoder(s.out).Encode(snap); err != nil {
						return err
					}
				default:
					if !o.batch {
						fmt.Fprint(s.out, "\x1b[H\x1b[2J") // clear the screen
					}
					snap.print(s.out, o.quiet)
					if !o.batch {
						fmt.Fprint(s.out, "(q to quit)\n")
					}
				}
				if !loop {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&o.hosts, "host", "H", nil, "gearmand `HOST[:PORT]` (repeatable; default localhost:4730)")
	f.StringSliceVarP(&o.sHosts, "server-host", "s", nil, "gearmand `HOST[:PORT]`, the same as -H (classic gearman_top spelling)")
	f.Float64VarP(&o.interval, "interval", "i", 1, "seconds between updates")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "hide queues without workers and jobs")
	f.BoolVarP(&o.batch, "batch", "b", false, "print once, without clearing the screen")
	f.BoolVarP(&o.version, "version", "V", false, "print the version and exit")
	f.StringVarP(&o.output, "output", "o", "text", "with -b: text (gearman_top's tables) or json")
	return cmd
}

// watchKeys reads keys from in and calls quit on q or Q. When in is a
// terminal it is switched to non-canonical mode without echo, so that a
// key counts without Enter, and restored by the returned stop. Ctrl-C
// still ends the program through its signal.
func watchKeys(in io.Reader, quit func()) (stop func()) {
	restore := func() {}
	if f, ok := in.(*os.File); ok {
		restore = keysWithoutEnter(int(f.Fd()))
	}
	// The reader blocks until a key or EOF and cannot be interrupted
	// portably; when neither comes, it ends with the program (as send's
	// stdin reader does).
	go watchQuitKey(in, quit)
	return restore
}

// watchQuitKey calls quit when q or Q is read, and returns then or at EOF.
func watchQuitKey(in io.Reader, quit func()) {
	buf := make([]byte, 64)
	for {
		n, err := in.Read(buf)
		for _, c := range buf[:n] {
			if c == 'q' || c == 'Q' {
				quit()
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// keysWithoutEnter turns off line buffering and echo on the terminal fd,
// if it is one, and returns the function that restores it.
func keysWithoutEnter(fd int) (restore func()) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {} // not a terminal: a pipe or a file
	}
	raw := *old
	raw.Lflag &^= unix.ICANON | unix.ECHO
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return func() {}
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }
}

// topSnapshot is what one interval shows; it is also top's JSON form.
type topSnapshot struct {
	Time    time.Time      `json:"time"`
	Servers []topServer    `json:"servers"`
	Bridge  *topBridgeView `json:"bridge,omitempty"`
}

type topServer struct {
	Server  string     `json:"server"`
	Version string     `json:"version,omitempty"`
	Error   string     `json:"error,omitempty"`
	Queues  []topQueue `json:"queues"`
}

type topQueue struct {
	Name    string `json:"name"`
	Workers int    `json:"workers"`
	Waiting int    `json:"waiting"`
	Running int    `json:"running"`
}

type topBridgeView struct {
	Address  string            `json:"address"`
	Version  string            `json:"version,omitempty"`
	Uptime   string            `json:"uptime,omitempty"`
	Error    string            `json:"error,omitempty"`
	Sessions []topSession      `json:"sessions"`
	Counters map[string]uint64 `json:"counters,omitempty"`
}

type topSession struct {
	Identifier string    `json:"identifier"`
	Identity   string    `json:"identity"`
	Peer       string    `json:"peer"`
	Since      time.Time `json:"connected_since"`
	Connected  bool      `json:"connected"`
	Slots      uint32    `json:"slots"`
	Credit     uint32    `json:"credit"`
	InFlight   uint32    `json:"in_flight"`
	JobsDone   uint64    `json:"jobs_done"`
	Queues     []string  `json:"queues"`
}

// takeSnapshot asks every gearmand and the bridge, if any.
func takeSnapshot(ctx context.Context, servers []string, bridge string, admin pb.AdminServiceClient, now time.Time) topSnapshot {
	snap := topSnapshot{Time: now}
	for _, srv := range servers {
		snap.Servers = append(snap.Servers, serverSnapshot(ctx, srv))
	}
	if admin != nil {
		snap.Bridge = bridgeSnapshot(ctx, bridge, admin)
	}
	return snap
}

func serverSnapshot(ctx context.Context, server string) topServer {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := gearman.NewAdmin(server, gearman.AdminOptions{})
	defer adm.Close()
	ts := topServer{Server: server, Queues: []topQueue{}}
	st, err := adm.Status(ctx)
	if err == nil {
		ts.Version, err = adm.Version(ctx)
	}
	if err != nil {
		ts.Error = err.Error()
		return ts
	}
	sort.Slice(st, func(i, j int) bool { return st[i].Name < st[j].Name })
	for _, q := range st {
		if q.Name == "dummy" && q.Total == 0 && q.Workers == 0 {
			continue
		}
		ts.Queues = append(ts.Queues, topQueue{Name: q.Name, Workers: q.Workers, Waiting: q.Waiting(), Running: q.Running})
	}
	return ts
}

func bridgeSnapshot(ctx context.Context, bridge string, admin pb.AdminServiceClient) *topBridgeView {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v := &topBridgeView{Address: bridge, Sessions: []topSession{}}
	st, err := admin.GetStatus(ctx, &pb.GetStatusRequest{})
	if err != nil {
		v.Error = err.Error()
		return v
	}
	v.Version, v.Uptime = st.GetVersion(), st.GetUptime().AsDuration().Round(time.Second).String()
	v.Counters = map[string]uint64{}
	for _, c := range st.GetCounters() {
		v.Counters[c.GetName()] = c.GetValue()
	}
	for _, ss := range st.GetSessions() {
		v.Sessions = append(v.Sessions, topSession{
			Identifier: ss.GetIdentifier(), Identity: ss.GetIdentity(), Peer: ss.GetPeer(), Since: ss.GetStarted().AsTime(),
			Connected: ss.GetConnected(), Slots: ss.GetSlots(), Credit: ss.GetCredit(), InFlight: ss.GetInFlight(),
			JobsDone: ss.GetJobsDone(), Queues: ss.GetQueues(),
		})
	}
	return v
}

// print writes the snapshot in gearman_top's layout.
func (snap topSnapshot) print(out io.Writer, quiet bool) {
	for _, srv := range snap.Servers {
		printServer(out, srv, quiet, snap.Time)
	}
	if snap.Bridge != nil {
		snap.Bridge.print(out)
	}
}

// printServer prints one server's block in gearman_top's layout, which
// scripts parse: a header "<time>  -  <host:port>  -  v<version>", then the
// table with the columns Worker Available, Jobs Waiting, Jobs Running.
func printServer(out io.Writer, srv topServer, quiet bool, now time.Time) {
	fmt.Fprintf(out, "%s  -  %s  -  v%s\n\n", now.Format("2006-01-02 15:04:05"), srv.Server, srv.Version)
	if srv.Error != "" {
		fmt.Fprintf(out, "%s\n\n", srv.Error)
		return
	}
	var rows []topQueue
	width := len("Queue Name")
	for _, q := range srv.Queues {
		if quiet && q.Workers == 0 && q.Waiting+q.Running == 0 {
			continue
		}
		rows = append(rows, q)
		width = max(width, len(q.Name))
	}
	if len(rows) == 0 {
		fmt.Fprint(out, "no queues found\n\n")
		return
	}
	line := strings.Repeat("-", width+51)
	fmt.Fprintf(out, " %-*s | Worker Available | Jobs Waiting | Jobs Running\n%s\n", width, "Queue Name", line)
	for _, q := range rows {
		fmt.Fprintf(out, " %-*s |%16d  |%12d  |%12d\n", width, q.Name, q.Workers, q.Waiting, q.Running)
	}
	fmt.Fprintf(out, "%s\n\n", line)
}

// printSessions prints the bridge's sessions from its AdminService.
func printSessions(ctx context.Context, out io.Writer, bridge string, admin pb.AdminServiceClient) {
	bridgeSnapshot(ctx, bridge, admin).print(out)
}

// print writes the bridge's session table: each session's identifier, the
// certificate identity it belongs to, the address its worker connects
// from and since when the session exists.
func (v *topBridgeView) print(out io.Writer) {
	if v.Error != "" {
		fmt.Fprintf(out, "bridge %s: %s\n\n", v.Address, v.Error)
		return
	}
	fmt.Fprintf(out, "bridge %s  -  v%s  -  up %s\n\n", v.Address, v.Version, v.Uptime)
	if len(v.Sessions) == 0 {
		fmt.Fprint(out, "no worker sessions\n\n")
		return
	}
	// Identifier, identity and peer are as wide as their longest value, so
	// that the columns stay aligned for any name or address.
	const sinceLayout = "2006-01-02 15:04:05"
	wID, wIdentity, wPeer := len("Identifier"), len("Identity"), len("Peer")
	for _, ss := range v.Sessions {
		wID = max(wID, len(ss.Identifier))
		wIdentity = max(wIdentity, len(ss.Identity))
		wPeer = max(wPeer, len(ss.Peer))
	}
	fmt.Fprintf(out, " %-*s | %-*s | %-*s | %-19s | %-9s | %5s | %6s | %9s | %9s | %s\n", wID, "Identifier", wIdentity, "Identity", wPeer, "Peer",
		"Connected Since", "State", "Slots", "Credit", "In Flight", "Jobs Done", "Queues")
	for _, ss := range v.Sessions {
		state := "connected"
		if !ss.Connected {
			state = "detached"
		}
		fmt.Fprintf(out, " %-*s | %-*s | %-*s | %-19s | %-9s | %5d | %6d | %9d | %9d | %s\n", wID, ss.Identifier, wIdentity, ss.Identity,
			wPeer, ss.Peer, ss.Since.Local().Format(sinceLayout), state, ss.Slots, ss.Credit, ss.InFlight, ss.JobsDone, strings.Join(ss.Queues, ","))
	}
	fmt.Fprintln(out)
}
