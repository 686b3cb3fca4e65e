package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseBehaviour(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		want    behaviour
		wantErr string
	}{
		{name: "defaults", want: behaviour{port: 80, version: "dev", healthy: true}},
		{name: "everything", env: map[string]string{"PORT": "8080", "VERSION": "1.9.1", "READY": "false", "READY_AFTER": "3m",
			"CRASH_AFTER": "2s", "ERROR_RATE": "0.2", "LATENCY": "300ms"},
			want: behaviour{port: 8080, version: "1.9.1", readyAfter: 3 * time.Minute, crashAfter: 2 * time.Second, errorRate: 0.2, latency: 300 * time.Millisecond}},
		{name: "crash at start", env: map[string]string{"CRASH_AFTER": "start"}, want: behaviour{port: 80, version: "dev", healthy: true, crashStart: true}},
		{name: "never ready", env: map[string]string{"READY": "never"}, want: behaviour{port: 80, version: "dev", healthy: true, never: true}},
		{name: "bad values are all reported", env: map[string]string{"PORT": "http", "READY": "soon", "ERROR_RATE": "20%", "LATENCY": "slow"},
			wantErr: `PORT="http"|READY="soon"|ERROR_RATE="20%"|LATENCY="slow"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBehaviour(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("want an error naming %s, got none", tc.wantErr)
				}
				for _, part := range strings.Split(tc.wantErr, "|") {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not name %s", err, part)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFailingSpreadsTheRate(t *testing.T) {
	for _, rate := range []float64{0, 0.001, 0.2, 0.5, 1} {
		failed := 0
		for n := uint64(0); n < 1000; n++ {
			if failing(n, rate) {
				failed++
			}
		}
		if want := int(1000 * rate); failed != want {
			t.Errorf("rate %v: %d of 1000 failed, want %d", rate, failed, want)
		}
	}
	// evenly: at a 20% rate no window of 5 requests holds more than one failure
	for n := uint64(0); n < 100; n++ {
		in := 0
		for i := n; i < n+5; i++ {
			if failing(i, 0.2) {
				in++
			}
		}
		if in != 1 {
			t.Fatalf("requests %d..%d hold %d failures, want 1", n, n+4, in)
		}
	}
}
