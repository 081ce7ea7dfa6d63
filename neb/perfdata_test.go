package neb

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

func TestExpandPerfdataTemplate(t *testing.T) {
	c := mustConfig(t, "perfdata=yes")
	p := &Perfdata{Kind: KindService, HostName: "h", ServiceDescription: "load", PerfData: "load1=0.5;1;2",
		CheckCommand: "check_load!1!2", Time: time.Unix(1700000000, 0), HostState: 1, HostStateType: 1,
		ServiceState: 2, ServiceStateType: 0}
	got := ExpandPerfdataTemplate(c.ServicePerfdataTemplate, p)
	want := "DATATYPE::SERVICEPERFDATA\tTIMET::1700000000\tHOSTNAME::h\tSERVICEDESC::load\tSERVICEPERFDATA::load1=0.5;1;2\t" +
		"SERVICECHECKCOMMAND::check_load!1!2\tHOSTSTATE::DOWN\tHOSTSTATETYPE::HARD\tSERVICESTATE::CRITICAL\tSERVICESTATETYPE::SOFT"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	p.Kind = KindHost
	got = ExpandPerfdataTemplate(c.HostPerfdataTemplate, p)
	want = "DATATYPE::HOSTPERFDATA\tTIMET::1700000000\tHOSTNAME::h\tHOSTPERFDATA::load1=0.5;1;2\t" +
		"HOSTCHECKCOMMAND::check_load!1!2\tHOSTSTATE::DOWN\tHOSTSTATETYPE::HARD"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestPerfdataModes(t *testing.T) {
	for _, tt := range []struct {
		mode string
		jobs int
	}{{"1", 1}, {"2", 2}} {
		t.Run("mode"+tt.mode, func(t *testing.T) {
			srv := gearmantest.Start(t)
			h := newModule(t, "server="+srv.Addr()+" key="+testKey+" perfdata=pq1,pq2 perfdata_mode="+tt.mode+" result_workers=0", Options{})
			p := &Perfdata{Kind: KindService, HostName: "h", ServiceDescription: "s", PerfData: "x=1", Time: time.Now(),
				ObjectProcessPerfdata: true, GlobalProcessPerfdata: true}
			h.m.Perfdata(p)
			h.m.Perfdata(p)
			noPerf := *p
			noPerf.PerfData = ""
			h.m.Perfdata(&noPerf) // nothing to send
			off := *p
			off.ObjectProcessPerfdata = false
			h.m.Perfdata(&off) // disabled on the object
			waitFor(t, func() bool { return h.m.Stats().Submitted == 4 })
			adm := gearman.NewAdmin(srv.Addr(), gearman.AdminOptions{})
			defer adm.Close()
			ss, err := adm.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range ss {
				if s.Total != tt.jobs {
					t.Errorf("%s holds %d jobs, want %d", s.Name, s.Total, tt.jobs)
				}
			}
			j := grab(t, srv.Addr(), "pq2")
			codec, _ := modgearman.NewCodec(testKey, true)
			plain, err := codec.DecodeRaw(j.Data)
			if err != nil || string(plain) != ExpandPerfdataTemplate(h.m.cfg.ServicePerfdataTemplate, p)+"\n" {
				t.Errorf("payload %q %v", plain, err)
			}
			if tt.mode == "1" && j.Unique != modgearman.Uniq("pq2", "h", "s") {
				t.Errorf("unique %q", j.Unique)
			}
		})
	}
}

// TestPerfdataSubmitFailureNamesTheObject: a perfdata job that cannot be
// submitted is logged with its host and service.
func TestPerfdataSubmitFailureNamesTheObject(t *testing.T) {
	srv := gearmantest.Start(t)
	var logs lockedBuffer
	h := newModule(t, "server="+srv.Addr()+" encryption=no perfdata=yes result_workers=0 gearmand_down_hold=500ms",
		Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), SubmitTimeout: time.Second})
	srv.Stop()
	h.m.Perfdata(&Perfdata{Kind: KindService, HostName: "web1", ServiceDescription: "disk /", PerfData: "used=1",
		ObjectProcessPerfdata: true, GlobalProcessPerfdata: true})
	// Whether the submission failed or waited out gearmand_down_hold, the
	// line names the object.
	waitFor(t, func() bool {
		return strings.Contains(logs.String(), `queue=perfdata host=web1 service="disk /"`)
	})
	if rs := h.out.Take(nil); len(rs) != 0 {
		t.Errorf("a perfdata failure made results %+v", rs)
	}
}
