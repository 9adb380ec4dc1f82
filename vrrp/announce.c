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
#include "packet.h"

#define ARP_FRAME_LEN  (ETH_HLEN + 28) /* Ethernet + ARP for IPv4 over Ethernet */

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

/* Send FRAME (LEN bytes, Ethernet header included) out of IFINDEX. */
static int send_frame(int ifindex, uint16_t ethertype, const uint8_t *frame, size_t len) {
        _cleanup_(closep) int fd = -1;
        struct sockaddr_ll sll = {
                .sll_family = AF_PACKET,
                .sll_ifindex = ifindex,
        };
        ssize_t n;

        /* Protocol 0: this socket only sends, it never receives a frame. */
        fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sll, sizeof(sll)) < 0)
                return -errno;

        sll.sll_protocol = htons(ethertype);
        sll.sll_halen = ETH_ALEN;
        memcpy(sll.sll_addr, frame, ETH_ALEN);
        n = sendto(fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *) &sll, sizeof(sll));
        if (n < 0)
                return -errno;
        if ((size_t) n != len)
                return -EIO;
        return 0;
}

int vrrp_announce_garp(int ifindex, const uint8_t mac[static 6], const struct in_addr *addr) {
        uint8_t frame[ETH_ZLEN];

        if (ifindex <= 0 || !mac || !addr)
                return -EINVAL;
        garp_frame(frame, mac, addr);
        return send_frame(ifindex, ETHERTYPE_ARP, frame, sizeof(frame));
}

#define NA_ICMP_LEN (VRRP_NA_FRAME_LEN - ETH_HLEN - 40)

void vrrp_announce_na_frame(uint8_t frame[static VRRP_NA_FRAME_LEN], const uint8_t mac[static 6],
                            const struct in6_addr *src, const struct in6_addr *target) {
        static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 0x01 };
        uint8_t *p = frame, *ip6, *icmp;
        uint8_t tail[8] = {};
        uint32_t sum;
        uint16_t csum;

        memset(frame, 0, VRRP_NA_FRAME_LEN);

        /* Ethernet: the multicast MAC of ff02::1 (RFC 2464 section 7) */
        *p++ = 0x33;
        *p++ = 0x33;
        memcpy(p, all_nodes + 12, 4);
        p += 4;
        memcpy(p, mac, ETH_ALEN);
        p += ETH_ALEN;
        *p++ = ETHERTYPE_IPV6 >> 8;
        *p++ = ETHERTYPE_IPV6 & 0xff;

        ip6 = p;
        *p++ = 0x60; /* version 6, traffic class and flow label 0 */
        p += 3;
        *p++ = NA_ICMP_LEN >> 8;
        *p++ = NA_ICMP_LEN & 0xff;
        *p++ = IPPROTO_ICMPV6;
        *p++ = 255; /* RFC 4861 7.1.2: receivers drop an NA with a lower hop limit */
        memcpy(p, src, 16);
        p += 16;
        memcpy(p, all_nodes, 16);
        p += 16;

        icmp = p;
        *p++ = ND_NEIGHBOR_ADVERT;
        *p++ = 0; /* code */
        p += 2;   /* checksum, below */
        /* Router: the address belongs to a virtual router (RFC 9568 section 6.4),
         * and a neighbour that uses it as its gateway must keep it marked
         * as one. Override, so neighbours replace a cached MAC. Not
         * Solicited: nobody asked. */
        *p++ = 0x80 | 0x20; /* R, O; S (0x40) clear */
        p += 3;
        memcpy(p, target, 16);
        p += 16;
        *p++ = ND_OPT_TARGET_LINKADDR;
        *p++ = 1; /* in units of 8 bytes */
        memcpy(p, mac, ETH_ALEN);

        /* RFC 8200 8.1 pseudo-header: addresses, 32-bit length, next header */
        tail[2] = NA_ICMP_LEN >> 8;
        tail[3] = NA_ICMP_LEN & 0xff;
        tail[7] = IPPROTO_ICMPV6;
        sum = inet_checksum_add(0, ip6 + 8, 32);
        sum = inet_checksum_add(sum, tail, sizeof(tail));
        sum = inet_checksum_add(sum, icmp, NA_ICMP_LEN);
        csum = inet_checksum_finish(sum);
        icmp[2] = (uint8_t) (csum >> 8);
        icmp[3] = (uint8_t) csum;
}

int vrrp_announce_na(int ifindex, const uint8_t mac[static 6], const struct in6_addr *src,
                     const struct in6_addr *addr) {
        uint8_t frame[VRRP_NA_FRAME_LEN];

        if (ifindex <= 0 || !mac || !src || !addr)
                return -EINVAL;
        vrrp_announce_na_frame(frame, mac, src, addr);
        return send_frame(ifindex, ETHERTYPE_IPV6, frame, sizeof(frame));
}
