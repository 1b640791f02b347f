// iobench: the guest side of bench/virtio_vs_qemu.py, a static Linux program put into the guest's
// initramfs. Each mode does one measurement and prints one line "iobench MODE VALUE UNIT", timed
// with the guest's CLOCK_MONOTONIC around the transfer alone.
//
//   iobench seqread  DEVICE MIB [OFFSET_MIB]   1 MiB O_DIRECT reads              -> MB/s
//   iobench seqwrite DEVICE MIB [OFFSET_MIB]   1 MiB O_DIRECT writes, fdatasync  -> MB/s
//   iobench randread DEVICE SECONDS            4 KiB O_DIRECT reads at random 4 KiB-aligned
//                                              offsets, one at a time (queue depth 1) -> IOPS
//   iobench httpget  ADDRESS PORT PATH         HTTP/1.0 GET, the body read to the end -> MB/s
//
// O_DIRECT keeps the guest's page cache out of the disk numbers: every byte crosses virtio-blk.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

enum { kMiB = 1 << 20, kBlock = 4096 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char* what) {
    fprintf(stderr, "iobench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void* aligned_buffer(size_t size) {
    void* buffer = NULL;
    if (posix_memalign(&buffer, kBlock, size) != 0) die("posix_memalign");
    memset(buffer, 0x5a, size);
    return buffer;
}

static int sequential(const char* device, long mib, long offset_mib, int write) {
    int fd = open(device, (write ? O_WRONLY : O_RDONLY) | O_DIRECT);
    if (fd < 0) die(device);
    char* buffer = aligned_buffer(kMiB);
    double start = now();
    for (long i = 0; i < mib; ++i) {
        off_t at = (off_t)(offset_mib + i) * kMiB;
        ssize_t n = write ? pwrite(fd, buffer, kMiB, at) : pread(fd, buffer, kMiB, at);
        if (n != kMiB) die(write ? "pwrite" : "pread");
    }
    if (write && fdatasync(fd) != 0) die("fdatasync");
    double seconds = now() - start;
    printf("iobench %s %.1f MB/s\n", write ? "seqwrite" : "seqread", (double)mib * kMiB / 1e6 / seconds);
    close(fd);
    return 0;
}

static int random_reads(const char* device, double duration) {
    int fd = open(device, O_RDONLY | O_DIRECT);
    if (fd < 0) die(device);
    uint64_t size = 0;
    if (ioctl(fd, BLKGETSIZE64, &size) != 0) die("BLKGETSIZE64");
    uint64_t blocks = size / kBlock;
    char* buffer = aligned_buffer(kBlock);
    uint64_t state = 0x9e3779b97f4a7c15u, reads = 0;
    double start = now(), elapsed = 0;
    while (elapsed < duration) {
        for (int i = 0; i < 64; ++i, ++reads) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;  // xorshift64
            if (pread(fd, buffer, kBlock, (off_t)((state % blocks) * kBlock)) != kBlock) die("pread");
        }
        elapsed = now() - start;
    }
    printf("iobench randread %.0f IOPS\n", (double)reads / elapsed);
    close(fd);
    return 0;
}

static int http_get(const char* address, int port, const char* path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, address, &peer.sin_addr) != 1) die("address");
    if (connect(fd, (struct sockaddr*)&peer, sizeof peer) != 0) die("connect");
    char request[512];
    int length = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, address);
    if (write(fd, request, (size_t)length) != length) die("write");
    static char buffer[256 * 1024];
    uint64_t total = 0;
    double start = now();
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0) die("read");
        if (n == 0) break;
        total += (uint64_t)n;
    }
    double seconds = now() - start;
    printf("iobench httpget %.1f MB/s (%llu bytes)\n", (double)total / 1e6 / seconds, (unsigned long long)total);
    close(fd);
    return 0;
}

int main(int argc, char** argv) {
    if (argc >= 4 && strcmp(argv[1], "seqread") == 0)
        return sequential(argv[2], atol(argv[3]), argc > 4 ? atol(argv[4]) : 0, 0);
    if (argc >= 4 && strcmp(argv[1], "seqwrite") == 0)
        return sequential(argv[2], atol(argv[3]), argc > 4 ? atol(argv[4]) : 0, 1);
    if (argc >= 4 && strcmp(argv[1], "randread") == 0) return random_reads(argv[2], atof(argv[3]));
    if (argc >= 5 && strcmp(argv[1], "httpget") == 0) return http_get(argv[2], atoi(argv[3]), argv[4]);
    fprintf(stderr, "usage: iobench seqread|seqwrite DEVICE MIB [OFFSET_MIB] | randread DEVICE SECONDS | "
                    "httpget ADDRESS PORT PATH\n");
    return 2;
}
