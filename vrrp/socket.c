/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common/macro.h"
#include "packet.h"
#include "socket.h"

static int setsockopt_int(int fd, int level, int name, int value) {
        if (setsockopt(fd, level, name, &value, sizeof(value)) < 0)
                return -errno;
        return 0;
}

static int socket_setup_ipv4(int fd, int ifindex, bool join_multicast) {
        struct ip_mreqn mreq = { .imr_ifindex = ifindex };
        int r;

        /* RFC 5798 §5.1.1.3: receivers drop anything with a TTL other than
         * 255, so unicast (TTL) must match multicast. */
        r = setsockopt_int(fd, IPPROTO_IP, IP_MULTICAST_TTL, VRRP_TTL);
        if (r < 0)
                return r;
        r = setsockopt_int(fd, IPPROTO_IP, IP_TTL, VRRP_TTL);
        if (r < 0)
                return r;
        /* Internetwork control precedence, as keepalived and routers mark
         * their adverts, so QoS on a busy link does not delay them. */
        r = setsockopt_int(fd, IPPROTO_IP, IP_TOS, VRRP_TOS);
        if (r < 0)
                return r;
        /* Our own adverts must not come back and be taken for a peer's. */
        r = setsockopt_int(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 0);
        if (r < 0)
                return r;
        r = setsockopt_int(fd, IPPROTO_IP, IP_PKTINFO, 1);
        if (r < 0)
                return r;
        r = setsockopt_int(fd, IPPROTO_IP, IP_RECVTTL, 1);
        if (r < 0)
                return r;
        if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof(mreq)) < 0)
                return -errno;

        if (join_multicast) {
                struct ip_address group = vrrp_multicast_group(AF_INET);

                mreq.imr_multiaddr = group.addr.in;
                if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) < 0)
                        return -errno;
        }
        return 0;
}

static int socket_setup_ipv6(int fd, int ifindex, bool join_multicast) {
        int r;

        /* IPV6_CHECKSUM stays off (the default for non-ICMPv6 raw sockets):
         * the codec writes the checksum, and the kernel must not touch it. */
        r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, VRRP_TTL);
        if (r < 0)
                return r;
        r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, VRRP_TTL);
        if (r < 0)
                return r;
        r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_TCLASS, VRRP_TOS);
        if (r < 0)
                return r;
        r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0);
        if (r < 0)
                return r;
        r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1);
        if (r < 0)
                return r;
        r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
        if (r < 0)
                return r;
        r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, ifindex);
        if (r < 0)
                return r;

        if (join_multicast) {
                struct ip_address group = vrrp_multicast_group(AF_INET6);
                struct ipv6_mreq mreq = {
                        .ipv6mr_multiaddr = group.addr.in6,
                        .ipv6mr_interface = ifindex,
                };

                if (setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) < 0)
                        return -errno;
        }
        return 0;
}

int vrrp_socket_open(int family, int ifindex, const char *ifname, bool join_multicast) {
        _cleanup_(closep) int fd = -1;
        size_t n;
        int r;

        if (family != AF_INET && family != AF_INET6)
                return -EAFNOSUPPORT;
        if (ifindex <= 0 || !ifname)
                return -EINVAL;
        n = strlen(ifname);
        if (n == 0 || n >= IFNAMSIZ)
                return -EINVAL;

        fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, VRRP_IPPROTO);
        if (fd < 0)
                return -errno;

        /* Without this a raw socket sees protocol 112 from every interface. */
        if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, n + 1) < 0)
                return -errno;

        if (family == AF_INET)
                r = socket_setup_ipv4(fd, ifindex, join_multicast);
        else
                r = socket_setup_ipv6(fd, ifindex, join_multicast);
        if (r < 0)
                return r;

        return TAKE_FD(fd);
}

int vrrp_socket_set_unicast_ttl(int fd, int family, int ttl) {
        if (ttl < 1 || ttl > VRRP_TTL)
                return -EINVAL;
        if (family == AF_INET)
                return setsockopt_int(fd, IPPROTO_IP, IP_TTL, ttl);
        if (family == AF_INET6)
                return setsockopt_int(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl);
        return -EAFNOSUPPORT;
}

static int socket_recv_ipv6(struct msghdr *mh, const struct sockaddr_in6 *from, struct vrrp_ip_meta *meta,
                            const char **ret_reason) {
        bool have_dst = false;

        *meta = (struct vrrp_ip_meta) {
                .family = AF_INET6,
                .src = { .family = AF_INET6, .addr.in6 = from->sin6_addr },
                /* A missing hop limit must not pass the codec's TTL check. */
                .ttl = 0,
        };

        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                if (c->cmsg_level != IPPROTO_IPV6)
                        continue;
                if (c->cmsg_type == IPV6_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
                        struct in6_pktinfo pi;

                        memcpy(&pi, CMSG_DATA(c), sizeof(pi));
                        meta->dst = (struct ip_address) { .family = AF_INET6, .addr.in6 = pi.ipi6_addr };
                        have_dst = true;
                } else if (c->cmsg_type == IPV6_HOPLIMIT && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
                        int hl;

                        memcpy(&hl, CMSG_DATA(c), sizeof(hl));
                        meta->ttl = hl;
                }
        }

        if (!have_dst) {
                if (ret_reason)
                        *ret_reason = "no destination address (IPV6_PKTINFO missing)";
                return -EBADMSG;
        }
        return 0;
}

int vrrp_socket_recv(int fd, int family, uint8_t *buf, size_t bufsize, struct vrrp_ip_meta *ret_meta,
                     const uint8_t **ret_payload, size_t *ret_len, const char **ret_reason) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int)) +
                            CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(int))];
        } control;
        struct sockaddr_storage from = {};
        struct iovec iov = { .iov_base = buf, .iov_len = bufsize };
        struct msghdr mh = {
                .msg_name = &from,
                .msg_namelen = sizeof(from),
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        struct vrrp_ip_meta meta;
        const uint8_t *payload;
        size_t payload_len;
        ssize_t n;
        int r;

        if (family != AF_INET && family != AF_INET6)
                return -EAFNOSUPPORT;
        if (!buf || !ret_meta || !ret_payload || !ret_len)
                return -EINVAL;

        n = recvmsg(fd, &mh, MSG_DONTWAIT);
        if (n < 0)
                return -errno;

        /* A cut-off message would fail the length or checksum check anyway;
         * say what actually happened. */
        if (mh.msg_flags & MSG_TRUNC) {
                if (ret_reason)
                        *ret_reason = "truncated datagram";
                return -EBADMSG;
        }

        if (family == AF_INET) {
                /* Raw IPv4 sockets deliver the IP header: TTL, source and
                 * destination come from it, no ancillary data needed. */
                r = vrrp_ipv4_split(buf, (size_t) n, &meta, &payload, &payload_len, ret_reason);
                if (r < 0)
                        return r;
        } else {
                if (mh.msg_namelen < sizeof(struct sockaddr_in6) || from.ss_family != AF_INET6) {
                        if (ret_reason)
                                *ret_reason = "no source address";
                        return -EBADMSG;
                }
                r = socket_recv_ipv6(&mh, (const struct sockaddr_in6 *) &from, &meta, ret_reason);
                if (r < 0)
                        return r;
                payload = buf;
                payload_len = (size_t) n;
        }

        *ret_meta = meta;
        *ret_payload = payload;
        *ret_len = payload_len;
        return 0;
}

int vrrp_socket_send(int fd, int ifindex, const struct ip_address *src, const struct ip_address *dst,
                     const uint8_t *msg, size_t len) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
        } control = {};
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
        } to = {};
        struct iovec iov = { .iov_base = (void *) msg, .iov_len = len };
        struct msghdr mh = {
                .msg_name = &to,
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
        };
        struct cmsghdr *c;
        ssize_t n;

        if (!src || !dst || !msg || ifindex <= 0)
                return -EINVAL;
        if (src->family != dst->family)
                return -EINVAL;

        /* PKTINFO pins both the source address (the kernel would otherwise
         * pick the interface's preferred one, which may be a virtual IP) and
         * the outgoing interface. */
        if (dst->family == AF_INET) {
                struct in_pktinfo pi = {
                        .ipi_ifindex = ifindex,
                        .ipi_spec_dst = src->addr.in,
                };

                to.in = (struct sockaddr_in) { .sin_family = AF_INET, .sin_addr = dst->addr.in };
                mh.msg_namelen = sizeof(to.in);
                mh.msg_controllen = CMSG_SPACE(sizeof(pi));
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = IPPROTO_IP;
                c->cmsg_type = IP_PKTINFO;
                c->cmsg_len = CMSG_LEN(sizeof(pi));
                memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        } else if (dst->family == AF_INET6) {
                struct in6_pktinfo pi = {
                        .ipi6_addr = src->addr.in6,
                        .ipi6_ifindex = ifindex,
                };

                to.in6 = (struct sockaddr_in6) { .sin6_family = AF_INET6, .sin6_addr = dst->addr.in6 };
                if (IN6_IS_ADDR_LINKLOCAL(&dst->addr.in6) || IN6_IS_ADDR_MULTICAST(&dst->addr.in6))
                        to.in6.sin6_scope_id = ifindex;
                mh.msg_namelen = sizeof(to.in6);
                mh.msg_controllen = CMSG_SPACE(sizeof(pi));
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = IPPROTO_IPV6;
                c->cmsg_type = IPV6_PKTINFO;
                c->cmsg_len = CMSG_LEN(sizeof(pi));
                memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        } else
                return -EAFNOSUPPORT;

        n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0)
                return -errno;
        if ((size_t) n != len)
                return -EIO;
        return 0;
}

struct ip_address vrrp_multicast_group(int family) {
        struct ip_address a = {};

        if (family == AF_INET) {
                a.family = AF_INET;
                a.addr.in.s_addr = htonl(UINT32_C(0xe0000012)); /* 224.0.0.18 */
        } else if (family == AF_INET6) {
                a.family = AF_INET6;
                a.addr.in6 = (struct in6_addr) { .s6_addr = { 0xff, 0x02, [15] = 0x12 } }; /* ff02::12 */
        }
        return a;
}
