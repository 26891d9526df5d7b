package sentinel

import (
	"strings"
	"testing"
	"time"
)

func TestParseEvent(t *testing.T) {
	tests := []struct {
		channel, payload string
		want             Event
		wantErr          string
	}{
		{"+switch-master", "mymaster 127.0.0.1 7000 127.0.0.1 7001",
			Event{MasterName: "mymaster", OldAddr: "127.0.0.1:7000", NewAddr: "127.0.0.1:7001", MasterAddr: "127.0.0.1:7001", Addr: "127.0.0.1:7001", InstanceType: "master"}, ""},
		{"+switch-master", "mymaster ::1 7000 ::1 7001",
			Event{MasterName: "mymaster", OldAddr: "[::1]:7000", NewAddr: "[::1]:7001", MasterAddr: "[::1]:7001", Addr: "[::1]:7001", InstanceType: "master"}, ""},
		{"+sdown", "master mymaster 127.0.0.1 7000",
			Event{InstanceType: "master", MasterName: "mymaster", Addr: "127.0.0.1:7000", MasterAddr: "127.0.0.1:7000"}, ""},
		{"+odown", "master mymaster 127.0.0.1 7000 #quorum 2/2",
			Event{InstanceType: "master", MasterName: "mymaster", Addr: "127.0.0.1:7000", MasterAddr: "127.0.0.1:7000"}, ""},
		{"+sdown", "slave 127.0.0.1:7002 127.0.0.1 7002 @ mymaster 127.0.0.1 7000",
			Event{InstanceType: "slave", MasterName: "mymaster", Addr: "127.0.0.1:7002", MasterAddr: "127.0.0.1:7000"}, ""},
		{"+convert-to-slave", "slave 127.0.0.1:7000 127.0.0.1 7000 @ mymaster 127.0.0.1 7001",
			Event{InstanceType: "slave", MasterName: "mymaster", Addr: "127.0.0.1:7000", MasterAddr: "127.0.0.1:7001"}, ""},
		{"+tilt", "#tilt mode entered", Event{}, ""},
		{"+switch-master", "mymaster 127.0.0.1 7000", Event{}, "want 5 fields"},
		{"+switch-master", "mymaster 127.0.0.1 x 127.0.0.1 7001", Event{}, "bad port"},
		{"+sdown", "slave a 127.0.0.1 7002", Event{}, "without"},
		{"+sdown", "", Event{}, "at least 4"},
		{"+sdown", "master m 127.0.0.1 70000", Event{}, "bad port"},
	}
	for _, tt := range tests {
		got, err := ParseEvent("s:1", tt.channel, tt.payload, time.Time{})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s %q: err = %v, want %q", tt.channel, tt.payload, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", tt.channel, tt.payload, err)
			continue
		}
		tt.want.Sentinel, tt.want.Channel, tt.want.Payload = "s:1", tt.channel, tt.payload
		if got != tt.want {
			t.Errorf("%s %q:\n got %+v\nwant %+v", tt.channel, tt.payload, got, tt.want)
		}
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add("+switch-master", "mymaster 127.0.0.1 7000 127.0.0.1 7001")
	f.Add("+sdown", "slave 127.0.0.1:7002 127.0.0.1 7002 @ mymaster 127.0.0.1 7000")
	f.Add("+odown", "master mymaster 127.0.0.1 7000 #quorum 2/2")
	f.Fuzz(func(t *testing.T, channel, payload string) {
		ev, err := ParseEvent("s", channel, payload, time.Time{})
		if err == nil && channel == "+switch-master" && (ev.OldAddr == "" || ev.NewAddr == "") {
			t.Fatalf("accepted switch without addresses: %+v", ev)
		}
	})
}
