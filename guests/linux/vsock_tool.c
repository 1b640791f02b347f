// vsock_tool: a Linux userspace program for the guest side of Strata's virtio-vsock tests
// (busybox has no AF_VSOCK). Built static by guests/CMakeLists.txt and added to an initramfs by
// the end-to-end tests (tests/e2e/initramfs_support.hpp).
//
//   vsock_tool listen PORT
//       accepts one connection on PORT, echoes every byte back until the peer shuts down its
//       sending side, then prints "vsock-echoed <bytes> bytes, first line: <line>" and exits.
//   vsock_tool connect CID PORT TEXT
//       connects to CID:PORT, sends TEXT and a newline, shuts down its sending side, reads the
//       reply until EOF and prints "vsock-reply: <reply>"; a refused connection prints
//       "vsock-connect: <error>".
// Either gives up after 120 seconds (SIGALRM), so a broken host cannot hang a test's boot; the
// exit status is 0 on success and 1 otherwise.
#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char* what) {
    printf("vsock-%s: %s\n", what, strerror(errno));
    fflush(stdout);
    return 1;
}

static int parse_u32(const char* text, unsigned* out) {
    char* end = NULL;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value > 0xffffffffUL) return -1;
    *out = (unsigned)value;
    return 0;
}

static int write_all(int fd, const char* data, size_t length) {
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        data += n;
        length -= (size_t)n;
    }
    return 0;
}

static int listen_and_echo(unsigned port) {
    int server = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (server < 0) return fail("socket");
    struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_port = port, .svm_cid = VMADDR_CID_ANY};
    if (bind(server, (struct sockaddr*)&address, sizeof address) != 0) return fail("bind");
    if (listen(server, 1) != 0) return fail("listen");
    printf("vsock-listening on port %u\n", port);
    fflush(stdout);
    int connection = accept(server, NULL, NULL);
    if (connection < 0) return fail("accept");
    char first_line[128] = "";
    size_t line_length = 0;
    int line_done = 0;
    unsigned long long total = 0;
    char buffer[16384];
    for (;;) {
        ssize_t n = read(connection, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail("read");
        if (n == 0) break;
        for (ssize_t i = 0; i < n && !line_done; ++i) {
            if (buffer[i] == '\n' || line_length + 1 == sizeof first_line) line_done = 1;
            else first_line[line_length++] = buffer[i];
        }
        total += (unsigned long long)n;
        if (write_all(connection, buffer, (size_t)n) != 0) return fail("write");
    }
    first_line[line_length] = '\0';
    close(connection);
    printf("vsock-echoed %llu bytes, first line: %s\n", total, first_line);
    fflush(stdout);
    return 0;
}

static int connect_and_send(unsigned cid, unsigned port, const char* text) {
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (fd < 0) return fail("socket");
    struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_port = port, .svm_cid = cid};
    if (connect(fd, (struct sockaddr*)&address, sizeof address) != 0) return fail("connect");
    if (write_all(fd, text, strlen(text)) != 0 || write_all(fd, "\n", 1) != 0) return fail("write");
    if (shutdown(fd, SHUT_WR) != 0) return fail("shutdown");
    char reply[4096];
    size_t length = 0;
    for (;;) {
        ssize_t n = read(fd, reply + length, sizeof reply - 1 - length);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail("read");
        if (n == 0 || (length += (size_t)n) == sizeof reply - 1) break;
    }
    reply[length] = '\0';
    if (length > 0 && reply[length - 1] == '\n') reply[length - 1] = '\0';
    close(fd);
    printf("vsock-reply: %s\n", reply);
    fflush(stdout);
    return 0;
}

int main(int argc, char** argv) {
    unsigned cid = 0, port = 0;
    alarm(120);
    if (argc == 3 && strcmp(argv[1], "listen") == 0 && parse_u32(argv[2], &port) == 0) return listen_and_echo(port);
    if (argc == 5 && strcmp(argv[1], "connect") == 0 && parse_u32(argv[2], &cid) == 0 && parse_u32(argv[3], &port) == 0)
        return connect_and_send(cid, port, argv[4]);
    fprintf(stderr, "usage: vsock_tool listen PORT | vsock_tool connect CID PORT TEXT\n");
    return 2;
}
