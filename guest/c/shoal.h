/*
 * Shoal host ABI v1 for C guests (wasm32-wasi). See docs/host-abi.md.
 *
 * Every function returns an int32_t: >= 0 on success, a negative SHOAL_E* code otherwise.
 * Functions that produce bytes write them to (out, out_cap) when they fit and return the full
 * length; when the length is larger than out_cap nothing was written and the host keeps the
 * result: fetch it with shoal_*_result() into a buffer of that length (the *_alloc helpers
 * below do this). The message of the last failure is available from shoal_*_last_error().
 *
 * The imports of a capability only link if the app declares it (a redis dependency for
 * "shoal:redis", a mysql dependency for "shoal:sql"); include this header freely, only the
 * functions you call are imported.
 */
#ifndef SHOAL_H
#define SHOAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SHOAL_ABI_VERSION 1

enum {
    SHOAL_ENOT_FOUND = -1,
    SHOAL_ENO_DEPENDENCY = -2,
    SHOAL_EUNAVAILABLE = -3,
    SHOAL_ETIMEOUT = -4,
    SHOAL_EINVALID = -5,
    SHOAL_EDENIED = -6,
    SHOAL_EREJECTED = -7,
    SHOAL_ETOO_LARGE = -8,
    SHOAL_ENO_RESULT = -9,
    SHOAL_EBUFFER_TOO_SMALL = -10,
    SHOAL_EINTERNAL = -11,
};

#define SHOAL_IMPORT(module, name) __attribute__((import_module(module), import_name(name)))

/* --- shoal:redis ------------------------------------------------------------------------- */
/* Keys are the app's own; "@other/key" reads key "key" of app "other" if it shares with us. */

SHOAL_IMPORT("shoal:redis", "get")
int32_t shoal_redis_get(const char *dep, size_t dep_len, const void *key, size_t key_len, void *out,
                        size_t out_cap);
SHOAL_IMPORT("shoal:redis", "set")
int32_t shoal_redis_set(const char *dep, size_t dep_len, const void *key, size_t key_len,
                        const void *value, size_t value_len, int64_t ttl_ms /* 0 = none */);
SHOAL_IMPORT("shoal:redis", "del")
int32_t shoal_redis_del(const char *dep, size_t dep_len, const void *key, size_t key_len);
SHOAL_IMPORT("shoal:redis", "exists")
int32_t shoal_redis_exists(const char *dep, size_t dep_len, const void *key, size_t key_len);
SHOAL_IMPORT("shoal:redis", "incr")
int32_t shoal_redis_incr(const char *dep, size_t dep_len, const void *key, size_t key_len,
                         int64_t delta, int64_t *new_value);
SHOAL_IMPORT("shoal:redis", "publish")
int32_t shoal_redis_publish(const char *dep, size_t dep_len, const char *channel, size_t channel_len,
                            const void *message, size_t message_len);
SHOAL_IMPORT("shoal:redis", "result")
int32_t shoal_redis_result(void *out, size_t out_cap);
SHOAL_IMPORT("shoal:redis", "last_error")
int32_t shoal_redis_last_error(char *out, size_t out_cap);

/* --- shoal:sql --------------------------------------------------------------------------- */
/* `params` is a JSON array bound to the `?` placeholders; rows come back as a JSON array of
 * objects. execute() writes {affected_rows, last_insert_id} to `out`. */

SHOAL_IMPORT("shoal:sql", "query")
int32_t shoal_sql_query(const char *dep, size_t dep_len, const char *sql, size_t sql_len,
                        const char *params, size_t params_len, char *out, size_t out_cap);
SHOAL_IMPORT("shoal:sql", "execute")
int32_t shoal_sql_execute(const char *dep, size_t dep_len, const char *sql, size_t sql_len,
                          const char *params, size_t params_len, int64_t out[2]);
SHOAL_IMPORT("shoal:sql", "result")
int32_t shoal_sql_result(void *out, size_t out_cap);
SHOAL_IMPORT("shoal:sql", "last_error")
int32_t shoal_sql_last_error(char *out, size_t out_cap);

/* --- helpers for NUL-terminated strings -------------------------------------------------- */

#define SHOAL_S(s) (s), strlen(s)

/* Fetch a result of length n that did not fit: malloc n+1 bytes (NUL-terminated). */
static inline int32_t shoal__fetch(int32_t (*result)(void *, size_t), int32_t n, char **out) {
    char *buf = malloc((size_t)n + 1);
    if (buf == NULL) return SHOAL_EINTERNAL;
    int32_t got = result(buf, (size_t)n);
    if (got < 0) {
        free(buf);
        return got;
    }
    buf[got] = '\0';
    *out = buf;
    return got;
}

/* GET into a malloc'd, NUL-terminated buffer (free it); returns the length or a SHOAL_E* code. */
static inline int32_t shoal_redis_get_alloc(const char *dep, const char *key, char **value) {
    char small[256];
    int32_t n = shoal_redis_get(SHOAL_S(dep), SHOAL_S(key), small, sizeof small);
    if (n < 0) return n;
    if ((size_t)n > sizeof small) return shoal__fetch(shoal_redis_result, n, value);
    *value = malloc((size_t)n + 1);
    if (*value == NULL) return SHOAL_EINTERNAL;
    memcpy(*value, small, (size_t)n);
    (*value)[n] = '\0';
    return n;
}

/* A query's JSON rows into a malloc'd, NUL-terminated buffer (free it). */
static inline int32_t shoal_sql_query_alloc(const char *dep, const char *sql, const char *params,
                                            char **json) {
    char small[1024];
    int32_t n = shoal_sql_query(SHOAL_S(dep), SHOAL_S(sql), SHOAL_S(params), small, sizeof small);
    if (n < 0) return n;
    if ((size_t)n > sizeof small) return shoal__fetch(shoal_sql_result, n, json);
    *json = malloc((size_t)n + 1);
    if (*json == NULL) return SHOAL_EINTERNAL;
    memcpy(*json, small, (size_t)n);
    (*json)[n] = '\0';
    return n;
}

#endif /* SHOAL_H */
