package bridgebench

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    cpuTimes
		wantErr bool
	}{
		{
			name: "plain",
			line: "27842 (cat) R 27840 27840 7258 0 -1 4194304 97 0 0 0 12 34 5 6 20 0 1 0 1660118 3133440 390",
			want: cpuTimes{self: 460 * time.Millisecond, children: 110 * time.Millisecond},
		},
		{
			name: "command name with spaces and parentheses",
			line: "1 (a) b (c)) S 0 1 1 0 -1 4194560 1 2 3 4 100 200 300 400 20 0 1 0 5 6 7",
			want: cpuTimes{self: 3 * time.Second, children: 7 * time.Second},
		},
		{name: "cut short", line: "1 (x) S 0 1 1 0 -1 4194560 1 2 3 4 100", wantErr: true},
		{name: "no command", line: "1 x S 0", wantErr: true},
		{name: "not a number", line: "1 (x) S 0 1 1 0 -1 4194560 1 2 3 4 1x 2 3 4 20", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.line))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStat error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseStat = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadCPUOfSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	// Burn some CPU so that at least one clock tick is counted.
	before, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	after, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after.sub(before).self; d < 0 {
		t.Errorf("CPU went backwards by %v", -d)
	}
}
