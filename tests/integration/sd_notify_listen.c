/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Stand-in for systemd's notify socket in tests: bind a Unix datagram
 * socket at PATH and print every message received, one field a line,
 * prefixed by the receive time in ms (CLOCK_MONOTONIC) and the message's
 * number (from 1), until killed: "MS N FIELD". The number tells which
 * fields came in one datagram.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char buf[4096];
        unsigned long msgno = 0;
        int fd;

        if (argc != 2 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "usage: sd_notify_listen PATH\n");
                return 2;
        }
        strcpy(sa.sun_path, argv[1]);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || (unlink(argv[1]), bind(fd, (struct sockaddr *) &sa, sizeof(sa))) < 0) {
                fprintf(stderr, "sd_notify_listen: %s: %s\n", argv[1], strerror(errno));
                return 1;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        for (;;) {
                struct timespec ts;
                ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
                char *line, *save = NULL;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return 1;
                }
                buf[n] = '\0';
                clock_gettime(CLOCK_MONOTONIC, &ts);
                msgno++;
                for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                        printf("%lld %lu %s\n", (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000, msgno, line);
        }
}
