/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The control socket's request line, parsed without the socket: bytes in,
 * struct out. control.c reads the line and acts on the result.
 */

#include <net/if.h>
#include <stddef.h>

#include "wg/wg.h"

enum control_request_type {
        CONTROL_REQUEST_STATUS,          /* "STATUS" */
        CONTROL_REQUEST_STATUS_JSON,     /* "STATUS JSON" */
        CONTROL_REQUEST_PEERS_JSON,      /* "PEERS JSON" */
        CONTROL_REQUEST_PEER_ADD,        /* "PEER ADD IFACE KEY [allowed=A,B] [keepalive=N] [psk=KEY]" */
        CONTROL_REQUEST_PEER_REMOVE,     /* "PEER REMOVE IFACE KEY" */
        _CONTROL_REQUEST_MAX,
};

struct control_request {
        enum control_request_type type;
        /* PEER requests only. */
        char ifname[IFNAMSIZ];
        /* Public key with HAS_PUBLIC_KEY, and REMOVE_ME (REMOVE) or
         * REPLACE_ALLOWEDIPS (ADD); for ADD also the allowed IPs, and the
         * keepalive and preshared key with their HAS_ flags when given. */
        struct wg_peer peer;
};

/*
 * Parse the request in BUF[0..LEN): the text up to the first CR or LF
 * (the rest is ignored). Words are separated by single spaces, as
 * hamgr(8) sends them; words after the key of PEER REMOVE are ignored; an
 * "allowed=" list may be empty. Returns 0 and *ret (release it with
 * control_request_done()); -EBADMSG with *ret_reason a static text fit for
 * an "ERROR" reply (unknown request, a NUL byte, usage, an interface name
 * of IFNAMSIZ bytes or more, a key that is not base64 of 32 bytes, an
 * allowed IP that is not an address or prefix, a keepalive above 65535,
 * an unknown argument); or -ENOMEM. *ret is untouched on failure;
 * ret_reason may be NULL.
 */
int control_request_parse(const char *buf, size_t len, struct control_request *ret, const char **ret_reason);

/* Free the allowed IPs and wipe the keys of R. Accepts NULL. */
void control_request_done(struct control_request *r);
