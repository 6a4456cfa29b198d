package server

import (
	"context"
	"io/fs"
	"path/filepath"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// maintenanceService implements the part of etcd's Maintenance service
// that `etcdctl endpoint status` uses; the rest answers Unimplemented.
type maintenanceService struct {
	pb.UnimplementedMaintenanceServer
	s *Server
}

func (m maintenanceService) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	st, err := m.s.r.Status(ctx)
	if err != nil {
		return nil, toGRPC(ctx, err, false)
	}
	size := m.s.diskBytes()
	resp := &pb.StatusResponse{
		Header:           m.s.header(m.s.sm.kv.Revision()),
		Version:          APIVersion,
		DbSize:           size,
		DbSizeInUse:      size,
		Leader:           uint64(st.Lead),
		RaftIndex:        uint64(st.Commit),
		RaftTerm:         uint64(st.Term),
		RaftAppliedIndex: uint64(st.AppliedIndex),
		StorageVersion:   APIVersion,
	}
	resp.Header.RaftTerm = uint64(st.Term)
	if st.Lead == 0 {
		resp.Errors = []string{"etcdserver: no leader"}
	}
	return resp, nil
}

// diskBytes is the size of the member's log and snapshots on disk (0 for
// an in-memory store): the nearest thing lockstep has to etcd's db size.
func (s *Server) diskBytes() int64 {
	if s.cfg.Store != nil || s.cfg.DataDir == "" {
		return 0
	}
	var n int64
	_ = filepath.WalkDir(s.cfg.DataDir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// clusterService implements MemberList of etcd's Cluster service.
// Membership is fixed at the initial cluster: the changes answer
// Unimplemented.
type clusterService struct {
	pb.UnimplementedClusterServer
	s *Server
}

func (c clusterService) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if r.Linearizable {
		if err := c.s.read(ctx, false, func() error { return nil }); err != nil {
			return nil, err
		}
	}
	resp := &pb.MemberListResponse{Header: c.s.header(0)}
	for _, m := range sortedMembers(c.s.cfg.Members) {
		pm := &pb.Member{ID: uint64(m.ID), PeerURLs: []string{m.PeerURL}}
		// As in etcd, a member that never started has no name or client
		// URLs: they are what it publishes when it starts.
		if a, ok := c.s.sm.published(uint64(m.ID)); ok {
			pm.Name = a.Name
			pm.ClientURLs = a.ClientURLs
		}
		resp.Members = append(resp.Members, pm)
	}
	return resp, nil
}

// Alarm reports no alarms (lockstep raises none) and refuses to set any;
// etcdctl's endpoint health lists alarms.
func (m maintenanceService) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	if r.Action != pb.AlarmRequest_GET {
		return nil, errGRPCBadRequest
	}
	return &pb.AlarmResponse{Header: m.s.header(0)}, nil
}
