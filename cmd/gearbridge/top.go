package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/gearman"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// topOptions are gearman_top's flags (wire contract §6.4).
type topOptions struct {
	hosts    []string
	interval float64
	quiet    bool
	batch    bool
}

func newTopCmd(s streams, g *globals) *cobra.Command {
	o := topOptions{}
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show gearmand queues (like gearman_top) and bridge sessions",
		Long: `Show the queues of one or more gearmand like gearman_top: workers
available, jobs waiting and jobs running per queue. -b prints once (or, with
-i, every interval without clearing the screen). With --bridge and an admin
certificate (--tls-*), also the bridge's remote worker sessions.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			servers, err := normalizeServers(append(append([]string(nil), o.hosts...), g.servers...))
			if err != nil {
				return usageError(err)
			}
			var admin pb.AdminServiceClient
			if g.bridge != "" {
				if g.tlsCA == "" || g.tlsCert == "" || g.tlsKey == "" {
					return usageError(errors.New("top: --bridge needs --tls-ca, --tls-cert and --tls-key (an admin certificate)"))
				}
				addr, err := bridgeAddr(g.bridge)
				if err != nil {
					return usageError(fmt.Errorf("top: %w", err))
				}
				host, _, _ := net.SplitHostPort(addr)
				tc, err := certs.ClientTLSConfig(g.tlsCert, g.tlsKey, g.tlsCA, host)
				if err != nil {
					return usageError(fmt.Errorf("top: %w", err))
				}
				cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
				if err != nil {
					return usageError(fmt.Errorf("top: %w", err))
				}
				defer cc.Close()
				admin = pb.NewAdminServiceClient(cc)
			}
			if len(servers) == 0 {
				servers = []string{"localhost:4730"}
			}
			if o.interval <= 0 {
				return usageError(fmt.Errorf("top: -i must be positive, got %v", o.interval))
			}
			interval := time.Duration(o.interval * float64(time.Second))
			ctx := cmd.Context()
			loop := !o.batch || cmd.Flags().Changed("interval")
			for {
				if !o.batch {
					fmt.Fprint(s.out, "\x1b[H\x1b[2J") // clear the screen
				}
				for _, srv := range servers {
					printTop(ctx, s.out, srv, o.quiet, time.Now())
				}
				if admin != nil {
					printSessions(ctx, s.out, g.bridge, admin)
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
	f.Float64VarP(&o.interval, "interval", "i", 1, "seconds between updates")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "hide queues without workers and jobs")
	f.BoolVarP(&o.batch, "batch", "b", false, "print once, without clearing the screen")
	return cmd
}

// printTop prints one server's block in gearman_top's layout, which scripts
// parse: a header "<time>  -  <host:port>  -  v<version>", then the table
// with the columns Worker Available, Jobs Waiting, Jobs Running.
func printTop(ctx context.Context, out io.Writer, server string, quiet bool, now time.Time) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := gearman.NewAdmin(server, gearman.AdminOptions{})
	defer adm.Close()
	st, err := adm.Status(ctx)
	var version string
	if err == nil {
		version, err = adm.Version(ctx)
	}
	fmt.Fprintf(out, "%s  -  %s  -  v%s\n\n", now.Format("2006-01-02 15:04:05"), server, version)
	if err != nil {
		fmt.Fprintf(out, "%v\n\n", err)
		return
	}
	sort.Slice(st, func(i, j int) bool { return st[i].Name < st[j].Name })
	var rows []gearman.FunctionStatus
	width := len("Queue Name")
	for _, q := range st {
		if quiet && q.Workers == 0 && q.Total == 0 {
			continue
		}
		if q.Name == "dummy" && q.Total == 0 && q.Workers == 0 {
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
		fmt.Fprintf(out, " %-*s |%16d  |%12d  |%12d\n", width, q.Name, q.Workers, q.Waiting(), q.Running)
	}
	fmt.Fprintf(out, "%s\n\n", line)
}

// printSessions prints the bridge's sessions from its AdminService: each
// session's identifier, the certificate identity it belongs to and the
// address its worker connects from.
func printSessions(ctx context.Context, out io.Writer, bridge string, admin pb.AdminServiceClient) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := admin.GetStatus(ctx, &pb.GetStatusRequest{})
	if err != nil {
		fmt.Fprintf(out, "bridge %s: %v\n\n", bridge, err)
		return
	}
	fmt.Fprintf(out, "bridge %s  -  v%s  -  up %v\n\n", bridge, st.GetVersion(), st.GetUptime().AsDuration().Round(time.Second))
	if len(st.GetSessions()) == 0 {
		fmt.Fprint(out, "no worker sessions\n\n")
		return
	}
	// Identifier, identity and peer are as wide as their longest value, so
	// that the columns stay aligned for any name or address.
	wID, wIdentity, wPeer := len("Identifier"), len("Identity"), len("Peer")
	for _, ss := range st.GetSessions() {
		wID = max(wID, len(ss.GetIdentifier()))
		wIdentity = max(wIdentity, len(ss.GetIdentity()))
		wPeer = max(wPeer, len(ss.GetPeer()))
	}
	fmt.Fprintf(out, " %-*s | %-*s | %-*s | %-9s | %5s | %6s | %9s | %9s | %s\n", wID, "Identifier", wIdentity, "Identity", wPeer, "Peer",
		"State", "Slots", "Credit", "In Flight", "Jobs Done", "Queues")
	for _, ss := range st.GetSessions() {
		state := "connected"
		if !ss.GetConnected() {
			state = "detached"
		}
		fmt.Fprintf(out, " %-*s | %-*s | %-*s | %-9s | %5d | %6d | %9d | %9d | %s\n", wID, ss.GetIdentifier(), wIdentity, ss.GetIdentity(),
			wPeer, ss.GetPeer(), state, ss.GetSlots(), ss.GetCredit(), ss.GetInFlight(), ss.GetJobsDone(), strings.Join(ss.GetQueues(), ","))
	}
	fmt.Fprintln(out)
}
