package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/modgearman"
)

// perlCheck is a Monitoring::Plugin check that says whether it ran in the
// embedded Perl server (its parent is the server) or as a process.
const perlCheck = `#!/usr/bin/perl
# nagios: +epn
use strict;
use warnings;
use Monitoring::Plugin;
my $np = Monitoring::Plugin->new(usage => 'Usage: %s --state N --id N', shortname => 'E2E');
$np->add_arg(spec => 'state=i', help => 'state', default => 0);
$np->add_arg(spec => 'id=i', help => 'id', default => 0);
$np->getopts;
open(my $fh, '<', "/proc/" . getppid() . "/cmdline") or die "ppid: $!";
my $parent = do { local $/; <$fh> };
my $how = $parent =~ /Gearbridge::EPN/ ? 'embedded' : 'executed';
$np->add_perfdata(label => 'id', value => $np->opts->id);
$np->plugin_exit($np->opts->state, "$how id=" . $np->opts->id . "\nlong line " . $np->opts->id);
`

// TestEmbeddedPerlThroughBridge: a remote worker with --embedded-perl runs
// a Monitoring::Plugin check marked "# nagios: +epn" in its Perl server,
// for checks that come from gearmand through the bridge, and reports
// results identical to an executed run apart from the marker; a copy
// marked -epn runs as a process. The worker's metrics count the embedded
// runs.
func TestEmbeddedPerlThroughBridge(t *testing.T) {
	if out, err := exec.Command("perl", "-MMonitoring::Plugin", "-e", "1").CombinedOutput(); err != nil {
		t.Skipf("SKIP: perl with Monitoring::Plugin is needed (apt-get install perl libmonitoring-plugin-perl): %v %s", err, out)
	}
	c := newCluster(t)
	epn := filepath.Join(c.dir, "check_epn.pl")
	noepn := filepath.Join(c.dir, "check_noepn.pl")
	writeFile(t, epn, perlCheck, 0o755)
	writeFile(t, noepn, strings.Replace(perlCheck, "+epn", "-epn", 1), 0o755)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := lis.Addr().String()
	_ = lis.Close()

	_, baddr := c.startBridge("bridge", "127.0.0.1:0")
	w := c.startWorker("w1", baddr, "--services", "--max-workers", "4", "--embedded-perl", "--metrics-listen", metricsAddr)
	c.waitLog(w, `session started`, 20*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const checks = 40
	for i := range checks {
		plugin := epn
		if i%10 == 9 {
			plugin = noepn
		}
		c.submit(ctx, "service", modgearman.Job{
			Type: modgearman.JobService, TargetQueue: "service", ResultQueue: "check_results",
			HostName: fmt.Sprintf("host%04d", i), ServiceDescription: "perl", Timeout: 30 * time.Second,
			CommandLine: fmt.Sprintf("%s --state %d --id %d", plugin, i%4, i),
		})
	}
	embedded := 0
	for _, r := range c.collect("check_results", checks, 2*time.Minute) {
		id := idOf(t, r.HostName)
		how := "embedded"
		if id%10 == 9 {
			how = "executed"
		} else {
			embedded++
		}
		state := []string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[id%4]
		want := fmt.Sprintf("E2E %s - %s id=%d\nlong line %d | id=%d;;", state, how, id, id, id)
		if r.ReturnCode != id%4 || r.Output != want || r.ServiceDescription != "perl" || !strings.HasSuffix(r.Source, "w1") {
			t.Errorf("%d: rc %d %q from %q, want rc %d %q", id, r.ReturnCode, r.Output, r.Source, id%4, want)
		}
	}
	rx := regexp.MustCompile(`(?m)^gearbridge_worker_epn_checks_total (\d+)$`)
	body := scrape(t, "http://"+metricsAddr+"/metrics")
	if m := rx.FindStringSubmatch(body); m == nil || m[1] != fmt.Sprint(embedded) {
		t.Errorf("gearbridge_worker_epn_checks_total: %v, want %d\n%s", m, embedded, grepLines(body, "epn"))
	}
	if !strings.Contains(body, "gearbridge_worker_epn_server_starts_total 1\n") {
		t.Errorf("want one Perl server start:\n%s", grepLines(body, "epn"))
	}
}
