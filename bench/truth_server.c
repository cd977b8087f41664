/* truth_server: a light ground-truth server for bench/measurement_error.py (--server truth).

   One thread, epoll and a timerfd, no allocation per chunk. It answers POST /v1/chat/completions as the mock
   server's OpenAI chat stream does (the same bytes: a role chunk, one chunk per token, a finish chunk, a usage
   chunk, [DONE]; HTTP/1.1 keep-alive, chunked), on a fixed schedule: the first token --ttft-ms after the request
   body was read, then one every --itl-ms, --output-tokens in all. Any other request gets a 404.

   Its send log (--send-log FILE) has the mock's fields that the bench reads, one JSON line per request, with
   CLOCK_MONOTONIC times (Python's perf_counter_ns on Linux):
     t_arrive_ns       the kernel's receive stamp (SO_TIMESTAMPNS) of the segment that completed the body;
     t_recv_ns         clock_gettime right after the recv that completed the body;
     t_headers_ns      just before the write of the response head and the role chunk;
     token_send_ns     just before the write of each token chunk (t_first_token_ns, t_last_token_ns);
     t_end_ns          after the last write.
   It is written to a buffer and flushed on SIGTERM/SIGINT, when the server exits: nothing is written during a run.

   Why: the Python mock server spends about 20 µs of its core per chunk, so at 256 streams at ITL 5 ms it is at
   70 % of its core in bursts and reads a request up to 7 ms late (p99), which then counts in the whole TTFT error.
   This one spends a few µs a chunk.

   Build: cc -O2 -o truth_server truth_server.c (the bench builds it in its work folder). Linux only.
   Run:   ./truth_server --host 127.0.0.1 --port 0 --ttft-ms 200 --itl-ms 5 --output-tokens 128 --send-log s.jsonl
   It prints "llm-locust truth server listening on http://HOST:PORT" when ready. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 4096
#define IN_CAP 65536
#define OUT_CAP 65536
#define MAX_TOKENS 100000

static const char *WORDS[] = {" the", " of", " and", " to", " in", " is", " that", " it", " for", " on",
                              " with", " as", " was", " at", " by", " this", " be", " from", " or", " are"};
#define N_WORDS (sizeof WORDS / sizeof *WORDS)

typedef struct {
    int fd;
    int active;            /* a request is being answered */
    char in[IN_CAP];
    size_t in_len;
    char out[OUT_CAP];     /* bytes the kernel did not take yet (rare on loopback) */
    size_t out_len;
    int64_t due;           /* next token's time, CLOCK_MONOTONIC ns */
    int heap_pos;          /* index in the timer heap, -1 if not in it */
    int sent;              /* tokens sent */
    long seq;
    char request_id[128];
    int64_t t_arrive, t_recv, t_headers, t_end;
    int64_t *token_ns;
} Conn;

static Conn *conns[MAX_CONNS];
static Conn *heap[MAX_CONNS];
static int heap_n;
static int64_t ttft_ns = 50000000, itl_ns = 10000000;
static int tokens = 64;
static FILE *send_log;
static char *log_buf;
static volatile sig_atomic_t stopping;
static long seq_next;

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* -- the timer heap (min-heap on due) -------------------------------------------------------------------------- */

static void heap_swap(int a, int b) {
    Conn *t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
    heap[a]->heap_pos = a;
    heap[b]->heap_pos = b;
}

static void heap_up(int i) {
    while (i > 0 && heap[(i - 1) / 2]->due > heap[i]->due) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_n && heap[l]->due < heap[m]->due) m = l;
        if (r < heap_n && heap[r]->due < heap[m]->due) m = r;
        if (m == i) return;
        heap_swap(i, m);
        i = m;
    }
}

static void heap_push(Conn *c) {
    c->heap_pos = heap_n;
    heap[heap_n++] = c;
    heap_up(c->heap_pos);
}

static void heap_remove(Conn *c) {
    int i = c->heap_pos;
    if (i < 0) return;
    heap_n--;
    if (i != heap_n) {
        heap[i] = heap[heap_n];
        heap[i]->heap_pos = i;
        heap_down(i);
        heap_up(i);
    }
    c->heap_pos = -1;
}

static void arm(int tfd) {
    struct itimerspec its = {0};
    if (heap_n > 0) {
        int64_t due = heap[0]->due;
        if (due <= 0) due = 1;
        its.it_value.tv_sec = due / 1000000000;
        its.it_value.tv_nsec = due % 1000000000;
    }
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* -- connections ----------------------------------------------------------------------------------------------- */

static void close_conn(int ep, Conn *c) {
    heap_remove(c);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->token_ns);
    free(c);
}

/* Write what the kernel takes now; keep the rest for EPOLLOUT. Returns -1 if the peer is gone. */
static int send_bytes(int ep, Conn *c, const char *data, size_t n) {
    if (c->out_len == 0) {
        ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
            w = 0;
        }
        data += w;
        n -= (size_t)w;
        if (n == 0) return 0;
    }
    if (c->out_len + n > OUT_CAP) return -1;
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = c->fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return 0;
}

static int send_chunk(int ep, Conn *c, const char *data, size_t n) {
    char buf[4096];
    int k = snprintf(buf, sizeof buf, "%zx\r\n", n);
    if (k + n + 2 > sizeof buf) return -1;
    memcpy(buf + k, data, n);
    memcpy(buf + k + n, "\r\n", 2);
    return send_bytes(ep, c, buf, k + n + 2);
}

static int event_head(char *buf, size_t cap, long seq) {
    return snprintf(buf, cap, "data: {\"id\":\"chatcmpl-mock%ld\",\"object\":\"chat.completion.chunk\","
                              "\"created\":1700000000,\"model\":\"m\",", seq);
}

static void log_request(Conn *c) {
    if (send_log == NULL) return;
    int64_t first = c->sent ? c->token_ns[0] : -1, last = c->sent ? c->token_ns[c->sent - 1] : -1;
    fprintf(send_log, "{\"request_id\":\"%s\",\"seq\":%ld,\"path\":\"/v1/chat/completions\","
                      "\"protocol\":\"openai-chat\",\"model\":\"m\",\"stream\":true,\"fault\":null,\"status\":200,"
                      "\"t_recv_ns\":%lld,\"t_headers_ns\":%lld,",
            c->request_id, c->seq, (long long)c->t_recv, (long long)c->t_headers);
    if (c->t_arrive)
        fprintf(send_log, "\"t_arrive_ns\":%lld,", (long long)c->t_arrive);
    else
        fputs("\"t_arrive_ns\":null,", send_log);
    if (c->sent)
        fprintf(send_log, "\"t_first_token_ns\":%lld,\"t_last_token_ns\":%lld,", (long long)first, (long long)last);
    else
        fputs("\"t_first_token_ns\":null,\"t_last_token_ns\":null,", send_log);
    fprintf(send_log, "\"t_end_ns\":%lld,\"token_send_ns\":[", (long long)c->t_end);
    for (int i = 0; i < c->sent; i++) fprintf(send_log, i ? ",%lld" : "%lld", (long long)c->token_ns[i]);
    fprintf(send_log, "],\"tokens\":%d,\"reasoning_tokens\":0,\"chunks\":%d,\"finish_reason\":\"length\","
                      "\"aborted\":%s}\n", c->sent, c->sent, c->sent < tokens ? "true" : "false");
}

/* The next token of c's answer (and, after the last one, the end of the answer). Returns -1 if the peer is gone. */
static int send_token(int ep, Conn *c) {
    char ev[1024];
    int h = event_head(ev, sizeof ev, c->seq);
    int n = h + snprintf(ev + h, sizeof ev - h,
                         "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"},\"logprobs\":null,"
                         "\"finish_reason\":null}],\"usage\":null}\n\n", WORDS[c->sent % N_WORDS]);
    c->token_ns[c->sent] = mono_ns();
    if (send_chunk(ep, c, ev, n) < 0) return -1;
    c->sent++;
    if (c->sent < tokens) {
        c->due += itl_ns;
        heap_down(c->heap_pos);
        return 0;
    }
    heap_remove(c);
    char end[2048];
    size_t m = 0;
    char part[1024];
    int k;
    h = event_head(part, sizeof part, c->seq);
    k = h + snprintf(part + h, sizeof part - h, "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                                                "\"finish_reason\":\"length\"}],\"usage\":null}\n\n");
    m += snprintf(end + m, sizeof end - m, "%x\r\n%.*s\r\n", k, k, part);
    h = event_head(part, sizeof part, c->seq);
    k = h + snprintf(part + h, sizeof part - h, "\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
                                                "\"completion_tokens\":%d,\"total_tokens\":%d,"
                                                "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
                     tokens, tokens + 5);
    m += snprintf(end + m, sizeof end - m, "%x\r\n%.*s\r\n", k, k, part);
    m += snprintf(end + m, sizeof end - m, "e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
    if (send_bytes(ep, c, end, m) < 0) return -1;
    c->t_end = mono_ns();
    log_request(c);
    c->active = 0;
    return 0;
}

static const char NOT_FOUND[] = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 21\r\n"
                                "\r\n{\"error\":\"not found\"}";

/* Take the complete requests in c->in. Returns -1 if the connection must close. */
static int take_requests(int ep, Conn *c, int64_t t_recv, int64_t t_arrive) {
    while (!c->active) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (end == NULL) return c->in_len < IN_CAP ? 0 : -1;
        size_t head = (size_t)(end - c->in) + 4;
        size_t body = 0;
        c->request_id[0] = 0;
        for (char *p = c->in; p < end;) {
            char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
            size_t len = (size_t)(eol - p);
            if (len > 15 && strncasecmp(p, "content-length:", 15) == 0) body = strtoul(p + 15, NULL, 10);
            if (len > 13 && strncasecmp(p, "x-request-id:", 13) == 0) {
                char *v = p + 13;
                while (*v == ' ') v++;
                size_t vl = (size_t)(eol - v);
                if (vl >= sizeof c->request_id) vl = sizeof c->request_id - 1;
                memcpy(c->request_id, v, vl);
                c->request_id[vl] = 0;
            }
            p = eol + 2;
        }
        if (head + body > IN_CAP) return -1;
        if (c->in_len < head + body) return 0;
        int generate = strncmp(c->in, "POST /v1/chat/completions ", 26) == 0;
        memmove(c->in, c->in + head + body, c->in_len - head - body);
        c->in_len -= head + body;
        if (!generate) {
            if (send_bytes(ep, c, NOT_FOUND, sizeof NOT_FOUND - 1) < 0) return -1;
            continue;
        }
        c->active = 1;
        c->seq = ++seq_next;
        if (!c->request_id[0]) snprintf(c->request_id, sizeof c->request_id, "mock-%ld", c->seq);
        c->t_recv = t_recv;
        c->t_arrive = t_arrive;
        c->sent = 0;
        char buf[2048], ev[1024];
        int h = event_head(ev, sizeof ev, c->seq);
        int n = h + snprintf(ev + h, sizeof ev - h,
                             "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                             "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n");
        int m = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                          "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
                                          "X-Request-Id: %s\r\n\r\n%x\r\n%.*s\r\n", c->request_id, n, n, ev);
        c->t_headers = mono_ns();
        if (send_bytes(ep, c, buf, (size_t)m) < 0) return -1;
        c->due = t_recv + ttft_ns;
        heap_push(c);
    }
    return 0;
}

static int read_conn(int ep, Conn *c) {
    char cbuf[CMSG_SPACE(sizeof(struct timespec))];
    for (;;) {
        if (c->in_len >= IN_CAP) return -1;
        struct iovec iov = {c->in + c->in_len, IN_CAP - c->in_len};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
        ssize_t r = recvmsg(c->fd, &msg, MSG_DONTWAIT);
        int64_t t_recv = mono_ns();
        if (r == 0) return -1;
        if (r < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        int64_t t_arrive = 0; /* no stamp: null in the log */
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(cm), sizeof ts);
                t_arrive = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - (real_ns() - mono_ns());
            }
        }
        c->in_len += (size_t)r;
        if (take_requests(ep, c, t_recv, t_arrive) < 0) return -1;
    }
}

static void on_stop(int sig) {
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *log_path = NULL;
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ttft-ms")) ttft_ns = (int64_t)(atof(argv[i + 1]) * 1e6);
        else if (!strcmp(argv[i], "--itl-ms")) itl_ns = (int64_t)(atof(argv[i + 1]) * 1e6);
        else if (!strcmp(argv[i], "--output-tokens")) tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--send-log")) log_path = argv[i + 1];
        else {
            fprintf(stderr, "truth_server: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (tokens < 1 || tokens > MAX_TOKENS) {
        fprintf(stderr, "truth_server: --output-tokens must be 1..%d\n", MAX_TOKENS);
        return 2;
    }
    if (log_path) {
        send_log = fopen(log_path, "a");
        if (!send_log) {
            perror("truth_server: --send-log");
            return 2;
        }
        log_buf = malloc(1 << 26);
        setvbuf(send_log, log_buf, _IOFBF, 1 << 26);
    }
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(lfd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one); /* keeps the kernel stamping (see recvclock) */
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(lfd, 1024) < 0) {
        perror("truth_server: listen");
        return 2;
    }
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    int ep = epoll_create1(0), tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = tfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    printf("llm-locust truth server listening on http://%s:%d\n", host, ntohs(addr.sin_port));
    fflush(stdout);

    struct epoll_event events[256];
    while (!stopping) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= MAX_CONNS) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    setsockopt(cfd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
                    Conn *c = calloc(1, sizeof *c);
                    c->fd = cfd;
                    c->heap_pos = -1;
                    c->token_ns = malloc(sizeof(int64_t) * (size_t)tokens);
                    conns[cfd] = c;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
                }
            } else if (fd == tfd) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0) { /* spurious: the heap decides */ }
                int64_t now = mono_ns();
                while (heap_n > 0 && heap[0]->due <= now) {
                    Conn *c = heap[0];
                    if (send_token(ep, c) < 0) {
                        c->t_end = mono_ns();
                        log_request(c);
                        close_conn(ep, c);
                    }
                }
                arm(tfd);
            } else {
                Conn *c = conns[fd];
                if (c == NULL) continue;
                if ((events[i].events & EPOLLOUT) && c->out_len) {
                    ssize_t w = send(fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
                    if (w > 0) {
                        memmove(c->out, c->out + w, c->out_len - (size_t)w);
                        c->out_len -= (size_t)w;
                    }
                    if (c->out_len == 0) {
                        struct epoll_event cev = {.events = EPOLLIN, .data.fd = fd};
                        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
                    }
                }
                if ((events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && read_conn(ep, c) < 0) {
                    if (c->active) {
                        c->t_end = mono_ns();
                        log_request(c);
                    }
                    close_conn(ep, c);
                    continue;
                }
                arm(tfd);
            }
        }
    }
    if (send_log) fclose(send_log);
    return 0;
}
