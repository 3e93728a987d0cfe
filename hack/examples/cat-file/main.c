/* WAGI file reader, for the tests of `spec.files`: what a guest can and cannot see of a filesystem.
 * The request's query args (a query without '=', split on '+') are its argv:
 *   ?PATH               print the file at PATH (404 and the error when it cannot be opened)
 *   ?ls+DIR             list DIR's entries
 *   ?write+PATH+BYTES   write BYTES bytes to PATH (a scratch directory), then say how many were written
 * It runs as a job or a message handler too (the same argv, no CGI headers needed by the caller). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const char *path) {
    printf("Status: 404\r\nContent-Type: text/plain\r\n\r\ncannot %s %s: %s\n", what, path, strerror(errno));
    return 0;
}

static int cat(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return fail("open", path);
    printf("Content-Type: text/plain\r\n\r\n");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    if (ferror(f)) printf("\nread error: %s\n", strerror(errno));
    fclose(f);
    return 0;
}

static int list(const char *path) {
    DIR *d = opendir(path);
    if (!d) return fail("list", path);
    printf("Content-Type: text/plain\r\n\r\n");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) printf("%s\n", e->d_name);
    }
    closedir(d);
    return 0;
}

static int write_bytes(const char *path, long bytes) {
    FILE *f = fopen(path, "wb");
    if (!f) return fail("create", path);
    static char block[65536];
    memset(block, 'x', sizeof block);
    long written = 0;
    while (written < bytes) {
        size_t chunk = bytes - written < (long)sizeof block ? (size_t)(bytes - written) : sizeof block;
        size_t n = fwrite(block, 1, chunk, f);
        if (n == 0) break;
        written += (long)n;
    }
    if (fclose(f) != 0) return fail("write", path);
    printf("Content-Type: text/plain\r\n\r\nwrote %ld bytes to %s\n", written, path);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "ls") == 0) return list(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "write") == 0) return write_bytes(argv[2], atol(argv[3]));
    if (argc >= 2) return cat(argv[1]);
    printf("Status: 400\r\nContent-Type: text/plain\r\n\r\nusage: ?PATH | ?ls+DIR | ?write+PATH+BYTES\n");
    return 0;
}
