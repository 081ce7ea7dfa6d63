package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// fakeAdmin answers GetStatus with a fixed response.
type fakeAdmin struct{ resp *pb.GetStatusResponse }

func (f fakeAdmin) GetStatus(context.Context, *pb.GetStatusRequest, ...grpc.CallOption) (*pb.GetStatusResponse, error) {
	return f.resp, nil
}

// TestTopShowsIdentityIdentifierAndPeer: top's session table names each
// session's identifier, the certificate identity behind it and the peer's
// address, in aligned columns however long they are.
func TestTopShowsIdentityIdentifierAndPeer(t *testing.T) {
	resp := &pb.GetStatusResponse{
		Version: "1.2.3",
		Uptime:  durationpb.New(90 * time.Second),
		Sessions: []*pb.SessionStatus{
			{Identifier: "site-a-1", Identity: "site-a", Peer: "192.0.2.10:51234", Connected: true, Slots: 8, Credit: 5, InFlight: 3, JobsDone: 42, Queues: []string{"hostgroup_site_a", "service"}},
			{Identifier: "site-a-2", Identity: "site-a", Peer: "[2001:db8::1]:60000", Connected: false, Slots: 4, Queues: []string{"hostgroup_site_a"}},
		},
	}
	var out bytes.Buffer
	printSessions(context.Background(), &out, "bridge:4731", fakeAdmin{resp})
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	var header string
	var rows []string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "Identifier"):
			header = l
		case strings.Contains(l, "site-a-"):
			rows = append(rows, l)
		}
	}
	if header == "" || len(rows) != 2 {
		t.Fatalf("no header or not two rows:\n%s", out.String())
	}
	for _, col := range []string{"Identifier", "Identity", "Peer", "State", "Slots", "Credit", "In Flight", "Jobs Done", "Queues"} {
		if !strings.Contains(header, col) {
			t.Errorf("header lacks %q: %s", col, header)
		}
	}
	want := [][]string{
		{"site-a-1", "site-a", "192.0.2.10:51234", "connected", "8", "5", "3", "42", "hostgroup_site_a,service"},
		{"site-a-2", "site-a", "[2001:db8::1]:60000", "detached", "4", "0", "0", "0", "hostgroup_site_a"},
	}
	for i, row := range rows {
		cells := strings.Split(row, "|")
		if len(cells) != len(want[i]) {
			t.Fatalf("row %q has %d cells, want %d", row, len(cells), len(want[i]))
		}
		for j, c := range cells {
			if strings.TrimSpace(c) != want[i][j] {
				t.Errorf("row %d cell %d = %q, want %q", i, j, strings.TrimSpace(c), want[i][j])
			}
		}
	}
	// Columns line up: every '|' of the rows sits under one of the header.
	for _, row := range rows {
		for i, r := range row {
			if r == '|' && (i >= len(header) || header[i] != '|') {
				t.Fatalf("columns do not line up:\n%s\n%s", header, row)
			}
		}
	}
}
