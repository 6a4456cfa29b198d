package h2grpc

import (
	"encoding/base64"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const (
	code0                 = uint32(codes.OK)
	codeInternal          = uint32(codes.Internal)
	codeDeadlineExceeded  = uint32(codes.DeadlineExceeded)
	codeResourceExhausted = uint32(codes.ResourceExhausted)
)

// StatusOf is the status a handler's error becomes: its own when it carries
// one (status.FromError), Canceled or DeadlineExceeded for a context's
// error, Unknown otherwise — as in gRPC-go's server.
func StatusOf(err error) *status.Status {
	if st, ok := status.FromError(err); ok {
		return st
	}
	return status.FromContextError(err)
}

// statusParts splits a handler's error into the trailers' fields.
func statusParts(err error) (code uint32, msg string, details []byte) {
	st := StatusOf(err)
	if p := st.Proto(); p != nil && len(p.Details) > 0 {
		details, _ = proto.Marshal(p)
	}
	return uint32(st.Code()), st.Message(), details
}

var codeStrings [17]string

func init() {
	for i := range codeStrings {
		codeStrings[i] = strconv.Itoa(i)
	}
}

func codeString(c uint32) string {
	if int(c) < len(codeStrings) {
		return codeStrings[c]
	}
	return strconv.FormatUint(uint64(c), 10)
}

// encodeMessage percent-encodes a status message as gRPC's grpc-message
// header carries it: every byte outside printable ASCII, and '%'.
func encodeMessage(msg string) string {
	clean := true
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < ' ' || c > '~' || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return msg
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(msg)+16)
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < ' ' || c > '~' || c == '%' {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// encodeBinary encodes a "-bin" header's value: base64 without padding.
func encodeBinary(v []byte) string { return base64.RawStdEncoding.EncodeToString(v) }
