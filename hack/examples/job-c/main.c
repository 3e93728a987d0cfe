/* A batch job: prints its arguments and exits with the code given as the first one. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    printf("job-c ran with %d argument(s)\n", argc - 1);
    for (int i = 1; i < argc; i++) printf("arg[%d]=%s\n", i, argv[i]);
    int code = argc > 1 ? atoi(argv[1]) : 0;
    fprintf(stderr, "exiting with %d\n", code);
    return code;
}
