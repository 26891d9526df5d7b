package check

import (
	"strings"
	"testing"
)

const masterInfo = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=127.0.0.1,port=7001,state=online,offset=1234,lag=0\r\n" +
	"master_failover_state:no-failover\r\nmaster_replid:aaaa\r\nmaster_replid2:0000000000000000000000000000000000000000\r\n" +
	"master_repl_offset:1234\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:1\r\nrepl_backlog_size:1048576\r\n"

const replicaInfo = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:7000\r\nmaster_link_status:up\r\n" +
	"master_last_io_seconds_ago:0\r\nmaster_sync_in_progress:0\r\nslave_read_repl_offset:1234\r\nslave_repl_offset:1200\r\n" +
	"slave_priority:100\r\nslave_read_only:1\r\nreplica_announced:1\r\nconnected_slaves:0\r\nmaster_replid:aaaa\r\n" +
	"master_repl_offset:1234\r\nrepl_backlog_active:1\r\n"

func TestParseReplication(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
		master  bool
		synced  bool
		check   func(t *testing.T, r Replication)
	}{
		{name: "master", in: masterInfo, master: true, check: func(t *testing.T, r Replication) {
			if r.ConnectedSlaves != 2 || r.MasterReplOffset != 1234 || r.MasterReplID != "aaaa" {
				t.Errorf("fields: %+v", r)
			}
			if l, ok := r.Replica("127.0.0.1:7001"); !ok || l.State != "online" || l.Offset != 1234 || l.Lag != 0 {
				t.Errorf("replica link: %+v %v", l, ok)
			}
		}},
		{name: "synced replica", in: replicaInfo, synced: true, check: func(t *testing.T, r Replication) {
			if r.MasterHost != "127.0.0.1" || r.MasterPort != 7000 || r.SlaveReplOffset != 1200 {
				t.Errorf("fields: %+v", r)
			}
			// The seed's HAProxy check trusted this flag to tell masters apart; replicas set it too.
			if !r.ReplBacklogActive || r.IsMaster() {
				t.Errorf("repl_backlog_active must not make a replica a master: %+v", r)
			}
		}},
		{name: "replica with link down", in: strings.Replace(replicaInfo, "master_link_status:up", "master_link_status:down", 1)},
		{name: "replica syncing", in: strings.Replace(replicaInfo, "master_sync_in_progress:0", "master_sync_in_progress:1", 1)},
		{name: "LF only line endings", in: "role:master\nmaster_repl_offset:5\n", master: true},
		{name: "no role", in: "# Replication\r\nconnected_slaves:0\r\n", wantErr: "no role"},
		{name: "empty", in: "", wantErr: "no role"},
		{name: "sentinel role", in: "role:sentinel\r\n", wantErr: "unknown role"},
		{name: "bad number", in: "role:slave\r\nmaster_port:abc\r\n", wantErr: "malformed master_port"},
		{name: "bad replica line", in: "role:master\r\nslave0:ip=1.2.3.4,port=1,lag=x\r\n", wantErr: "malformed slave0"},
		{name: "garbage lines", in: "hello\r\n:::\r\nrole:master\r\n", master: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseReplication(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.IsMaster() != tt.master || r.IsSyncedReplica() != tt.synced {
				t.Errorf("master=%v synced=%v, want %v %v (%+v)", r.IsMaster(), r.IsSyncedReplica(), tt.master, tt.synced, r)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func FuzzParseReplication(f *testing.F) {
	f.Add(masterInfo)
	f.Add(replicaInfo)
	f.Add("role:slave\r\nmaster_port:99999999999999999999\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		r, err := ParseReplication(in)
		if err == nil && r.Role != "master" && r.Role != "slave" {
			t.Fatalf("accepted role %q", r.Role)
		}
	})
}
