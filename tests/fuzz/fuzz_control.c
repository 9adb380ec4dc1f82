/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The control socket's request parser on arbitrary bytes. A request it
 * accepts is written back out the way hamgr(8) writes one and must parse
 * to the same request: nothing is lost or invented between the text and
 * the struct. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hamgr/control-request.h"
#include "wg/key.h"

#define check(x)                 \
        do {                     \
                if (!(x))        \
                        abort(); \
        } while (0)

static bool allowedip_valid(const struct wg_allowedip *a) {
        return (a->family == AF_INET && a->cidr <= 32) || (a->family == AF_INET6 && a->cidr <= 128);
}

/* REQ as a request line, into a malloc'd string; NULL on ENOMEM. */
static char *render(const struct control_request *req) {
        char key[WG_KEY_B64_LEN], addr[INET6_ADDRSTRLEN];
        const struct wg_peer *p = &req->peer;
        char *s = NULL;
        size_t len = 0;
        FILE *f;

        f = open_memstream(&s, &len);
        if (!f)
                return NULL;
        switch (req->type) {
        case CONTROL_REQUEST_STATUS:
                fputs("STATUS", f);
                break;
        case CONTROL_REQUEST_STATUS_JSON:
                fputs("STATUS JSON", f);
                break;
        case CONTROL_REQUEST_PEERS_JSON:
                fputs("PEERS JSON", f);
                break;
        default:
                wg_key_to_base64(key, p->public_key);
                fprintf(f, "PEER %s %s %s", req->type == CONTROL_REQUEST_PEER_ADD ? "ADD" : "REMOVE",
                        req->ifname, key);
                if (req->type != CONTROL_REQUEST_PEER_ADD)
                        break;
                fputs(" allowed=", f);
                for (size_t i = 0; i < p->n_allowedips; i++) {
                        check(inet_ntop(p->allowedips[i].family, &p->allowedips[i].ip, addr, sizeof(addr)));
                        fprintf(f, "%s%s/%u", i ? "," : "", addr, p->allowedips[i].cidr);
                }
                if (p->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL)
                        fprintf(f, " keepalive=%u", p->persistent_keepalive_interval);
                if (p->flags & WG_PEER_HAS_PRESHARED_KEY) {
                        wg_key_to_base64(key, p->preshared_key);
                        fprintf(f, " psk=%s", key);
                }
                break;
        }
        fputs("\n", f);
        if (fclose(f) != 0) {
                free(s);
                return NULL;
        }
        return s;
}

static bool same_request(const struct control_request *a, const struct control_request *b) {
        const struct wg_peer *p = &a->peer, *q = &b->peer;

        if (a->type != b->type)
                return false;
        if (a->type != CONTROL_REQUEST_PEER_ADD && a->type != CONTROL_REQUEST_PEER_REMOVE)
                return true;
        if (strcmp(a->ifname, b->ifname) != 0 || p->flags != q->flags ||
            memcmp(p->public_key, q->public_key, WG_KEY_LEN) != 0 ||
            memcmp(p->preshared_key, q->preshared_key, WG_KEY_LEN) != 0 ||
            p->persistent_keepalive_interval != q->persistent_keepalive_interval ||
            p->n_allowedips != q->n_allowedips)
                return false;
        for (size_t i = 0; i < p->n_allowedips; i++)
                if (p->allowedips[i].family != q->allowedips[i].family ||
                    p->allowedips[i].cidr != q->allowedips[i].cidr ||
                    memcmp(&p->allowedips[i].ip, &q->allowedips[i].ip,
                           p->allowedips[i].family == AF_INET ? 4 : 16) != 0)
                        return false;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct control_request req, again;
        const char *reason = NULL;
        char *text;
        int r;

        r = control_request_parse((const char *) data, size, &req, &reason);
        if (r < 0) {
                check(r == -ENOMEM || (r == -EBADMSG && reason));
                return 0;
        }
        check((unsigned) req.type < _CONTROL_REQUEST_MAX);
        if (req.type == CONTROL_REQUEST_PEER_ADD || req.type == CONTROL_REQUEST_PEER_REMOVE) {
                size_t n = strnlen(req.ifname, sizeof(req.ifname));

                check(n > 0 && n < sizeof(req.ifname) && !strchr(req.ifname, ' '));
                check(req.peer.flags & WG_PEER_HAS_PUBLIC_KEY);
                check(!(req.peer.flags & WG_PEER_REMOVE_ME) == (req.type == CONTROL_REQUEST_PEER_ADD));
                check(req.type == CONTROL_REQUEST_PEER_ADD || req.peer.n_allowedips == 0);
                for (size_t i = 0; i < req.peer.n_allowedips; i++)
                        check(allowedip_valid(&req.peer.allowedips[i]));
        }

        text = render(&req);
        if (text) {
                r = control_request_parse(text, strlen(text), &again, NULL);
                check(r == 0 || r == -ENOMEM);
                if (r == 0) {
                        check(same_request(&req, &again));
                        control_request_done(&again);
                }
                free(text);
        }
        control_request_done(&req);
        return 0;
}
