// Package check probes Redis nodes the way HAProxy's tcp-check does (AUTH, PING, INFO replication) and
// keeps HAProxy's rise/fall health per node. It owns the INFO parser and a minimal RESP reader. It
// imports nothing else of sentinel-proxy and decides nothing about routing.
package check

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Replication is what a node says of itself in INFO replication.
type Replication struct {
	Role                 string // "master" or "slave"
	MasterHost           string // replicas only
	MasterPort           int    // replicas only
	MasterLinkStatus     string // replicas only: "up" or "down"
	MasterSyncInProgress bool   // replicas only: a full sync is running
	ConnectedSlaves      int
	MasterReplID         string
	MasterReplID2        string
	MasterReplOffset     int64
	SlaveReplOffset      int64 // replicas only
	// Replicas are the replicas a master reports (slaveN lines), with their acknowledged offsets and lag.
	Replicas []ReplicaLink
	// ReplBacklogActive is reported for completeness only: synced replicas report 1 too since Redis 4,
	// so it says nothing about being a master.
	ReplBacklogActive bool
}

// ReplicaLink is one replica as its master sees it: "slave0:ip=...,port=...,state=online,offset=...,lag=...".
type ReplicaLink struct {
	Addr   string
	State  string // online, wait_bgsave, send_bulk
	Offset int64
	Lag    int // seconds since the replica's last acknowledgement
}

// Replica returns the link of the replica at addr, if the master lists it.
func (r Replication) Replica(addr string) (ReplicaLink, bool) {
	for _, l := range r.Replicas {
		if l.Addr == addr {
			return l, true
		}
	}
	return ReplicaLink{}, false
}

// IsMaster reports whether the node says it is a master.
func (r Replication) IsMaster() bool { return r.Role == "master" }

// IsSyncedReplica reports whether the node is a replica with a live, fully synced link to its master.
func (r Replication) IsSyncedReplica() bool {
	return r.Role == "slave" && r.MasterLinkStatus == "up" && !r.MasterSyncInProgress
}

// ParseReplication parses the text of `INFO replication` (or a full INFO). Unknown fields are ignored
// so newer Redis versions parse; a reply without a role field is an error, since nothing can be
// decided from it.
func ParseReplication(info string) (Replication, error) {
	var r Replication
	var bad []string
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var err error
		switch key {
		case "role":
			r.Role = value
		case "master_host":
			r.MasterHost = value
		case "master_port":
			r.MasterPort, err = strconv.Atoi(value)
		case "master_link_status":
			r.MasterLinkStatus = value
		case "master_sync_in_progress":
			r.MasterSyncInProgress = value == "1"
		case "connected_slaves":
			r.ConnectedSlaves, err = strconv.Atoi(value)
		case "master_replid":
			r.MasterReplID = value
		case "master_replid2":
			r.MasterReplID2 = value
		case "master_repl_offset":
			r.MasterReplOffset, err = strconv.ParseInt(value, 10, 64)
		case "slave_repl_offset":
			r.SlaveReplOffset, err = strconv.ParseInt(value, 10, 64)
		case "repl_backlog_active":
			r.ReplBacklogActive = value == "1"
		default:
			if strings.HasPrefix(key, "slave") && isDigits(key[len("slave"):]) {
				var link ReplicaLink
				if link, err = parseReplicaLink(value); err == nil {
					r.Replicas = append(r.Replicas, link)
				}
			}
		}
		if err != nil {
			bad = append(bad, key)
		}
	}
	switch {
	case r.Role == "":
		return r, fmt.Errorf("INFO replication: no role field")
	case r.Role != "master" && r.Role != "slave":
		return r, fmt.Errorf("INFO replication: unknown role %q", r.Role)
	case len(bad) > 0:
		return r, fmt.Errorf("INFO replication: malformed %s", strings.Join(bad, ", "))
	}
	return r, nil
}

// parseReplicaLink parses "ip=127.0.0.1,port=7001,state=online,offset=1234,lag=0".
func parseReplicaLink(value string) (ReplicaLink, error) {
	var l ReplicaLink
	var ip, port string
	for _, kv := range strings.Split(value, ",") {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "ip":
			ip = v
		case "port":
			port = v
		case "state":
			l.State = v
		case "offset":
			l.Offset, err = strconv.ParseInt(v, 10, 64)
		case "lag":
			l.Lag, err = strconv.Atoi(v)
		}
		if err != nil {
			return l, err
		}
	}
	if ip == "" || port == "" {
		return l, fmt.Errorf("no ip or port")
	}
	l.Addr = net.JoinHostPort(ip, port)
	return l, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
