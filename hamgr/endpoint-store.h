/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The endpoint store: what a WireGuard follower knows of its peers'
 * endpoints, kept in STATE_DIRECTORY/wireguard-IFNAME.endpoints so that a
 * takeover after a restart can still restore them. Pure: text in, records
 * out, and back; the daemon reads and writes the file.
 *
 * Text, one peer a line after a magic line: "BASE64KEY ENDPOINT KEEPALIVE
 * LEARNED_MS [HANDSHAKE_MS]" under "hamgr-endpoints 2", or "BASE64KEY
 * ENDPOINT KEEPALIVE" under "hamgr-endpoints 1" (the first version, still
 * read). Fields are separated by spaces or tabs.
 */

#include <stddef.h>
#include <stdint.h>

#include "wg/key.h"
#include "wg/wg.h"

#define ENDPOINT_STORE_MAGIC_V1 "hamgr-endpoints 1"
#define ENDPOINT_STORE_MAGIC    "hamgr-endpoints 2"
/* Longest line read, newline included: a key, a scoped IPv6 endpoint and
 * three 20-digit numbers fit with room to spare. */
#define ENDPOINT_STORE_LINE_MAX 512

struct endpoint_record {
        uint8_t public_key[WG_KEY_LEN];
        union wg_endpoint endpoint;
        uint16_t keepalive;     /* the peer's configured persistent keepalive */
        uint64_t learned_ms;    /* wall clock when the endpoint was learned; 0: unknown */
        uint64_t handshake_ms;  /* wall clock of the last handshake seen; 0: unknown */
};

/*
 * Parse a store from BUF. Every line ends with '\n' but the last, which
 * may lack it; an empty line, a NUL byte, a line longer than
 * ENDPOINT_STORE_LINE_MAX, a wrong field count, a key that is not a key,
 * an endpoint that is not numeric, a keepalive above 65535 or a number
 * that does not fit 64 bits make the whole store invalid (a store is
 * either trusted whole or not at all). Records come in file order; the
 * same key twice is kept twice.
 *
 * Returns 0 with *ret (free(); NULL when there is no record) and *ret_n;
 * -EBADMSG with *ret_line (1-based; the line at fault) and *ret_reason (a
 * static string); -ENOMEM. ret_line and ret_reason may be NULL; the other
 * out-parameters are untouched on failure.
 */
int endpoint_store_parse(const uint8_t *buf, size_t len, struct endpoint_record **ret, size_t *ret_n,
                         unsigned *ret_line, const char **ret_reason);

/*
 * The store of the N records at RECS in the current format, as text in
 * *ret (NUL-terminated, free()) of *ret_len bytes. Returns 0 or -ENOMEM.
 */
int endpoint_store_format(const struct endpoint_record *recs, size_t n, char **ret, size_t *ret_len);
