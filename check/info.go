// Package check probes Redis nodes the way HAProxy's tcp-check does (AUTH, PING, INFO replication) and
// keeps HAProxy's rise/fall health per node. It owns the INFO parser and a minimal RESP reader. It
// imports nothing else of sentinel-proxy and decides nothing about routing.
package check

import (
	"fmt"
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
	// ReplBacklogActive is reported for completeness only: synced replicas report 1 too since Redis 4,
	// so it says nothing about being a master.
	ReplBacklogActive bool
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
