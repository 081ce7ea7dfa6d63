package buildinfo

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(Info{Version: "1.2.3", Commit: "abc1234"}.Collector())
	want := `# HELP gearbridge_build_info Always 1; labelled with the version and commit of the running gearbridge build.
# TYPE gearbridge_build_info gauge
gearbridge_build_info{commit="abc1234",version="1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
