package check

import (
	"errors"
	"fmt"
	"testing"
)

func TestStall(t *testing.T) {
	wrapped := func(reply string) error { return fmt.Errorf("probe x: PING: %w", RedisError(reply)) }
	tests := []struct {
		name string
		res  Result
		want Stall
	}{
		{"passed", Result{Status: L7OK}, ""},
		{"script running", Result{Status: L7STS, Err: wrapped("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")}, StallBusy},
		{"function running", Result{Status: L7STS, Err: wrapped("BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.")}, StallBusy},
		{"loading", Result{Status: L7STS, Err: wrapped("LOADING Redis is loading the dataset in memory")}, StallLoading},
		{"reply timeout", Result{Status: L7TOUT, Err: errors.New("i/o timeout")}, StallUnresponsive},
		{"connect timeout", Result{Status: L4TOUT, Err: errors.New("i/o timeout")}, StallUnresponsive},
		{"refused", Result{Status: L4CON, Err: errors.New("connection refused")}, ""},
		{"reset while reading", Result{Status: L7RSP, Err: errors.New("connection reset by peer")}, ""},
		{"wrong password", Result{Status: L7STS, Err: wrapped("WRONGPASS invalid username-password pair or user is disabled.")}, ""},
		{"a word that only starts like BUSY", Result{Status: L7STS, Err: wrapped("BUSYKEY Target key name already exists.")}, ""},
		{"too many clients", Result{Status: L7STS, Err: wrapped("ERR max number of clients reached")}, ""},
		{"replica without stale data", Result{Status: L7STS, Err: wrapped("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.")}, ""},
		{"error status without a reply", Result{Status: L7STS, Err: errors.New("odd")}, ""},
		{"out of descriptors", Result{Status: SOCKERR, Err: errors.New("too many open files")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.res.Stall(); got != tt.want {
				t.Fatalf("Stall() = %q, want %q", got, tt.want)
			}
		})
	}
}
