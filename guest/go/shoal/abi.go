// Package shoal is the guest side of the Shoal host ABI v1 (docs/host-abi.md) for
// GOOS=wasip1 GOARCH=wasm modules: Redis key-value and publish, and MySQL queries, on the
// dependencies the WasmApp declares. Only the functions a module calls are imported, and an
// import links only if the app declares its capability. Standard library only.
package shoal

import (
	"fmt"
	"unsafe"
)

// ABIVersion is the host ABI this package speaks.
const ABIVersion = 1

// Code is a negative result of a host function.
type Code int32

// Error codes of ABI v1.
const (
	NotFound       Code = -1
	NoDependency   Code = -2
	Unavailable    Code = -3
	Timeout        Code = -4
	Invalid        Code = -5
	Denied         Code = -6
	Rejected       Code = -7
	TooLarge       Code = -8
	NoResult       Code = -9
	BufferTooSmall Code = -10
	Internal       Code = -11
)

var codeNames = map[Code]string{
	NotFound: "not found", NoDependency: "no such dependency", Unavailable: "unavailable",
	Timeout: "timeout", Invalid: "invalid argument", Denied: "denied", Rejected: "rejected",
	TooLarge: "too large", NoResult: "no result", BufferTooSmall: "buffer too small", Internal: "internal",
}

func (c Code) String() string {
	if name, ok := codeNames[c]; ok {
		return name
	}
	return fmt.Sprintf("code %d", int32(c))
}

// Error is a failed host call: its code and the host's message.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Is makes errors.Is(err, shoal.ErrNotFound) work.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == ""
}

// ErrNotFound is returned by Get for a missing key.
var ErrNotFound = &Error{Code: NotFound}

type lastErrorFunc func(out unsafe.Pointer, outCap uint32) int32
type resultFunc func(out unsafe.Pointer, outCap uint32) int32

func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

func sptr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func fail(code int32, lastError lastErrorFunc) error {
	if Code(code) == NotFound {
		return ErrNotFound
	}
	buf := make([]byte, 1024)
	n := lastError(ptr(buf), uint32(len(buf)))
	if n < 0 {
		n = 0
	}
	return &Error{Code: Code(code), Message: string(buf[:n])}
}

// collect finishes a call that returned length n into buf: fetch it if it did not fit.
func collect(n int32, buf []byte, result resultFunc, lastError lastErrorFunc) ([]byte, error) {
	if n < 0 {
		return nil, fail(n, lastError)
	}
	if int(n) <= len(buf) {
		return buf[:n], nil
	}
	big := make([]byte, n)
	got := result(ptr(big), uint32(n))
	if got < 0 {
		return nil, fail(got, lastError)
	}
	return big[:got], nil
}
