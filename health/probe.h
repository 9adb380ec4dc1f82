/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Thin network probes for health checks. Each starts an operation on a
 * non-blocking socket and returns its fd; the caller waits for it on its
 * event loop (with its own timeout) and asks for the outcome. No clocks.
 */

#include <stdint.h>

#include "common/ipaddr.h"

/* Send one ICMP (or ICMPv6) echo request with identifier ID and sequence
 * SEQ to TARGET from a raw socket (needs CAP_NET_RAW). Returns 0 and the
 * socket in *ret_fd, or -errno. */
int health_icmp_send(const struct ip_address *target, uint16_t id, uint16_t seq, int *ret_fd);

/* Read one queued ICMP message from FD. Returns 1 when it is the echo reply
 * to (ID, SEQ) from TARGET, 0 for anything else, -EAGAIN when nothing is
 * queued, or -errno. */
int health_icmp_receive(int fd, const struct ip_address *target, uint16_t id, uint16_t seq);

/* Start a non-blocking TCP connect to ADDR:PORT. Returns 0 and *ret_fd;
 * wait for EPOLLOUT, then call health_tcp_result(). -errno on failure. */
int health_tcp_connect(const struct ip_address *addr, uint16_t port, int *ret_fd);

/* Outcome of the connect started on FD: 0 connected, or -errno. */
int health_tcp_result(int fd);
