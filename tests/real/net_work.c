/* A known network workload over loopback, for tests/real/test_net_real.py.
 *
 *   net_work tcp TX RX   connect to a forked peer, send exactly TX bytes, receive exactly RX bytes
 *   net_work udp N SIZE  send N datagrams of SIZE bytes to its own UDP socket, receiving each
 *   net_work conns N     N TCP connections to a forked peer: each sends one byte, the peer reads it
 *   net_work refused     one connect to a loopback port nothing listens on
 *   net_work sendfile N  sendfile(2) N bytes of a file to a forked peer over TCP
 *
 * It prints "peer PID" (tcp, conns), "listen PORT" and, for conns, "port P" for each
 * connection's local port, then "done". Exits non-zero on any failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static char buf[65536];

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int listener(int type, struct sockaddr_in *a)
{
    int s = socket(AF_INET, type, 0);
    socklen_t len = sizeof(*a);
    if (s < 0)
        die("socket");
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)a, sizeof(*a)) || getsockname(s, (struct sockaddr *)a, &len))
        die("bind");
    if (type == SOCK_STREAM && listen(s, 128))
        die("listen");
    return s;
}

static void send_all(int s, long n)
{
    while (n > 0) {
        ssize_t w = send(s, buf, n < (long)sizeof(buf) ? n : (long)sizeof(buf), 0);
        if (w <= 0)
            die("send");
        n -= w;
    }
}

static void recv_all(int s, long n)
{
    while (n > 0) {
        ssize_t r = recv(s, buf, n < (long)sizeof(buf) ? n : (long)sizeof(buf), 0);
        if (r <= 0)
            die("recv");
        n -= r;
    }
}

static int dial(struct sockaddr_in *a)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0)
        die("socket");
    if (connect(c, (struct sockaddr *)a, sizeof(*a)))
        die("connect");
    return c;
}

static pid_t fork_peer(void)
{
    fflush(stdout);
    pid_t p = fork();
    if (p < 0)
        die("fork");
    return p;
}

static int wait_peer(pid_t p)
{
    int st = 0;
    if (waitpid(p, &st, 0) < 0)
        die("waitpid");
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct sockaddr_in a;
    if (argc < 2)
        return 2;
    memset(buf, 'x', sizeof(buf));
    if (!strcmp(argv[1], "tcp") && argc == 4) {
        long tx = atol(argv[2]), rx = atol(argv[3]);
        int l = listener(SOCK_STREAM, &a);
        pid_t p = fork_peer();
        if (p == 0) {
            int s = accept(l, 0, 0);
            if (s < 0)
                die("accept");
            recv_all(s, tx);
            send_all(s, rx);
            close(s);
            _exit(0);
        }
        printf("peer %d\nlisten %d\n", p, ntohs(a.sin_port));
        close(l);
        int c = dial(&a);
        send_all(c, tx);
        recv_all(c, rx);
        close(c);
        if (wait_peer(p))
            return 1;
    } else if (!strcmp(argv[1], "udp") && argc == 4) {
        long n = atol(argv[2]), size = atol(argv[3]);
        int r = listener(SOCK_DGRAM, &a);
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        if (s < 0 || size > (long)sizeof(buf))
            die("udp");
        for (long i = 0; i < n; i++) {
            if (sendto(s, buf, size, 0, (struct sockaddr *)&a, sizeof(a)) != size)
                die("sendto");
            if (recv(r, buf, sizeof(buf), 0) != size)
                die("recv");
        }
        printf("listen %d\n", ntohs(a.sin_port));
    } else if (!strcmp(argv[1], "conns") && argc == 3) {
        long n = atol(argv[2]);
        int l = listener(SOCK_STREAM, &a);
        pid_t p = fork_peer();
        if (p == 0) {
            for (long i = 0; i < n; i++) {
                int s = accept(l, 0, 0);
                if (s < 0)
                    die("accept");
                recv_all(s, 1);
                close(s);
            }
            _exit(0);
        }
        printf("peer %d\nlisten %d\n", p, ntohs(a.sin_port));
        close(l);
        for (long i = 0; i < n; i++) {
            struct sockaddr_in me;
            socklen_t len = sizeof(me);
            int c = dial(&a);
            if (getsockname(c, (struct sockaddr *)&me, &len))
                die("getsockname");
            printf("port %d\n", ntohs(me.sin_port));
            send_all(c, 1);
            close(c);
        }
        if (wait_peer(p))
            return 1;
    } else if (!strcmp(argv[1], "sendfile") && argc == 3) {
        long n = atol(argv[2]);
        FILE *f = tmpfile();
        if (!f)
            die("tmpfile");
        for (long left = n; left > 0; left -= (long)sizeof(buf))
            if (fwrite(buf, 1, left < (long)sizeof(buf) ? left : (long)sizeof(buf), f) == 0)
                die("fwrite");
        fflush(f);
        int l = listener(SOCK_STREAM, &a);
        pid_t p = fork_peer();
        if (p == 0) {
            int s = accept(l, 0, 0);
            if (s < 0)
                die("accept");
            recv_all(s, n);
            close(s);
            _exit(0);
        }
        printf("peer %d\nlisten %d\n", p, ntohs(a.sin_port));
        close(l);
        int c = dial(&a);
        off_t off = 0;
        while (off < n)
            if (sendfile(c, fileno(f), &off, n - off) <= 0)
                die("sendfile");
        close(c);
        if (wait_peer(p))
            return 1;
    } else if (!strcmp(argv[1], "refused") && argc == 2) {
        int l = listener(SOCK_STREAM, &a);
        close(l); /* the port is free again: nothing listens on it */
        printf("listen %d\n", ntohs(a.sin_port));
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0)
            die("socket");
        if (connect(c, (struct sockaddr *)&a, sizeof(a)) == 0 || errno != ECONNREFUSED)
            die("connect was not refused");
        close(c);
    } else {
        return 2;
    }
    printf("done\n");
    return 0;
}
