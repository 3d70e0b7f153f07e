package storageserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tarnfs/tarn/host/identity"
	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// FuzzRequests feeds a sequence of arbitrary protobuf requests, as they would
// arrive on the wire, to the storage server's handlers (called directly, on a
// fresh server with a memory backend, as a grid member). The server must
// never panic, must answer every failure with a gRPC status error of a
// meaningful code (not Unknown), must never hand its backend a write outside
// the share's declared size, and must never send more than MaxChunk bytes in
// one message or bytes outside the range asked for.
//
// The input is a list of records: op byte, 2-byte big-endian length, that
// many bytes of a marshalled request of the op's type. Upload handles of 1
// byte stand for the n-th handle the server gave out so far, so the fuzzer
// can reach WriteShare, Seal and Abort of real uploads.
func FuzzRequests(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	id := fuzzIdentity(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		runRequests(t, id, in)
	})
}

// fuzzMaxShare bounds shares, so that a ReadShare of MaxRanges whole-share
// ranges stays cheap enough for thousands of runs a second.
const fuzzMaxShare = 4096

// fuzzOps are the request types, indexed by the op byte (mod len).
var fuzzOps = []string{"version", "allocate", "write", "seal", "abort", "read", "list", "readslot", "writeslot", "renew", "advise", "put"}

const (
	opVersion = iota
	opAllocate
	opWrite
	opSeal
	opAbort
	opRead
	opList
	opReadSlot
	opWriteSlot
	opRenew
	opAdvise
	opPut
)

var fuzzID struct {
	sync.Once
	cert *x509.Certificate
	err  error
}

// fuzzIdentity is the client certificate the requests arrive with (made
// once per process: key generation is slow next to a request).
func fuzzIdentity(tb testing.TB) *x509.Certificate {
	fuzzID.Do(func() {
		dir, err := os.MkdirTemp("", "tarn-fuzz-id-")
		if err != nil {
			fuzzID.err = err
			return
		}
		defer os.RemoveAll(dir)
		id, err := identity.Create(dir)
		if err != nil {
			fuzzID.err = err
			return
		}
		c, err := id.TLSCertificate()
		if err != nil {
			fuzzID.err = err
			return
		}
		fuzzID.cert, fuzzID.err = x509.ParseCertificate(c.Certificate[0])
	})
	if fuzzID.err != nil {
		tb.Fatal(fuzzID.err)
	}
	return fuzzID.cert
}

func record(op int, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	out := []byte{byte(op), byte(len(b) >> 8), byte(len(b))}
	return append(out, b...)
}

// fuzzSeeds are well-formed sessions: an upload written, sealed, read and
// leased; another aborted; slots written and read; corruption advised; and
// the edges (offsets near the share's end, a chunk past it, huge offsets).
func fuzzSeeds() [][]byte {
	idx := bytes.Repeat([]byte{7}, storage.StorageIndexSize)
	lease := bytes.Repeat([]byte{9}, LeaseSecretSize)
	data := bytes.Repeat([]byte("share-bytes!"), 10)[:100]
	join := func(rs ...[]byte) []byte { return bytes.Join(rs, nil) }
	return [][]byte{
		join(
			record(opVersion, &pb.GetVersionRequest{}),
			record(opAllocate, &pb.AllocateRequest{StorageIndex: idx, ShareNums: []uint32{0, 1}, ShareSize: 100, LeaseSecret: lease}),
			record(opWrite, &pb.WriteShareRequest{Handle: []byte{0}, Offset: 0, Data: data[:60]}),
			record(opWrite, &pb.WriteShareRequest{Handle: []byte{0}, Offset: 60, Data: data[60:]}),
			record(opSeal, &pb.SealRequest{Handle: []byte{0}}),
			record(opAbort, &pb.AbortRequest{Handle: []byte{1}}),
			record(opRead, &pb.ReadShareRequest{StorageIndex: idx, ShareNum: 0, Ranges: []*pb.ByteRange{{Offset: 0, Length: 10}, {Offset: 95, Length: 50}}}),
			record(opList, &pb.ListSharesRequest{StorageIndex: idx}),
			record(opRenew, &pb.RenewLeaseRequest{StorageIndex: idx, LeaseSecret: lease}),
			record(opAdvise, &pb.AdviseCorruptionRequest{StorageIndex: idx, ShareNum: 0, Reason: "bad\nhash", VerifyCap: "tarn:chk-verify:x"}),
		),
		join(
			record(opWriteSlot, &pb.WriteSlotRequest{StorageIndex: idx, SlotNum: 3, Value: []byte("v1"), LeaseSecret: lease}),
			record(opReadSlot, &pb.ReadSlotRequest{StorageIndex: idx, SlotNum: 3}),
			record(opWriteSlot, &pb.WriteSlotRequest{StorageIndex: idx, SlotNum: 3, ExpectToken: "1", Value: []byte("v2"), LeaseSecret: lease}),
			record(opWriteSlot, &pb.WriteSlotRequest{StorageIndex: idx, SlotNum: 3, ExpectToken: "1", Value: []byte("v3"), LeaseSecret: lease}),
			record(opRenew, &pb.RenewLeaseRequest{StorageIndex: idx, LeaseSecret: lease}),
		),
		join(
			record(opAllocate, &pb.AllocateRequest{StorageIndex: idx, ShareNums: []uint32{5}, ShareSize: 16, LeaseSecret: lease}),
			record(opWrite, &pb.WriteShareRequest{Handle: []byte{0}, Offset: 10, Data: data[:7]}),
			record(opWrite, &pb.WriteShareRequest{Handle: []byte{0}, Offset: 1<<63 - 4, Data: data[:8]}),
			record(opWrite, &pb.WriteShareRequest{Handle: []byte{0}, Offset: -1, Data: data[:1]}),
			record(opRead, &pb.ReadShareRequest{StorageIndex: idx, ShareNum: 5, Ranges: []*pb.ByteRange{{Offset: 1<<62 - 1, Length: 1}}}),
			record(opSeal, &pb.SealRequest{Handle: []byte{0}}),
			record(opSeal, &pb.SealRequest{Handle: []byte{0}}),
		),
		join(
			record(opPut, &pb.PutSharesRequest{StorageIndex: idx, ShareSize: 100, LeaseSecret: lease,
				Shares: []*pb.ShareData{{ShareNum: 2, Data: data}, {ShareNum: 4, Data: data}}}),
			record(opPut, &pb.PutSharesRequest{StorageIndex: idx, ShareSize: 100, LeaseSecret: lease,
				Shares: []*pb.ShareData{{ShareNum: 2, Data: data}}}),
			record(opAllocate, &pb.AllocateRequest{StorageIndex: idx, ShareNums: []uint32{6}, ShareSize: 100, LeaseSecret: lease}),
			record(opPut, &pb.PutSharesRequest{StorageIndex: idx, ShareSize: 100, LeaseSecret: lease,
				Shares: []*pb.ShareData{{ShareNum: 6, Data: data}, {ShareNum: 7, Data: data[:99]}}}),
			record(opPut, &pb.PutSharesRequest{StorageIndex: idx, ShareSize: 1 << 40, LeaseSecret: lease,
				Shares: []*pb.ShareData{{ShareNum: 1, Data: data}}}),
			record(opRead, &pb.ReadShareRequest{StorageIndex: idx, ShareNum: 2, Ranges: []*pb.ByteRange{{Offset: 0, Length: 100}}}),
		),
	}
}

// runRequests runs one fuzz input against a fresh server.
func runRequests(t *testing.T, cert *x509.Certificate, in []byte) {
	be := &checkedBackend{Backend: storagememory.NewLimit(1 << 20)}
	srv, err := New(Config{Backend: be, MaxShareSize: fuzzMaxShare, MaxUploadsPerClient: 8, IdleTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{State: tlsStateOf(cert)}})
	ctx = metadata.NewIncomingContext(ctx, metadata.MD{})

	var handles [][]byte
	handle := func(h []byte) []byte {
		if len(h) == 1 && len(handles) > 0 {
			return handles[int(h[0])%len(handles)]
		}
		return h
	}
	for step := 0; len(in) >= 3 && step < 64; step++ {
		op := int(in[0]) % len(fuzzOps)
		n := int(binary.BigEndian.Uint16(in[1:3]))
		in = in[3:]
		n = min(n, len(in))
		body := in[:n]
		in = in[n:]
		name := fmt.Sprintf("step %d (%s)", step, fuzzOps[op])
		var err error
		switch op {
		case opVersion:
			var req pb.GetVersionRequest
			if proto.Unmarshal(body, &req) != nil {
				continue
			}
			_, err = srv.GetVersion(ctx, &req)
		case opAllocate:
			var req pb.AllocateRequest
			if proto.Unmarshal(body, &req) != nil {
				continue
			}
			var resp *pb.AllocateResponse
			if resp, err = srv.Allocate(ctx, &req); err == nil {
				for _, a := range resp.Allocated {
					handles = append(handles, a.Handle)
				}
			}
		case opWrite:
			var req pb.WriteShareRequest
			if proto.Unmarshal(body, &req) != nil {
				continue
			}
			req.Handle = handle(req.Handle)
			err = srv.WriteShare(&writeStream{ctx: ctx, reqs: []*pb.WriteShareRequest{&req}})
			if req.Offset < 0 || req.Offset > math.MaxInt64-int64(len(req.Data)) || req.Offset+int64(len(req.Data)) > fuzzMaxShare {
				// Past any share this server allows: must be refused.
				if err == nil {
					t.Fatalf("%s: a write of %d bytes at %d was accepted", name, len(req.Data), req.Offset)
				}
			}
		case opSeal:
			var req pb.SealRequest
			if proto.Unmarshal(body, &req) != nil {
				continue
			}
			req.Handle = handle(req.Handle)
			_, err = srv.Seal(ctx, &req)
		case opAbort:
			var req pb.AbortRequest
			if proto.Unmarshal(body, &req) != nil {
				continue
			}
			req.Handle = handle(req.Handle)
			_, err = srv.Abort(ctx, &req)
		case opRead:
			var req pb.ReadShareRequest
			if proto.Unmarshal(body, &req) != nil {
				continue
			}
			rs := &readStream{ctx: ctx}
			if err = srv.ReadShare(&req, rs); err == nil {
				checkRead(t, name, &req, rs.sent)
			}
		case opList:
			var req pb.ListSharesRequest
			if proto.Unmarshal(body, &req) != nil {
				continue
			}
			_, err = srv.ListShares(ctx, &req)
		case opReadSlot:
			var req pb.ReadSlotRequest
			if proto.Unmarshal(body, &req) != nil {
				continue
			}
			_, err = srv.ReadSlot(ctx, &req)
		case opWriteSlot:
			var req pb.WriteSlotRequest
			if proto.Unmarshal(body, &req) != nil {
				continue
			}
			_, err = srv.WriteSlot(ctx, &req)
		case opRenew:
			var req pb.RenewLeaseRequest
			if proto.Unmarshal(body, &req) != nil {
				continue
			}
			_, err = srv.RenewLease(ctx, &req)
		case opAdvise:
			var req pb.AdviseCorruptionRequest
			if proto.Unmarshal(body, &req) != nil {
				continue
			}
			_, err = srv.AdviseCorruption(ctx, &req)
		case opPut:
			var req pb.PutSharesRequest
			if proto.Unmarshal(body, &req) != nil {
				continue
			}
			var resp *pb.PutSharesResponse
			resp, err = srv.PutShares(ctx, &req)
			if err == nil && (req.ShareSize > fuzzMaxShare || len(resp.Stored)+len(resp.AlreadyHave)+len(resp.InProgress) != len(req.Shares)) {
				t.Fatalf("%s: put of %d shares of %d bytes answered %v", name, len(req.Shares), req.ShareSize, resp)
			}
		}
		if err != nil {
			st, ok := status.FromError(err)
			if !ok || st.Code() == codes.Unknown || st.Code() == codes.OK {
				t.Fatalf("%s: error is not a gRPC status with a code: %T %v", name, err, err)
			}
		}
		if e := be.violation(); e != nil {
			t.Fatalf("%s: %v", name, e)
		}
	}
}

// checkRead checks a ReadShare answer: chunks of at most MaxChunk bytes,
// each inside the range it answers.
func checkRead(t *testing.T, name string, req *pb.ReadShareRequest, sent []*pb.ReadShareResponse) {
	for _, m := range sent {
		if len(m.Data) > MaxChunk {
			t.Fatalf("%s: sent %d bytes in one message, limit %d", name, len(m.Data), MaxChunk)
		}
		if len(m.Data) == 0 {
			continue
		}
		if int(m.Range) >= len(req.Ranges) {
			t.Fatalf("%s: answer for range %d of %d", name, m.Range, len(req.Ranges))
		}
		r := req.Ranges[m.Range]
		if m.Offset < r.Offset || m.Offset+int64(len(m.Data)) > r.Offset+r.Length || m.Offset+int64(len(m.Data)) > m.ShareSize {
			t.Fatalf("%s: sent %d bytes at %d for range %d+%d of a %d-byte share", name, len(m.Data), m.Offset, r.Offset, r.Length, m.ShareSize)
		}
	}
}

// checkedBackend records any write the server lets through outside the
// size it created the share with: the server must refuse those itself.
type checkedBackend struct {
	storage.Backend
	mu  sync.Mutex
	bad error
}

func (b *checkedBackend) Create(ctx context.Context, ref storage.Ref, size int64) (storage.Writer, error) {
	w, err := b.Backend.Create(ctx, ref, size)
	if err != nil {
		return w, err
	}
	return &checkedWriter{Writer: w, b: b, ref: ref, size: size}, nil
}

func (b *checkedBackend) violation() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bad
}

type checkedWriter struct {
	storage.Writer
	b    *checkedBackend
	ref  storage.Ref
	size int64
}

func (w *checkedWriter) WriteAt(ctx context.Context, p []byte, off int64) error {
	// No write outside the share may reach the backend: writeChunk once
	// let an offset near 1<<63 through, as its sum with the length
	// wrapped negative (the seed below keeps that case).
	if off < 0 || off > w.size || int64(len(p)) > w.size-off {
		w.b.mu.Lock()
		if w.b.bad == nil {
			w.b.bad = fmt.Errorf("server passed the backend a write of %d bytes at %d to share %s of %d bytes", len(p), off, w.ref, w.size)
		}
		w.b.mu.Unlock()
	}
	return w.Writer.WriteAt(ctx, p, off)
}

// writeStream is a client stream that delivers reqs, then io.EOF.
type writeStream struct {
	grpc.ServerStream
	ctx  context.Context
	reqs []*pb.WriteShareRequest
	resp *pb.WriteShareResponse
}

func (s *writeStream) Context() context.Context { return s.ctx }

func (s *writeStream) Recv() (*pb.WriteShareRequest, error) {
	if len(s.reqs) == 0 {
		return nil, io.EOF
	}
	r := s.reqs[0]
	s.reqs = s.reqs[1:]
	return r, nil
}

func (s *writeStream) SendAndClose(r *pb.WriteShareResponse) error {
	if s.resp != nil {
		return errors.New("SendAndClose called twice")
	}
	s.resp = r
	return nil
}

// readStream is a server stream that keeps what is sent.
type readStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent []*pb.ReadShareResponse
}

func (s *readStream) Context() context.Context { return s.ctx }

func (s *readStream) Send(m *pb.ReadShareResponse) error {
	// Keep the framing only: the handler reuses its data buffer (gRPC has
	// marshalled each message by the time Send returns).
	s.sent = append(s.sent, &pb.ReadShareResponse{Range: m.Range, Offset: m.Offset, ShareSize: m.ShareSize, Data: m.Data[:len(m.Data):len(m.Data)]})
	return nil
}

// tlsStateOf is the TLS state of a link from the holder of cert, as the
// handlers see it.
func tlsStateOf(cert *x509.Certificate) tls.ConnectionState {
	return tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert}}
}
