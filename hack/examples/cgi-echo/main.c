/* WAGI echo: shows what the guest saw of its request (CGI variables, argv, stdin), for the tests of
 * the native HTTP trigger. `?status=NNN` answers with that status through the CGI `Status` header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v ? v : "";
}

int main(int argc, char **argv) {
    const char *query = env("QUERY_STRING");
    const char *status = strstr(query, "status=");
    if (status) printf("Status: %.3s\r\n", status + 7);
    printf("Content-Type: text/plain\r\nX-Echo: yes\r\n\r\n");
    printf("path_info=%s\nscript_name=%s\nroute=%s\nmethod=%s\ncontent_length=%s\nhost=%s\n",
           env("PATH_INFO"), env("SCRIPT_NAME"), env("X_MATCHED_ROUTE"), env("REQUEST_METHOD"),
           env("CONTENT_LENGTH"), env("HTTP_HOST"));
    printf("server=%s:%s\nfull_url=%s\nauthorization=%s\nargs=", env("SERVER_NAME"), env("SERVER_PORT"),
           env("X_FULL_URL"), env("HTTP_AUTHORIZATION"));
    for (int i = 1; i < argc; i++) printf("%s%s", i > 1 ? "," : "", argv[i]);
    printf("\nstdin=");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) fwrite(buf, 1, n, stdout);
    printf("\n");
    return 0;
}

/* A second WAGI entry point (trigger.entrypoint: shout): one module, several handlers. wasm-ld
 * runs the C constructors around an exported function of a command module; stdio is flushed here
 * because no exit() follows. */
__attribute__((export_name("shout"))) void shout(void) {
    printf("Content-Type: text/plain\r\n\r\nSHOUT from %s\n", env("PATH_INFO"));
    fflush(stdout);
}
