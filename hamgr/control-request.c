/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/ipaddr.h"
#include "common/macro.h"
#include "control-request.h"
#include "wg/key.h"

#define USAGE "usage: PEER ADD|REMOVE IFACE KEY [allowed=LIST] [keepalive=N] [psk=KEY]"

void control_request_done(struct control_request *r) {
        if (!r)
                return;
        free(r->peer.allowedips);
        sodium_memzero(r, sizeof(*r));
}

static int parse_allowed(struct wg_peer *p, char *list, const char **reason) {
        char *save = NULL;

        for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
                struct wg_allowedip ai = {};
                struct ip_prefix pfx;

                if (ip_prefix_parse(a, &pfx) < 0) {
                        *reason = "an allowed IP is not an address/prefix";
                        return -EBADMSG;
                }
                ai.family = pfx.address.family;
                ai.ip = pfx.address.addr;
                ai.cidr = pfx.prefixlen;
                if (wg_peer_add_allowedip(p, &ai) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* The words after "PEER". LINE is a writable copy the caller wipes. */
static int parse_peer(char *line, struct control_request *req, const char **reason) {
        char *save = NULL, *verb, *ifname, *key, *tok;
        struct wg_peer *p = &req->peer;
        bool add;
        int r;

        strtok_r(line, " ", &save); /* PEER */
        verb = strtok_r(NULL, " ", &save);
        ifname = strtok_r(NULL, " ", &save);
        key = strtok_r(NULL, " ", &save);
        if (!verb || !ifname || !key || (!streq(verb, "ADD") && !streq(verb, "REMOVE"))) {
                *reason = USAGE;
                return -EBADMSG;
        }
        if (strlen(ifname) >= sizeof(req->ifname)) {
                *reason = "the interface name is too long";
                return -EBADMSG;
        }
        add = streq(verb, "ADD");
        req->type = add ? CONTROL_REQUEST_PEER_ADD : CONTROL_REQUEST_PEER_REMOVE;
        strcpy(req->ifname, ifname);
        if (wg_key_from_base64(p->public_key, key) < 0) {
                *reason = "the public key is not a base64 WireGuard key";
                return -EBADMSG;
        }
        p->flags = WG_PEER_HAS_PUBLIC_KEY | (add ? WG_PEER_REPLACE_ALLOWEDIPS : WG_PEER_REMOVE_ME);
        while (add && (tok = strtok_r(NULL, " ", &save))) {
                if (strncmp(tok, "allowed=", 8) == 0) {
                        r = parse_allowed(p, tok + 8, reason);
                        if (r < 0)
                                return r;
                } else if (strncmp(tok, "keepalive=", 10) == 0) {
                        char *end = tok + 10;
                        unsigned long v;

                        /* strtoul would take a sign or blanks; the value is digits only. */
                        if (tok[10] < '0' || tok[10] > '9')
                                v = ULONG_MAX;
                        else
                                v = strtoul(tok + 10, &end, 10);
                        if (v > 65535 || *end) {
                                *reason = "keepalive must be 0..65535 seconds";
                                return -EBADMSG;
                        }
                        p->persistent_keepalive_interval = (uint16_t) v;
                        p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                } else if (strncmp(tok, "psk=", 4) == 0) {
                        if (wg_key_from_base64(p->preshared_key, tok + 4) < 0) {
                                *reason = "the preshared key is not a base64 key";
                                return -EBADMSG;
                        }
                        p->flags |= WG_PEER_HAS_PRESHARED_KEY;
                } else {
                        *reason = "unknown argument (allowed=, keepalive= or psk=)";
                        return -EBADMSG;
                }
        }
        return 0;
}

int control_request_parse(const char *buf, size_t len, struct control_request *ret, const char **ret_reason) {
        struct control_request req = {};
        const char *reason = "unknown request";
        char *line;
        size_t n;
        int r = -EBADMSG;

        if (!buf || !ret)
                return -EINVAL;
        for (n = 0; n < len && buf[n] != '\r' && buf[n] != '\n'; n++)
                ;
        if (memchr(buf, '\0', n)) {
                if (ret_reason)
                        *ret_reason = "the request contains a NUL byte";
                return -EBADMSG;
        }
        line = strndup(buf, n);
        if (!line)
                return -ENOMEM;

        if (streq(line, "STATUS")) {
                req.type = CONTROL_REQUEST_STATUS;
                r = 0;
        } else if (streq(line, "STATUS JSON")) {
                req.type = CONTROL_REQUEST_STATUS_JSON;
                r = 0;
        } else if (streq(line, "PEERS JSON")) {
                req.type = CONTROL_REQUEST_PEERS_JSON;
                r = 0;
        } else if (strncmp(line, "PEER ", 5) == 0)
                r = parse_peer(line, &req, &reason);

        /* The line may hold a preshared key. */
        sodium_memzero(line, n);
        free(line);
        if (r < 0) {
                control_request_done(&req);
                if (r == -EBADMSG && ret_reason)
                        *ret_reason = reason;
                return r;
        }
        *ret = req;
        return 0;
}
