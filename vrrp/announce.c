/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "announce.h"
#include "common/macro.h"

#ifndef SO_BINDTOIFINDEX
#define SO_BINDTOIFINDEX 62
#endif

#define ARP_FRAME_LEN  (ETH_HLEN + 28) /* Ethernet + ARP for IPv4 over Ethernet */
#define NA_MESSAGE_LEN (sizeof(struct nd_neighbor_advert) + 8) /* + target link-layer option */

_Static_assert(ARP_FRAME_LEN <= ETH_ZLEN, "ARP frame must fit the padded frame");

/* An ARP request with sender = target = ADDR (RFC 5227 §3 "ARP Announcement",
 * as keepalived and arping -U send it): every neighbour that has ADDR cached
 * updates it to MAC, and nobody answers. */
static void garp_frame(uint8_t frame[static ETH_ZLEN], const uint8_t mac[static 6], const struct in_addr *addr) {
        uint8_t *p = frame;

        memset(frame, 0, ETH_ZLEN);

        memset(p, 0xff, ETH_ALEN); /* destination: broadcast */
        p += ETH_ALEN;
        memcpy(p, mac, ETH_ALEN);
        p += ETH_ALEN;
        *p++ = ETHERTYPE_ARP >> 8;
        *p++ = ETHERTYPE_ARP & 0xff;

        *p++ = ARPHRD_ETHER >> 8;
        *p++ = ARPHRD_ETHER & 0xff;
        *p++ = ETHERTYPE_IP >> 8;
        *p++ = ETHERTYPE_IP & 0xff;
        *p++ = ETH_ALEN;
        *p++ = sizeof(struct in_addr);
        *p++ = ARPOP_REQUEST >> 8;
        *p++ = ARPOP_REQUEST & 0xff;
        memcpy(p, mac, ETH_ALEN); /* sender hardware address */
        p += ETH_ALEN;
        memcpy(p, addr, sizeof(*addr)); /* sender protocol address */
        p += sizeof(*addr);
        p += ETH_ALEN; /* target hardware address: zero */
        memcpy(p, addr, sizeof(*addr)); /* target protocol address */
        /* The rest up to ETH_ZLEN stays zero: padded here so the frame is the
         * same whatever the driver does with runts. */
}

int vrrp_announce_garp(int ifindex, const uint8_t mac[static 6], const struct in_addr *addr) {
        _cleanup_(closep) int fd = -1;
        uint8_t frame[ETH_ZLEN];
        struct sockaddr_ll sll = {
                .sll_family = AF_PACKET,
                .sll_ifindex = ifindex,
        };
        ssize_t n;

        if (ifindex <= 0 || !mac || !addr)
                return -EINVAL;

        /* Protocol 0: this socket only sends, it never receives a frame. */
        fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sll, sizeof(sll)) < 0)
                return -errno;

        garp_frame(frame, mac, addr);

        sll.sll_protocol = htons(ETH_P_ARP);
        sll.sll_halen = ETH_ALEN;
        memset(sll.sll_addr, 0xff, ETH_ALEN);
        n = sendto(fd, frame, sizeof(frame), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *) &sll, sizeof(sll));
        if (n < 0)
                return -errno;
        if ((size_t) n != sizeof(frame))
                return -EIO;
        return 0;
}

static int setsockopt_int(int fd, int level, int name, int value) {
        if (setsockopt(fd, level, name, &value, sizeof(value)) < 0)
                return -errno;
        return 0;
}

int vrrp_announce_na(int ifindex, const uint8_t mac[static 6], const struct in6_addr *addr) {
        _cleanup_(closep) int fd = -1;
        struct icmp6_filter filter;
        uint8_t msg[NA_MESSAGE_LEN] = {};
        struct nd_neighbor_advert na = {
                .nd_na_type = ND_NEIGHBOR_ADVERT,
                .nd_na_code = 0,
                /* Override, so neighbours replace a cached MAC; not Solicited
                 * (nobody asked); not Router (a VRRP address is a host
                 * address here; RFC 4861 §7.2.6). */
                .nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE,
        };
        struct nd_opt_hdr opt = {
                .nd_opt_type = ND_OPT_TARGET_LINKADDR,
                .nd_opt_len = 1, /* in units of 8 bytes */
        };
        struct sockaddr_in6 to = {
                .sin6_family = AF_INET6,
                .sin6_addr = { .s6_addr = { 0xff, 0x02, [15] = 0x01 } }, /* ff02::1 */
                .sin6_scope_id = ifindex,
        };
        ssize_t n;
        int r;

        if (ifindex <= 0 || !mac || !addr)
                return -EINVAL;

        /* The kernel computes the ICMPv6 checksum (pseudo-header included)
         * and picks the link-local source address neighbours expect. */
        fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
        if (fd < 0)
                return -errno;

        /* Send-only: keep every incoming ICMPv6 message off this socket. */
        ICMP6_FILTER_SETBLOCKALL(&filter);
        if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof(filter)) < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &ifindex, sizeof(ifindex)) < 0)
                return -errno;
        /* RFC 4861 §7.1.2: receivers drop an NA with a hop limit below 255. */
        r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 255);
        if (r < 0)
                return r;
        r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, ifindex);
        if (r < 0)
                return r;
        r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0);
        if (r < 0)
                return r;

        na.nd_na_target = *addr;
        memcpy(msg, &na, sizeof(na));
        memcpy(msg + sizeof(na), &opt, sizeof(opt));
        memcpy(msg + sizeof(na) + sizeof(opt), mac, ETH_ALEN);

        n = sendto(fd, msg, sizeof(msg), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *) &to, sizeof(to));
        if (n < 0)
                return -errno;
        if ((size_t) n != sizeof(msg))
                return -EIO;
        return 0;
}
