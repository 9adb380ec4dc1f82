/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Userspace WireGuard backend: the cross-platform UAPI text protocol on
 * WG_UAPI_SOCKET_DIR/IFNAME.sock, as wireguard-go and boringtun serve it.
 *
 * The text parser and formatter are pure and exposed for tests and the
 * fuzzer; the socket functions use them. An exchange (connect, request,
 * whole reply) fails with -ETIMEDOUT when no byte went either way for
 * WG_UAPI_TIMEOUT_MSEC, and when it is not over after WG_UAPI_TOTAL_MSEC
 * in all, however it trickles: a wedged daemon cannot hang the caller, a
 * large device (a get of 50,000 peers from a loaded wireguard-go takes
 * seconds) is still read, and hamgr, which talks to it from its event
 * loop, stays inside its systemd watchdog (WatchdogSec=10s). After a timeout,
 * exchanges with the same socket fail at once with -ETIMEDOUT for
 * WG_UAPI_HOLDOFF_MSEC (process-wide state; the first exchange after that
 * asks the daemon again): a hung daemon costs one stall per hold-off, not
 * one per call.
 */

#include <stdint.h>

#include "wg.h"

/* A get reply with more peers, or more allowed IPs over all peers, is
 * refused (-EBADMSG) rather than allowed to exhaust memory. */
#define WG_UAPI_MAX_PEERS 1000000
#define WG_UAPI_MAX_ALLOWEDIPS 1000000
/* Longest accepted line, without its newline. */
#define WG_UAPI_LINE_MAX 4096
#define WG_UAPI_TIMEOUT_MSEC 2000      /* without progress */
#define WG_UAPI_TOTAL_MSEC 8000        /* in all: below WatchdogSec=10s */
#define WG_UAPI_HOLDOFF_MSEC 10000
/* Environment variable that replaces WG_UAPI_SOCKET_DIR, for tests only
 * (ignored in set-uid programs: secure_getenv()). */
#define WG_UAPI_DIR_ENV "HAMGR_WG_UAPI_DIR"

/* Read IFNAME ("get=1"). Returns 0 and *ret, -ENODEV when there is no
 * socket, or -errno (an errno= reply of either sign becomes -|errno|). */
int wg_uapi_get_device(const char *ifname, struct wg_device **ret);

/* wg_uapi_get_device() without what the endpoint store does not need:
 * peers come without preshared keys and allowed IPs (their flags say
 * none), at half the cost of parsing 50,000 peers. */
int wg_uapi_get_endpoints(const char *ifname, struct wg_device **ret);

/*
 * A digest of the configuration a get reply in BUF shows, without
 * handshake times and transfer counters: equal digests mean the same keys,
 * port, fwmark, peers, preshared keys, endpoints, keepalives and allowed
 * IPs. Peers may come in any order (wireguard-go lists them in Go map
 * order, new each time): each peer's lines are hashed alone and the hashes
 * summed; an index (wg_uapi_get_indexed()) keeps the digest of its read.
 * Lines are only checked for length, NUL bytes, the errno line and the
 * final blank line. Returns 0, -|errno| for an errno= reply other than 0,
 * -EBADMSG with *ret_reason (may be NULL).
 */
int wg_uapi_parse_digest(const uint8_t *buf, size_t len, uint8_t ret[static WG_DIGEST_LEN], const char **ret_reason);

/*
 * One get of IFNAME, compared with an earlier one (wg_get_indexed() in
 * wg.h): without PREV, the whole device into *RET; with it, the sections
 * are hashed as they arrive and only those PREV lacks are parsed: *RET is
 * NULL when the configuration is the same, else the peers new or changed
 * (whole, as wg_uapi_get_device() gives them) and those gone
 * (WG_PEER_REMOVE_ME), with *RET_PARTIAL set. *RET_INDEX is the index of
 * this read unless it is unchanged (NULL then, and when sections cannot
 * be told apart). PREV is not changed. Returns 0, -ESTALE when the change
 * is not only peers (the device's own settings), or as
 * wg_uapi_get_device(); on failure nothing is set.
 */
int wg_uapi_get_indexed(const char *ifname, const struct wg_index *prev, struct wg_index **ret_index,
                        struct wg_device **ret, bool *ret_partial);

/* The same for a get reply in BUF; -EBADMSG comes with *RET_REASON (may be
 * NULL). */
int wg_uapi_parse_indexed(const uint8_t *buf, size_t len, int64_t now_realtime_sec, const struct wg_index *prev,
                          struct wg_index **ret_index, struct wg_device **ret, bool *ret_partial,
                          const char **ret_reason);

/* Apply DEV ("set=1") in one request, with wireguard-go's semantics
 * (update_only, changes to existing peers). Returns 0 or -errno. */
int wg_uapi_set_device(const struct wg_device *dev);

/*
 * Apply DEV to a boringtun daemon (0.4 to 0.7), which serves the same
 * protocol with other semantics: it refuses update_only (errno 22), it
 * crashes the request (closes the connection without an answer) when a set
 * changes a peer that exists, and it carries a peer's remove, endpoint,
 * keepalive and preshared key over to the next peer of the same request.
 * So: read the device, plan with wg_uapi_readd_peers() (an existing peer
 * is removed and added again in full, which resets its session), send the
 * device fields alone, then one request per peer, then read the device
 * back. Returns 0; -EPROTO when the device read back differs from the
 * plan; or the first error of an exchange (-ECONNRESET: the daemon closed
 * without answering).
 */
int wg_uapi_boringtun_set_device(const struct wg_device *dev);

/*
 * Whether a daemon listens on IFNAME's UAPI socket, without waiting for
 * it: 1 when one does (or is too busy to accept at once), 0 when there is
 * no socket, or only a stale one that nobody listens on (ECONNREFUSED):
 * that one is removed, as wg(8) does. -EINVAL for a bad name, another
 * -errno when it cannot tell (-EACCES...).
 */
int wg_uapi_socket_probe(const char *ifname);

/* WG_UAPI_SOCKET_DIR (or $HAMGR_WG_UAPI_DIR) "/IFNAME.sock" into BUF.
 * Returns 0, -EINVAL for an invalid interface name (empty, too long for
 * IFNAMSIZ, ".", "..", or containing '/', ':' or whitespace), or
 * -ENAMETOOLONG. */
int wg_uapi_socket_path(const char *ifname, char *buf, size_t len);

/*
 * Parse a get reply: BUF holds the lines after "get=1\n\n" up to and
 * including the terminating blank line. Keys are 64 hex digits; unknown
 * keys are ignored. Every field present gets its HAS_ flag; a zero
 * preshared or private key counts as absent. A nonzero private key also
 * yields the public key; boringtun's "own_public_key" sets the public key
 * alone. Handshake times below 10^9 s (and not 0/0) are boringtun's
 * "time since" and are converted with NOW_REALTIME_SEC (so a wireguard-go
 * whose clock says 1970..2001 would be misread; no real one does).
 *
 * Returns 0 and *ret (name and ifindex left empty); -|errno| for an errno=
 * reply other than 0; -EBADMSG with *ret_reason (a static string) for a
 * malformed reply: a line without '=', a NUL byte, a bad value, a device
 * key after the first peer, a peer key before it, a line longer than
 * WG_UAPI_LINE_MAX, too many peers or allowed IPs, no errno line, no
 * final blank line, or data after it; -ENOMEM. ret_reason may be NULL.
 * (A daemon's errno=74 is -EBADMSG too; its reason says so.)
 */
int wg_uapi_parse_get(const uint8_t *buf, size_t len, int64_t now_realtime_sec, struct wg_device **ret,
                      const char **ret_reason);

/* wg_uapi_parse_get() for wg_uapi_get_endpoints(): preshared key and
 * allowed IP lines are skipped, unparsed. */
int wg_uapi_parse_get_endpoints(const uint8_t *buf, size_t len, int64_t now_realtime_sec, struct wg_device **ret,
                                const char **ret_reason);

/* Parse a set reply "errno=N\n\n": returns 0, -|N|, or -EBADMSG with
 * *ret_reason (ret_reason may be NULL). */
int wg_uapi_parse_set_reply(const uint8_t *buf, size_t len, const char **ret_reason);

/*
 * Format DEV as a complete set request, from "set=1\n" to the final blank
 * line, NUL-terminated. Peers: public_key, then remove=true alone for
 * REMOVE_ME, else update_only, preshared_key, endpoint,
 * persistent_keepalive_interval, replace_allowed_ips and allowed_ip lines
 * as the flags say. The text holds keys: free it with wg_uapi_text_free().
 * Returns 0, -EINVAL (a peer without HAS_PUBLIC_KEY, an allowed IP of an
 * unknown family or cidr out of range, an endpoint flagged but of an
 * unknown family), or -ENOMEM.
 */
int wg_uapi_format_set(const struct wg_device *dev, char **ret_text);

/* Wipe and free TEXT from wg_uapi_format_set(); accepts NULL; returns NULL. */
char *wg_uapi_text_free(char *text);

/*
 * The plan of wg_uapi_boringtun_set_device(), from the changes DEV and
 * the device as it is now, CURRENT (sorted in place). Device fields and
 * removals are copied; a peer absent from CURRENT, or right after DEV's
 * removal of the same key, is copied (or dropped if UPDATE_ONLY); a peer
 * present in CURRENT becomes a removal followed by the
 * peer in full: CURRENT's preshared key, keepalive, endpoint and allowed
 * IPs with DEV's changes applied (REPLACE_ALLOWEDIPS replaces the list,
 * else DEV's allowed IPs are added). Pure. Returns the number of peers
 * re-added (0: the result only repeats DEV) and *ret, or -ENOMEM.
 */
int wg_uapi_readd_peers(const struct wg_device *dev, struct wg_device *current, struct wg_device **ret);
