/* WAGI hello: a CGI response on stdout, echoing the path and query it was called with. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *path = getenv("PATH_INFO");
    const char *query = getenv("QUERY_STRING");
    printf("Content-Type: text/plain\n\nHello from C, %s%s%s\n", path ? path : "/",
           (query && *query) ? "?" : "", query ? query : "");
    return 0;
}
