/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/macro.h"
#include "probe.h"

static uint16_t icmp_checksum(const void *data, size_t len) {
        const uint8_t *p = data;
        uint32_t sum = 0;

        for (; len > 1; p += 2, len -= 2)
                sum += (uint32_t) (p[0] << 8 | p[1]);
        if (len)
                sum += (uint32_t) (p[0] << 8);
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return htons((uint16_t) ~sum);
}

static socklen_t sockaddr_from(const struct ip_address *a, uint16_t port, struct sockaddr_storage *ss) {
        memset(ss, 0, sizeof(*ss));
        if (a->family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *) ss;
                sin->sin_family = AF_INET;
                sin->sin_port = htons(port);
                sin->sin_addr = a->addr.in;
                return sizeof(*sin);
        }
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        sin6->sin6_addr = a->addr.in6;
        return sizeof(*sin6);
}

int health_icmp_send(const struct ip_address *target, uint16_t id, uint16_t seq, int *ret_fd) {
        struct sockaddr_storage ss;
        socklen_t sl;
        uint8_t pkt[16] = {};
        int fd;

        if (target->family != AF_INET && target->family != AF_INET6)
                return -EAFNOSUPPORT;
        fd = socket(target->family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    target->family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
        if (fd < 0)
                return -errno;
        pkt[0] = target->family == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
        pkt[4] = id >> 8;
        pkt[5] = id & 0xff;
        pkt[6] = seq >> 8;
        pkt[7] = seq & 0xff;
        memcpy(pkt + 8, "hamgr-hc", 8);
        /* ICMPv6 raw sockets get their checksum from the kernel. */
        if (target->family == AF_INET) {
                uint16_t c = icmp_checksum(pkt, sizeof(pkt));
                memcpy(pkt + 2, &c, 2);
        }
        sl = sockaddr_from(target, 0, &ss);
        if (sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *) &ss, sl) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

int health_icmp_receive(int fd, const struct ip_address *target, uint16_t id, uint16_t seq) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        uint8_t buf[1500];
        const uint8_t *icmp = buf;
        ssize_t n;

        n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *) &from, &fl);
        if (n < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
        if (target->family == AF_INET) {
                /* Raw IPv4 sockets deliver the IP header too. */
                size_t ihl;

                if (n < 20)
                        return 0;
                ihl = (size_t) (buf[0] & 0x0f) * 4;
                if (ihl < 20 || (size_t) n < ihl + 8)
                        return 0;
                if (memcmp(buf + 12, &target->addr.in, 4) != 0)
                        return 0;
                icmp = buf + ihl;
                n -= (ssize_t) ihl;
                if (icmp[0] != ICMP_ECHOREPLY)
                        return 0;
        } else {
                const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *) &from;

                if (n < 8 || from.ss_family != AF_INET6 || memcmp(&s6->sin6_addr, &target->addr.in6, 16) != 0)
                        return 0;
                if (icmp[0] != ICMP6_ECHO_REPLY)
                        return 0;
        }
        return (icmp[4] << 8 | icmp[5]) == id && (icmp[6] << 8 | icmp[7]) == seq;
}

int health_tcp_connect(const struct ip_address *addr, uint16_t port, int *ret_fd) {
        struct sockaddr_storage ss;
        socklen_t sl;
        int fd;

        if (addr->family != AF_INET && addr->family != AF_INET6)
                return -EAFNOSUPPORT;
        fd = socket(addr->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        sl = sockaddr_from(addr, port, &ss);
        if (connect(fd, (struct sockaddr *) &ss, sl) < 0 && errno != EINPROGRESS) {
                int r = -errno;
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

int health_tcp_result(int fd) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                return -errno;
        return -err;
}
