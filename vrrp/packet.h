/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * VRRP advertisement codec (RFC 3768 v2, RFC 5798 / RFC 9568 v3).
 * Bytes in, struct out: no sockets, no clocks, no logging above debug.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ipaddr.h"

#define VRRP_IPPROTO            112
#define VRRP_TTL                255
#define VRRP_TOS                0xc0 /* IPTOS_PREC_INTERNETCONTROL / traffic class CS6 */
#define VRRP_TYPE_ADVERTISEMENT 1
#define VRRP_HEADER_LEN         8
#define VRRP_V2_AUTH_LEN        8
/* RFC 2338 5.3.6: v2 authentication types. RFC 3768 removed both; type 1
 * (a clear-text password) is still what keepalived's "auth_type PASS" sends. */
#define VRRP_AUTH_NONE          0
#define VRRP_AUTH_SIMPLE        1
#define VRRP_AUTH_AH            2
#define VRRP_MAX_ADDRS          255
#define VRRP_PRIORITY_STOP      0
#define VRRP_PRIORITY_OWNER     255
#define VRRP_V3_MAX_INTERVAL_CS 4095
/* Largest message: header + 255 IPv6 addresses. */
#define VRRP_MAX_MESSAGE_LEN    (VRRP_HEADER_LEN + VRRP_MAX_ADDRS * 16 + VRRP_V2_AUTH_LEN)

/* Which v3 checksum form to compute. For IPv6 both are the same (RFC 2460
 * pseudo-header). For IPv4, RFC 5798 as deployed (keepalived, FRR) covers an
 * IPv4 pseudo-header; RFC 9568 covers the VRRP message alone. v2 never uses a
 * pseudo-header. */
enum vrrp_checksum_mode {
        VRRP_CHECKSUM_RFC5798,
        VRRP_CHECKSUM_RFC9568,
        _VRRP_CHECKSUM_MAX,
};

const char *vrrp_checksum_mode_to_string(enum vrrp_checksum_mode m);
/* Returns the mode, or -EINVAL for an unknown name. */
int vrrp_checksum_mode_from_string(const char *s);

/* What the codec needs from the IP layer around the message. */
struct vrrp_ip_meta {
        int family;              /* AF_INET or AF_INET6 */
        struct ip_address src;
        struct ip_address dst;
        int ttl;                 /* TTL / hop limit as received; -1 if unknown (then not checked) */
};

struct vrrp_advert {
        uint8_t version;         /* 2 or 3 */
        uint8_t vrid;            /* 1..255 */
        uint8_t priority;        /* 0..255 */
        uint8_t auth_type;       /* v2 only: VRRP_AUTH_NONE or VRRP_AUTH_SIMPLE */
        /* v2 VRRP_AUTH_SIMPLE: the password, zero-padded (not a string: all
         * 8 bytes may be used). All zero otherwise. */
        uint8_t auth_data[VRRP_V2_AUTH_LEN];
        /* Advertisement interval in centiseconds. v2 carries whole seconds on
         * the wire; the codec converts (1 s = 100 cs). */
        uint16_t max_adver_int_cs;
        int family;              /* AF_INET or AF_INET6, family of addrs[] */
        uint8_t n_addrs;
        union in_addr_union addrs[VRRP_MAX_ADDRS];
        /* Set by vrrp_advert_parse(): RFC5798 when an IPv4 pseudo-header was
         * needed to match, otherwise RFC9568 (v2, IPv6, or message-only IPv4). */
        enum vrrp_checksum_mode checksum_mode;
};

/* Which check a message failed in vrrp_advert_check(). */
enum vrrp_parse_error {
        VRRP_PARSE_TRUNCATED,           /* shorter than the fixed header */
        VRRP_PARSE_FAMILY,              /* META missing or not AF_INET/AF_INET6 */
        VRRP_PARSE_VERSION,             /* not 2 or 3 */
        VRRP_PARSE_V2_OVER_IPV6,
        VRRP_PARSE_TYPE,                /* not ADVERTISEMENT */
        VRRP_PARSE_TTL,                 /* TTL / hop limit other than 255 */
        VRRP_PARSE_VRID,                /* vrid 0 */
        VRRP_PARSE_ZERO_ADDRESSES,
        VRRP_PARSE_LENGTH,              /* address count does not match the length */
        VRRP_PARSE_CHECKSUM,
        VRRP_PARSE_AUTH_TYPE,           /* v2 authentication type other than 0 and 1 */
        VRRP_PARSE_ZERO_INTERVAL,
        _VRRP_PARSE_ERROR_MAX,
};

/* A short human-readable description ("bad checksum"), NULL if out of range. */
const char *vrrp_parse_error_to_string(enum vrrp_parse_error e);

/*
 * As vrrp_advert_parse(), but reports a failed check as an enum so that a
 * caller can count by cause: returns 0 and fills *ret, or -EBADMSG with
 * *ret_error set (ret untouched). ret_error may be NULL.
 */
int vrrp_advert_check(const uint8_t *buf, size_t len, const struct vrrp_ip_meta *meta,
                      struct vrrp_advert *ret, enum vrrp_parse_error *ret_error);

/*
 * Parse a VRRP message (the IP payload, starting with the version field).
 * Checks: length, version 2 or 3 (v2 only with IPv4), type ADVERTISEMENT,
 * vrid != 0, address count != 0 (RFC 9568 5.2.5), v2 authentication type 0
 * (authentication data ignored) or 1 (simple password: the data is returned
 * in auth_data, comparing it is the caller's business), address count fits the length exactly (v2: plus 8 bytes of
 * authentication data), v3 interval != 0, v2 interval != 0, TTL == 255 when
 * meta->ttl >= 0, and the checksum. For v3 both checksum forms are accepted;
 * for IPv4 the RFC 5798 form is also accepted with meta->dst replaced by
 * 224.0.0.18, as old keepalived computed it for unicast. META NULL or of a
 * family other than AF_INET/AF_INET6 is rejected too.
 *
 * Returns 0 and fills *ret, or -EBADMSG with *ret_reason set to a static
 * string naming the failed check, vrrp_parse_error_to_string() of the cause
 * vrrp_advert_check() reports (ret untouched). ret_reason may be NULL.
 */
int vrrp_advert_parse(const uint8_t *buf, size_t len, const struct vrrp_ip_meta *meta,
                      struct vrrp_advert *ret, const char **ret_reason);

/*
 * Serialise ADV into BUF (size BUFSIZE) computing the checksum with MODE and
 * META's addresses (src, dst: the pseudo-header for v3). v2 messages carry
 * adver_int = max_adver_int_cs / 100 and 8 bytes of authentication data:
 * auth_data with VRRP_AUTH_SIMPLE, zeros with VRRP_AUTH_NONE.
 * Returns the message length, -EINVAL for a field out of range (version,
 * v2 with IPv6, v2 interval not whole seconds, v3 interval > 4095, zero
 * interval, zero vrid, zero n_addrs, v2 auth_type other than 0 and 1, a family other than
 * AF_INET/AF_INET6, an unknown mode, or META missing or of the wrong family
 * when a pseudo-header is needed: v3 IPv6, or v3 IPv4 with RFC5798), or
 * -ENOBUFS if BUF is too small. META may be NULL otherwise; auth_type is
 * ignored for v3.
 */
int vrrp_advert_build(const struct vrrp_advert *adv, const struct vrrp_ip_meta *meta,
                      enum vrrp_checksum_mode mode, uint8_t *buf, size_t bufsize);

/*
 * Split a received IPv4 datagram (as a raw IPPROTO_VRRP socket returns it,
 * IP header included) into META (family, src, dst, ttl) and the payload.
 * Checks the header length, total length and protocol 112; bytes past the
 * IP total length (link padding) are ignored. Returns 0, or
 * -EBADMSG with *ret_reason set (outputs untouched).
 */
int vrrp_ipv4_split(const uint8_t *buf, size_t len, struct vrrp_ip_meta *ret_meta,
                    const uint8_t **ret_payload, size_t *ret_payload_len, const char **ret_reason);

/* Internet checksum helper (RFC 1071), exposed for tests and GARP/NA code.
 * SUM is a running 32-bit sum from previous calls, start with 0. Only the
 * last chunk may have an odd length. */
uint32_t inet_checksum_add(uint32_t sum, const void *data, size_t len);
uint16_t inet_checksum_finish(uint32_t sum);
