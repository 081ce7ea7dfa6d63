package neb

import (
	"slices"
	"testing"
)

func TestIgnoredOptions(t *testing.T) {
	for _, tt := range []struct {
		name, args string
		want       []string
	}{
		{"off", "latency_flatten_window=0", nil},
		{"classic default", "", []string{
			"latency_flatten_window=30 is not supported: checks are not rescheduled to flatten latency (set it to 0 to silence this warning)"}},
		{"all", "notifications=yes export=q1:0:NEBCALLBACK_LOG_DATA export=q2:1:7 latency_flatten_window=10", []string{
			"export=q1:0:NEBCALLBACK_LOG_DATA is not supported: no export jobs are sent",
			"export=q2:1:7 is not supported: no export jobs are sent",
			"latency_flatten_window=10 is not supported: checks are not rescheduled to flatten latency (set it to 0 to silence this warning)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseBrokerArgs("server=localhost encryption=no "+tt.args, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if got := c.IgnoredOptions(); !slices.Equal(got, tt.want) {
				t.Errorf("IgnoredOptions() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}
