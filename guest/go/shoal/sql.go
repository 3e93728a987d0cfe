package shoal

import (
	"encoding/binary"
	"encoding/json"
	"unsafe"
)

//go:wasmimport shoal:sql query
func sqlQuery(dep unsafe.Pointer, depLen uint32, sql unsafe.Pointer, sqlLen uint32, params unsafe.Pointer, paramsLen uint32, out unsafe.Pointer, outCap uint32) int32

//go:wasmimport shoal:sql execute
func sqlExecute(dep unsafe.Pointer, depLen uint32, sql unsafe.Pointer, sqlLen uint32, params unsafe.Pointer, paramsLen uint32, out unsafe.Pointer) int32

//go:wasmimport shoal:sql result
func sqlResult(out unsafe.Pointer, outCap uint32) int32

//go:wasmimport shoal:sql last_error
func sqlLastError(out unsafe.Pointer, outCap uint32) int32

// SQL is a mysql dependency of the app. Statements use `?` placeholders bound to params
// (nil, bool, numbers, strings); each call is its own autocommit statement.
type SQL struct{ Dep string }

func encodeParams(params []any) ([]byte, error) {
	if len(params) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, &Error{Code: Invalid, Message: err.Error()}
	}
	return raw, nil
}

// QueryJSON runs a query and returns its rows as the host's JSON (an array of objects).
func (s SQL) QueryJSON(sql string, params ...any) ([]byte, error) {
	raw, err := encodeParams(params)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	n := sqlQuery(sptr(s.Dep), uint32(len(s.Dep)), sptr(sql), uint32(len(sql)), ptr(raw), uint32(len(raw)), ptr(buf), uint32(len(buf)))
	return collect(n, buf, sqlResult, sqlLastError)
}

// Query runs a query and decodes its rows (numbers as json.Number).
func (s SQL) Query(sql string, params ...any) ([]map[string]any, error) {
	raw, err := s.QueryJSON(sql, params...)
	if err != nil {
		return nil, err
	}
	var rows []map[string]any
	if err := json.Unmarshal(raw, &rows); err != nil {
		return nil, &Error{Code: Internal, Message: err.Error()}
	}
	return rows, nil
}

// Execute runs a statement and returns the affected rows and the last insert id.
func (s SQL) Execute(sql string, params ...any) (affected, lastInsertID int64, err error) {
	raw, err := encodeParams(params)
	if err != nil {
		return 0, 0, err
	}
	var out [16]byte
	n := sqlExecute(sptr(s.Dep), uint32(len(s.Dep)), sptr(sql), uint32(len(sql)), ptr(raw), uint32(len(raw)), unsafe.Pointer(&out))
	if n < 0 {
		return 0, 0, fail(n, sqlLastError)
	}
	return int64(binary.LittleEndian.Uint64(out[:8])), int64(binary.LittleEndian.Uint64(out[8:])), nil
}
