/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Kernel WireGuard backend: the "wireguard" generic netlink family via
 * libnl-genl. Message building and parsing are separate from the socket so
 * that unit tests can check them against the documented attribute layout
 * (linux/wireguard.h) without the kernel module.
 *
 * What a GET result means (wg_kernel_dump_finish()): the device has
 * HAS_PRIVATE_KEY / HAS_PUBLIC_KEY when the kernel reported a key (it does
 * only when one is set), HAS_LISTEN_PORT and HAS_FWMARK when reported
 * (always, by current kernels). Each peer has HAS_PUBLIC_KEY,
 * HAS_PRESHARED_KEY only for a non-zero preshared key, HAS_ENDPOINT when
 * an endpoint was reported, HAS_PERSISTENT_KEEPALIVE_INTERVAL when the
 * interval was reported (also when 0). Allowed IPs keep the kernel's order.
 *
 * What a SET sends (wg_kernel_build_set()): the device name (or, when the
 * name is empty, its ifindex); REPLACE_PEERS, the private key, listen port
 * and fwmark when their flags say so. Every peer carries its public key
 * (a peer is named by it; HAS_PUBLIC_KEY is not consulted). A REMOVE_ME peer
 * carries nothing else. Other peers carry REPLACE_ALLOWEDIPS, UPDATE_ONLY,
 * the preshared key, endpoint and keepalive interval when their flags say
 * so, and all their allowed IPs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wg.h"

struct nl_msg;

/* Read IFNAME with a WG_CMD_GET_DEVICE dump, coalescing peers split across
 * messages and retrying when the dump is interrupted (NLM_F_DUMP_INTR), at
 * most 8 times, then -EAGAIN. Returns 0 and *ret, -ENODEV (no such
 * interface, or not a WireGuard one), -EPROTONOSUPPORT (the generic
 * netlink controller has no "wireguard" family: the module is not loaded),
 * -EPERM/-EACCES (not allowed to ask: says nothing about the module),
 * -EBADMSG (a reply that does not follow the
 * documented layout), or -errno. */
int wg_kernel_get_device(const char *ifname, struct wg_device **ret);

/* Apply DEV with as many WG_CMD_SET_DEVICE messages as needed so each fits
 * wg_kernel_msg_max(), whatever the number of peers and allowed IPs. The
 * messages go one at a time, each acknowledged before the next; if one
 * fails, those before it stay applied. Returns 0, -ENODEV,
 * -EPROTONOSUPPORT, -EINVAL (see wg_kernel_build_set()), or -errno. */
int wg_kernel_set_device(const struct wg_device *dev);

/* Why the last wg_kernel_get_device() or wg_kernel_set_device() of the
 * calling thread failed, in words, or "" when there is nothing to add to
 * its -errno: the kernel's extended ACK message (NETLINK_EXT_ACK, e.g. the
 * attribute it refused), or what resolving the generic netlink family ran
 * into. Cleared when the next call starts; valid until then. */
const char *wg_kernel_last_error(void);

/* The largest SET message wg_kernel_set_device() sends: a page, capped at
 * 8 KiB, as wireguard-tools sizes its netlink buffer. */
size_t wg_kernel_msg_max(void);

/* The WG_CMD_GET_DEVICE request for IFNAME (NLM_F_REQUEST | NLM_F_DUMP,
 * WGDEVICE_A_IFNAME) addressed to generic netlink family FAMILY_ID, with
 * port and sequence number left for nl_complete_msg(). Returns 0 and
 * *ret_msg (free with nlmsg_free()), -EINVAL for an empty or too long
 * name, or -ENOMEM. */
int wg_kernel_build_get(const char *ifname, int family_id, struct nl_msg **ret_msg);

/*
 * DEV as WG_CMD_SET_DEVICE requests (NLM_F_REQUEST | NLM_F_ACK) to family
 * FAMILY_ID, none longer than MAX_MSG_SIZE bytes (values above 65535 count
 * as 65535, the most a netlink attribute can nest). Device attributes and
 * WGDEVICE_F_REPLACE_PEERS go in the first message only. Peers follow in
 * order; a peer whose allowed IPs do not fit is cut and continued at the
 * start of the next message with its public key, the rest of its allowed
 * IPs and, if set, WGPEER_F_UPDATE_ONLY (so the continuation cannot create
 * a peer the first part was not allowed to), but without
 * WGPEER_F_REPLACE_ALLOWEDIPS (which would drop the first part) and
 * without the peer's other attributes. The messages must be sent in order.
 * Returns 0 and *ret_msgs (an array of *ret_n, at least one; free with
 * wg_kernel_msgs_free()); -EINVAL when DEV has neither name nor ifindex, a
 * name without NUL, an allowed IP whose family is not AF_INET/AF_INET6 or
 * whose prefix is too long, or HAS_ENDPOINT with such a family; -EMSGSIZE
 * when MAX_MSG_SIZE cannot hold the device attributes, or one allowed IP
 * of a peer; -ENOMEM.
 */
int wg_kernel_build_set(const struct wg_device *dev, int family_id, size_t max_msg_size,
                        struct nl_msg ***ret_msgs, size_t *ret_n);

/* Wipe (SET messages carry keys) and free N messages and the array MSGS.
 * Accepts NULL. */
void wg_kernel_msgs_free(struct nl_msg **msgs, size_t n);

/*
 * Coalescer for the messages of one WG_CMD_GET_DEVICE dump. Feed each data
 * message (not NLMSG_DONE or NLMSG_ERROR) to wg_kernel_dump_add() in
 * order, then call wg_kernel_dump_finish(). Peers continued from one
 * message into the next (the same public key again at once) are merged
 * into one, their allowed IPs appended. Device attributes may appear in any
 * message; the last one wins.
 */
struct wg_kernel_dump {
        int family_id;              /* expected nlmsg_type; 0: not checked */
        struct wg_device *device;   /* accumulated; NULL before the first message */
        bool interrupted;           /* a message carried NLM_F_DUMP_INTR */
        int error;                  /* first error of wg_kernel_dump_add(), sticky */
        const char *reason;         /* static text explaining -EBADMSG, or NULL */
};

/* Start an empty dump expecting messages of family FAMILY_ID (0: any). */
void wg_kernel_dump_init(struct wg_kernel_dump *d, int family_id);

/*
 * Add one dump message: BUF (4-byte aligned, as netlink delivers it) holds
 * LEN bytes beginning with its struct nlmsghdr; bytes past nlmsg_len are
 * ignored. A message with NLM_F_DUMP_INTR marks the dump interrupted, after
 * which messages are only checked for a sane header. Returns 0; -EBADMSG
 * with D->reason set when the message breaks the documented layout (short
 * or truncated header or attributes, other family or command, a key not
 * 32 bytes, an integer of the wrong width, an unterminated or over-long
 * name, a peer without public key, an endpoint that is neither a
 * sockaddr_in nor a sockaddr_in6, an allowed IP without family, address or
 * prefix, of another family, with an address of the wrong size or a prefix
 * above 32/128); or -ENOMEM. After an error the dump is dead: every call
 * returns that error. Never reads outside BUF[0..LEN).
 */
int wg_kernel_dump_add(struct wg_kernel_dump *d, const uint8_t *buf, size_t len);

/* Returns 0 and hands the device to *ret (D no longer owns it);
 * -EAGAIN when the dump was interrupted (discard and dump again); the
 * sticky error of wg_kernel_dump_add(); or -EBADMSG for a dump without
 * messages. *ret is untouched on failure. */
int wg_kernel_dump_finish(struct wg_kernel_dump *d, struct wg_device **ret);

/* Free what D holds (wiping keys) and make it empty again, as after
 * wg_kernel_dump_init() with the same family. Usable as a _cleanup_
 * function. */
void wg_kernel_dump_clear(struct wg_kernel_dump *d);
