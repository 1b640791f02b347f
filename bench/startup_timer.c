/*
 * startup_timer: runs a command RUNS times and reports the wall time from fork to exit and the
 * peak resident set size (wait4's ru_maxrss) of each run: median, minimum and maximum.
 *
 *   startup_timer RUNS COMMAND [ARGS...]
 *
 * The command's stdin, stdout and stderr are /dev/null. Prints one line on stdout:
 *   runs=N status=S median_ms=.. min_ms=.. max_ms=.. median_rss_kib=.. max_rss_kib=..
 * where S is the exit status of every run, or "mixed" (and exit status 1) when they differ.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int compare_doubles(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

static int compare_longs(const void* a, const void* b) {
    long x = *(const long*)a, y = *(const long*)b;
    return (x > y) - (x < y);
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: startup_timer RUNS COMMAND [ARGS...]\n");
        return 2;
    }
    int runs = atoi(argv[1]);
    if (runs < 1 || runs > 10000) {
        fprintf(stderr, "startup_timer: RUNS must be 1-10000\n");
        return 2;
    }
    double* ms = calloc((size_t)runs, sizeof *ms);
    long* rss = calloc((size_t)runs, sizeof *rss);
    if (!ms || !rss) return 2;
    int first_status = -1;
    int mixed = 0;
    for (int i = 0; i < runs; ++i) {
        struct timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        pid_t pid = fork();
        if (pid < 0) {
            perror("startup_timer: fork");
            return 2;
        }
        if (pid == 0) {
            int null = open("/dev/null", O_RDWR);
            if (null >= 0) {
                dup2(null, 0);
                dup2(null, 1);
                dup2(null, 2);
            }
            execvp(argv[2], argv + 2);
            _exit(127);
        }
        int status = 0;
        struct rusage usage;
        if (wait4(pid, &status, 0, &usage) != pid) {
            perror("startup_timer: wait4");
            return 2;
        }
        clock_gettime(CLOCK_MONOTONIC, &end);
        ms[i] = (double)(end.tv_sec - start.tv_sec) * 1e3 + (double)(end.tv_nsec - start.tv_nsec) / 1e6;
        rss[i] = usage.ru_maxrss;
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (first_status < 0) first_status = code;
        else if (code != first_status) mixed = 1;
    }
    qsort(ms, (size_t)runs, sizeof *ms, compare_doubles);
    qsort(rss, (size_t)runs, sizeof *rss, compare_longs);
    if (mixed) printf("runs=%d status=mixed", runs);
    else printf("runs=%d status=%d", runs, first_status);
    printf(" median_ms=%.2f min_ms=%.2f max_ms=%.2f median_rss_kib=%ld max_rss_kib=%ld\n", ms[runs / 2], ms[0],
           ms[runs - 1], rss[runs / 2], rss[runs - 1]);
    return mixed;
}
