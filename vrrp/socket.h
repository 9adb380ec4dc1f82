/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Thin raw-socket I/O for VRRP advertisements. No protocol logic here. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ipaddr.h"
#include "packet.h"

/*
 * Open a non-blocking raw IPPROTO_VRRP socket of FAMILY bound to IFNAME
 * (SO_BINDTODEVICE), sending with TTL / hop limit 255 (unicast and
 * multicast), multicast loopback off, and reporting the received TTL / hop
 * limit and destination address. With JOIN_MULTICAST it joins 224.0.0.18 or
 * ff02::12 on IFINDEX. Returns the fd or -errno.
 */
int vrrp_socket_open(int family, int ifindex, const char *ifname, bool join_multicast);

/*
 * Send unicast adverts on FD (from vrrp_socket_open(), of FAMILY) with TTL /
 * hop limit TTL (1..255) instead of 255, for peers behind routers.
 * Multicast adverts keep 255. Returns 0 or -errno (-EINVAL for TTL 0).
 */
int vrrp_socket_set_unicast_ttl(int fd, int family, int ttl);

/*
 * Receive one datagram from FD into BUF. For IPv4 the IP header is parsed
 * and stripped. On success returns 0, fills *ret_meta (family, src, dst,
 * ttl), points *ret_payload into BUF with *ret_len bytes. Returns -EAGAIN
 * when nothing is queued, -EBADMSG with *ret_reason for a malformed IP
 * layer or a datagram larger than BUFSIZE ("truncated datagram"), or -errno.
 * For IPv6 a missing hop limit gives ttl 0, so the codec rejects it.
 */
int vrrp_socket_recv(int fd, int family, uint8_t *buf, size_t bufsize, struct vrrp_ip_meta *ret_meta,
                     const uint8_t **ret_payload, size_t *ret_len, const char **ret_reason);

/* Send the VRRP message MSG (LEN bytes) from SRC to DST out of IFINDEX with
 * TTL / hop limit 255 (unicast: see vrrp_socket_set_unicast_ttl()).
 * Returns 0 or -errno. */
int vrrp_socket_send(int fd, int ifindex, const struct ip_address *src, const struct ip_address *dst,
                     const uint8_t *msg, size_t len);

/* The VRRP multicast group of FAMILY (224.0.0.18 or ff02::12); for any
 * other family an all-zero address with family AF_UNSPEC. */
struct ip_address vrrp_multicast_group(int family);
