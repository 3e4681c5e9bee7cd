/* A closed-loop HTTP/1.1 load generator that costs a few microseconds of CPU per request, so that a
 * service measured on the same cores is not starved by its own clients (a Python asyncio client costs
 * ~150 us per request on this machine, about as much as the service's event loop).
 *
 * Used by service_load.py; built there with the system C compiler. Each of C keep-alive connections
 * sends its share of TOTAL requests one at a time (the next one when the previous answer is complete),
 * all from one thread with epoll. Request n is number (n mod count) of the requests file; connection c
 * sends n = c * (TOTAL / C) + i, as the Python client does.
 *
 *   http_load PORT REQUESTS_FILE C TOTAL OUT_FILE
 *
 * REQUESTS_FILE: uint32 count, then count times (uint32 length, raw request bytes), little-endian.
 * OUT_FILE: per answer (int32 n, int32 status, float64 latency seconds, uint32 length, body bytes),
 * for the caller to check every answer. stdout: one JSON line with the wall time and this process' CPU.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    long next, end;      /* the next request number to send, one past the last */
    long current;        /* the request in flight */
    double sent_at;
    char *buf;           /* the answer so far */
    size_t len, cap;
} Conn;

static char **requests;
static uint32_t *request_len;
static uint32_t request_count;

static void die(const char *what) {
    perror(what);
    exit(2);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void read_requests(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    if (fread(&request_count, 4, 1, f) != 1 || request_count == 0) die("requests file: no count");
    requests = malloc(sizeof(char *) * request_count);
    request_len = malloc(sizeof(uint32_t) * request_count);
    for (uint32_t i = 0; i < request_count; i++) {
        if (fread(&request_len[i], 4, 1, f) != 1) die("requests file: truncated");
        requests[i] = malloc(request_len[i]);
        if (fread(requests[i], 1, request_len[i], f) != request_len[i]) die("requests file: truncated");
    }
    fclose(f);
}

static void send_next(Conn *c) {
    c->current = c->next++;
    const char *p = requests[c->current % request_count];
    size_t left = request_len[c->current % request_count];
    c->len = 0;
    c->sent_at = now();
    while (left > 0) { /* a blocking socket: a large body may take several writes */
        ssize_t w = write(c->fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        p += w;
        left -= (size_t)w;
    }
}

/* The length of a complete answer at the start of buf (head + body), or 0 while it is incomplete. */
static size_t complete_length(const char *buf, size_t len, size_t *head_len) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return 0;
    *head_len = (size_t)(end - buf) + 4;
    size_t body = 0;
    for (const char *line = buf; line < end;) {
        const char *eol = memmem(line, (size_t)(end - line) + 2, "\r\n", 2);
        if (eol - line > 15 && strncasecmp(line, "content-length:", 15) == 0) body = strtoul(line + 15, NULL, 10);
        line = eol + 2;
    }
    return *head_len + body <= len ? *head_len + body : 0;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s PORT REQUESTS_FILE CONNECTIONS TOTAL OUT_FILE\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), n_conns = atoi(argv[3]);
    long total = atol(argv[4]);
    if (n_conns < 1 || total < n_conns) {
        fprintf(stderr, "need 1 <= CONNECTIONS <= TOTAL\n");
        return 2;
    }
    read_requests(argv[2]);
    FILE *out = fopen(argv[5], "wb");
    if (!out) die(argv[5]);
    long per_conn = total / n_conns;

    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    Conn *conns = calloc((size_t)n_conns, sizeof(Conn));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n_conns; i++) {
        Conn *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0) die("socket");
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->next = i * per_conn;
        c->end = c->next + per_conn;
        c->cap = 1 << 16;
        c->buf = malloc(c->cap);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    }

    double start = now();
    for (int i = 0; i < n_conns; i++) send_next(&conns[i]);
    long done = 0, expected = per_conn * n_conns;
    struct epoll_event events[64];
    while (done < expected) {
        int n = epoll_wait(ep, events, 64, 60000);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        if (n == 0) {
            fprintf(stderr, "no answer within 60 s (%ld of %ld done)\n", done, expected);
            return 3;
        }
        for (int e = 0; e < n; e++) {
            Conn *c = events[e].data.ptr;
            if (c->len == c->cap) c->buf = realloc(c->buf, c->cap *= 2);
            ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
            if (r <= 0) {
                fprintf(stderr, "connection closed by the server after %ld answers\n", done);
                return 3;
            }
            c->len += (size_t)r;
            size_t head_len, whole = complete_length(c->buf, c->len, &head_len);
            if (!whole) continue;
            double latency = now() - c->sent_at;
            int32_t number = (int32_t)c->current, status = 0;
            if (c->len > 12 && memcmp(c->buf, "HTTP/1.1 ", 9) == 0) status = atoi(c->buf + 9);
            uint32_t body_len = (uint32_t)(whole - head_len);
            fwrite(&number, 4, 1, out);
            fwrite(&status, 4, 1, out);
            fwrite(&latency, 8, 1, out);
            fwrite(&body_len, 4, 1, out);
            fwrite(c->buf + head_len, 1, body_len, out);
            done++;
            if (c->next < c->end) send_next(c);
        }
    }
    double wall = now() - start;
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double cpu = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec * 1e-6 + usage.ru_stime.tv_sec +
                 usage.ru_stime.tv_usec * 1e-6;
    if (fclose(out) != 0) die("writing the answers");
    printf("{\"answers\": %ld, \"wall_s\": %.6f, \"cpu_s\": %.6f}\n", done, wall, cpu);
    return 0;
}
