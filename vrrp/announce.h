/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6),
 * sent when an instance becomes MASTER (and again when it hears a second
 * master that loses to it) so that neighbours update their caches to this
 * node's MAC at once. Both are sent as whole Ethernet frames on a packet
 * socket. */

#include <netinet/in.h>
#include <stdint.h>

/* Send one gratuitous ARP request for ADDR out of IFINDEX, from MAC,
 * to the broadcast address. Returns 0 or -errno. */
int vrrp_announce_garp(int ifindex, const uint8_t mac[static 6], const struct in_addr *addr);

/* Length of the frame vrrp_announce_na_frame() builds: Ethernet, IPv6
 * header, neighbour advertisement with a target link-layer address option. */
#define VRRP_NA_FRAME_LEN (14 + 40 + 32)

/* Build an unsolicited neighbour advertisement for TARGET from SRC (a
 * link-local address of the interface) and MAC to ff02::1 (Ethernet
 * 33:33:00:00:00:01): hop limit 255, Router and Override flags set (RFC 9568
 * section 6.4: the virtual router is a router), Solicited clear, target link-layer
 * address option MAC, ICMPv6 checksum filled in. Pure. */
void vrrp_announce_na_frame(uint8_t frame[static VRRP_NA_FRAME_LEN], const uint8_t mac[static 6],
                            const struct in6_addr *src, const struct in6_addr *target);

/* Send the frame of vrrp_announce_na_frame() for ADDR out of IFINDEX as it
 * was built (a packet socket: the kernel neither picks the source nor
 * recomputes the checksum). Returns 0 or -errno. */
int vrrp_announce_na(int ifindex, const uint8_t mac[static 6], const struct in6_addr *src,
                     const struct in6_addr *addr);
