package server

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// gogoMessage is what the generated code of go.etcd.io/etcd/api gives every
// message: its own size, marshal and unmarshal functions.
type gogoMessage interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
	Unmarshal([]byte) error
	Reset()
}

// codec is the server's gRPC codec. It speaks the same protobuf wire format
// as gRPC's default codec, but calls the etcd API types' generated
// marshalling code directly: the default codec reaches it through
// protobuf-go's reflection wrapper for legacy messages, which costs more
// than the encoding itself and grows every new stream's goroutine stack.
// Messages without generated code fall back to the default codec.
type codec struct {
	fallback encoding.CodecV2
}

func newCodec() codec {
	return codec{fallback: encoding.GetCodecV2("proto")}
}

func (codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(gogoMessage)
	if !ok {
		return c.fallback.Marshal(v)
	}
	size := m.Size()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if err := marshalInto(m, buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if err := marshalInto(m, *buf); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// marshalInto encodes m into buf, which is exactly m.Size() bytes long.
func marshalInto(m gogoMessage, buf []byte) error {
	n, err := m.MarshalToSizedBuffer(buf)
	if err != nil {
		return err
	}
	if n != len(buf) {
		return fmt.Errorf("server: marshalling %T: wrote %d bytes of %d", m, n, len(buf))
	}
	return nil
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(gogoMessage)
	if !ok {
		return c.fallback.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	m.Reset()
	// The generated Unmarshal copies bytes fields out of its input, so
	// the buffer can go back to the pool.
	return m.Unmarshal(buf.ReadOnlyData())
}
