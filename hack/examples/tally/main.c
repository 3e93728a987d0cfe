/* Finicky Whiskers "tally" (HTTP, WAGI): count a click in Redis, announce it on channel "clicks",
 * answer with the new count. Redis dependency name: $TALLY_REDIS (default "cache"). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "shoal.h"

int main(void) {
    const char *dep = getenv("TALLY_REDIS");
    if (dep == NULL || *dep == '\0') dep = "cache";
    int64_t count = 0;
    int32_t rc = shoal_redis_incr(SHOAL_S(dep), SHOAL_S("count"), 1, &count);
    if (rc < 0) {
        char message[256];
        int32_t n = shoal_redis_last_error(message, sizeof message - 1);
        message[n > 0 ? n : 0] = '\0';
        printf("Status: 503\nContent-Type: text/plain\n\nredis error %d: %s\n", (int)rc, message);
        return 0;
    }
    char event[64];
    int len = snprintf(event, sizeof event, "{\"count\":%" PRId64 "}", count);
    int32_t receivers = shoal_redis_publish(SHOAL_S(dep), SHOAL_S("clicks"), event, (size_t)len);
    printf("Content-Type: application/json\n\n{\"count\":%" PRId64 ",\"published\":%s}\n", count,
           receivers >= 0 ? "true" : "false");
    return 0;
}
