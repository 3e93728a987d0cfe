package shoal

import (
	"time"
	"unsafe"
)

//go:wasmimport shoal:redis get
func redisGet(dep unsafe.Pointer, depLen uint32, key unsafe.Pointer, keyLen uint32, out unsafe.Pointer, outCap uint32) int32

//go:wasmimport shoal:redis set
func redisSet(dep unsafe.Pointer, depLen uint32, key unsafe.Pointer, keyLen uint32, value unsafe.Pointer, valueLen uint32, ttlMs int64) int32

//go:wasmimport shoal:redis del
func redisDel(dep unsafe.Pointer, depLen uint32, key unsafe.Pointer, keyLen uint32) int32

//go:wasmimport shoal:redis exists
func redisExists(dep unsafe.Pointer, depLen uint32, key unsafe.Pointer, keyLen uint32) int32

//go:wasmimport shoal:redis incr
func redisIncr(dep unsafe.Pointer, depLen uint32, key unsafe.Pointer, keyLen uint32, delta int64, out unsafe.Pointer) int32

//go:wasmimport shoal:redis publish
func redisPublish(dep unsafe.Pointer, depLen uint32, channel unsafe.Pointer, channelLen uint32, msg unsafe.Pointer, msgLen uint32) int32

//go:wasmimport shoal:redis result
func redisResult(out unsafe.Pointer, outCap uint32) int32

//go:wasmimport shoal:redis last_error
func redisLastError(out unsafe.Pointer, outCap uint32) int32

// Redis is a redis dependency of the app, by the name it has in spec.dependencies.
// Keys are this app's own; "@other/key" reads key "key" of app "other" if "other" lists
// this app in capabilities.shareKeysWith (read-only).
type Redis struct{ Dep string }

func (r Redis) fail(code int32) error { return fail(code, redisLastError) }

// Get returns the value of key, or ErrNotFound.
func (r Redis) Get(key string) ([]byte, error) {
	buf := make([]byte, 256)
	n := redisGet(sptr(r.Dep), uint32(len(r.Dep)), sptr(key), uint32(len(key)), ptr(buf), uint32(len(buf)))
	return collect(n, buf, redisResult, redisLastError)
}

// Set stores value under key; ttl 0 means no expiry (millisecond resolution).
func (r Redis) Set(key string, value []byte, ttl time.Duration) error {
	n := redisSet(sptr(r.Dep), uint32(len(r.Dep)), sptr(key), uint32(len(key)), ptr(value), uint32(len(value)), ttl.Milliseconds())
	if n < 0 {
		return r.fail(n)
	}
	return nil
}

// Del deletes key and reports whether it existed.
func (r Redis) Del(key string) (bool, error) {
	n := redisDel(sptr(r.Dep), uint32(len(r.Dep)), sptr(key), uint32(len(key)))
	if n < 0 {
		return false, r.fail(n)
	}
	return n > 0, nil
}

// Exists reports whether key exists.
func (r Redis) Exists(key string) (bool, error) {
	n := redisExists(sptr(r.Dep), uint32(len(r.Dep)), sptr(key), uint32(len(key)))
	if n < 0 {
		return false, r.fail(n)
	}
	return n > 0, nil
}

// Incr adds delta to the integer at key (0 if missing) and returns the new value.
func (r Redis) Incr(key string, delta int64) (int64, error) {
	var value int64
	n := redisIncr(sptr(r.Dep), uint32(len(r.Dep)), sptr(key), uint32(len(key)), delta, unsafe.Pointer(&value))
	if n < 0 {
		return 0, r.fail(n)
	}
	return value, nil
}

// Publish sends message on channel (namespace-wide) and returns how many subscribers got it.
func (r Redis) Publish(channel string, message []byte) (int, error) {
	n := redisPublish(sptr(r.Dep), uint32(len(r.Dep)), sptr(channel), uint32(len(channel)), ptr(message), uint32(len(message)))
	if n < 0 {
		return 0, r.fail(n)
	}
	return int(n), nil
}
