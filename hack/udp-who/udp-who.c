/* A UDP server for tests: answers every datagram on PORT (IPv4 and IPv6) with the host name, so a
   client can tell which pod a Service sent it to. Exits on SIGINT/SIGTERM (it runs as a
   container's PID 1, which ignores signals it does not handle). Built static for the busybox image. */
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }

int main(int argc, char **argv) {
    struct sigaction term = { .sa_handler = on_term };
    sigaction(SIGINT, &term, NULL);
    sigaction(SIGTERM, &term, NULL);
    int port = argc > 1 ? atoi(argv[1]) : 5353;
    int fd = socket(AF_INET6, SOCK_DGRAM, 0), off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    struct sockaddr_in6 addr = { .sin6_family = AF_INET6, .sin6_port = htons((unsigned short)port), .sin6_addr = IN6ADDR_ANY_INIT };
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) return 1;
    char name[256] = {0};
    gethostname(name, sizeof name - 2);
    strcat(name, "\n");
    for (;;) {
        char buf[512];
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        if (recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len) < 0) continue;
        sendto(fd, name, strlen(name), 0, (struct sockaddr *)&peer, len);
    }
}
