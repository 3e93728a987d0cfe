/* Test driver for the host ABI: argv is one command, the answer is one line on stdout,
 * "ok ..." or "err <code> <message>". Used by tests/integration/test_capabilities.py. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal.h"

static int err(int32_t code, int sql) {
    char message[512];
    int32_t n = sql ? shoal_sql_last_error(message, sizeof message - 1)
                    : shoal_redis_last_error(message, sizeof message - 1);
    message[n > 0 ? n : 0] = '\0';
    printf("err %d %s\n", (int)code, message);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *cmd = argv[1], *dep = argv[2];
    const char *a = argc > 3 ? argv[3] : "", *b = argc > 4 ? argv[4] : "";
    int32_t rc;
    if (strcmp(cmd, "get") == 0) {
        char *value = NULL;
        rc = shoal_redis_get_alloc(dep, a, &value);
        if (rc < 0) return err(rc, 0);
        printf("ok %s\n", value);
        free(value);
    } else if (strcmp(cmd, "getcap") == 0) { /* exercise result(): too small, right, again */
        size_t cap = (size_t)atoi(b);
        char *buf = malloc(cap + 1);
        rc = shoal_redis_get(SHOAL_S(dep), SHOAL_S(a), buf, cap);
        if (rc < 0) return err(rc, 0);
        if ((size_t)rc <= cap) {
            buf[rc] = '\0';
            printf("ok fit %s\n", buf);
            return 0;
        }
        char *big = malloc((size_t)rc + 1);
        int32_t small = shoal_redis_result(big, (size_t)rc - 1);
        int32_t got = shoal_redis_result(big, (size_t)rc);
        int32_t again = shoal_redis_result(big, (size_t)rc);
        big[got > 0 ? got : 0] = '\0';
        printf("ok fetched %d %d %d %s\n", (int)small, (int)got, (int)again, big);
    } else if (strcmp(cmd, "set") == 0) {
        int64_t ttl = argc > 5 ? strtoll(argv[5], NULL, 10) : 0;
        rc = shoal_redis_set(SHOAL_S(dep), SHOAL_S(a), SHOAL_S(b), ttl);
        if (rc < 0) return err(rc, 0);
        printf("ok\n");
    } else if (strcmp(cmd, "del") == 0 || strcmp(cmd, "exists") == 0) {
        rc = cmd[0] == 'd' ? shoal_redis_del(SHOAL_S(dep), SHOAL_S(a))
                           : shoal_redis_exists(SHOAL_S(dep), SHOAL_S(a));
        if (rc < 0) return err(rc, 0);
        printf("ok %d\n", (int)rc);
    } else if (strcmp(cmd, "incr") == 0) {
        int64_t value = 0;
        rc = shoal_redis_incr(SHOAL_S(dep), SHOAL_S(a), strtoll(b, NULL, 10), &value);
        if (rc < 0) return err(rc, 0);
        printf("ok %" PRId64 "\n", value);
    } else if (strcmp(cmd, "incrloop") == 0) { /* until the first error */
        long n = strtol(b, NULL, 10);
        int64_t value = 0;
        for (long i = 0; i < n; i++) {
            rc = shoal_redis_incr(SHOAL_S(dep), SHOAL_S(a), 1, &value);
            if (rc < 0) {
                printf("after %ld ", i);
                return err(rc, 0);
            }
        }
        printf("ok %" PRId64 "\n", value);
    } else if (strcmp(cmd, "publish") == 0) {
        rc = shoal_redis_publish(SHOAL_S(dep), SHOAL_S(a), SHOAL_S(b));
        if (rc < 0) return err(rc, 0);
        printf("ok %d\n", (int)rc);
    } else if (strcmp(cmd, "badptr") == 0) { /* a guest bug: must trap, not return */
        rc = shoal_redis_get(SHOAL_S(dep), (const void *)0xfffffff0u, 64, NULL, 0);
        printf("returned %d\n", (int)rc);
    } else if (strcmp(cmd, "query") == 0) {
        char *rows = NULL;
        rc = shoal_sql_query_alloc(dep, a, b, &rows);
        if (rc < 0) return err(rc, 1);
        printf("ok %s\n", rows);
        free(rows);
    } else if (strcmp(cmd, "execute") == 0) {
        int64_t out[2] = {0, 0};
        rc = shoal_sql_execute(SHOAL_S(dep), SHOAL_S(a), SHOAL_S(b), out);
        if (rc < 0) return err(rc, 1);
        printf("ok %" PRId64 " %" PRId64 "\n", out[0], out[1]);
    } else {
        return 2;
    }
    return 0;
}
