/* Finicky Whiskers "leaderboard" (HTTP, WAGI): the latest clicks from MySQL as JSON.
 * MySQL dependency name: $LEADERBOARD_SQL (default "db"); ?limit=N (default 100). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal.h"

int main(void) {
    const char *dep = getenv("LEADERBOARD_SQL");
    if (dep == NULL || *dep == '\0') dep = "db";
    long limit = 100;
    const char *query = getenv("QUERY_STRING");
    if (query != NULL && strncmp(query, "limit=", 6) == 0) limit = strtol(query + 6, NULL, 10);
    if (limit <= 0 || limit > 1000) limit = 100;
    char params[32];
    snprintf(params, sizeof params, "[%ld]", limit);
    char *rows = NULL;
    int32_t n = shoal_sql_query_alloc(
        dep, "SELECT id, count, payload FROM clicks ORDER BY id LIMIT ?", params, &rows);
    if (n == SHOAL_EREJECTED) { /* most likely no clicks table yet: nobody has clicked */
        printf("Content-Type: application/json\n\n[]\n");
        return 0;
    }
    if (n < 0) {
        char message[256];
        int32_t m = shoal_sql_last_error(message, sizeof message - 1);
        message[m > 0 ? m : 0] = '\0';
        printf("Status: 503\nContent-Type: text/plain\n\nsql error %d: %s\n", (int)n, message);
        return 0;
    }
    printf("Content-Type: application/json\n\n%s\n", rows);
    free(rows);
    return 0;
}
