/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The UAPI get parser on arbitrary bytes. Whatever it accepts must format
 * as a well-formed set request, and that request, read back as a get
 * reply, must describe the same device. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "wg/uapi.h"

#define NOW INT64_C(1700000000)

static bool known_set_key(const char *line, size_t keylen) {
        static const char *const keys[] = {
                "private_key", "listen_port", "fwmark", "replace_peers", "public_key", "remove",
                "update_only", "preshared_key", "endpoint", "persistent_keepalive_interval",
                "replace_allowed_ips", "allowed_ip",
        };

        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (strlen(keys[i]) == keylen && memcmp(line, keys[i], keylen) == 0)
                        return true;
        return false;
}

/* "set=1\n", key=value lines of known keys with non-empty values, one
 * final blank line and nothing after it. */
static void check_set_text(const char *text) {
        size_t len = strlen(text), pos;

        if (len < 7 || memcmp(text, "set=1\n", 6) != 0 || memcmp(text + len - 2, "\n\n", 2) != 0)
                abort();
        for (pos = 6; pos < len - 1;) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                const char *eq;

                if (!nl)
                        abort();
                eq = memchr(text + pos, '=', (size_t) (nl - (text + pos)));
                if (!eq || eq == text + pos || eq + 1 == nl)
                        abort();
                if (!known_set_key(text + pos, (size_t) (eq - (text + pos))))
                        abort();
                if ((size_t) (nl - (text + pos)) > WG_UAPI_LINE_MAX)
                        abort();
                pos = (size_t) (nl - text) + 1;
        }
        if (pos != len - 1)
                abort();
}

static void check_same(const struct wg_device *a, const struct wg_device *b) {
        uint32_t mask = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK;

        /* The public key is not part of a set (and an own_public_key line
         * may contradict the private key): only the private key counts. */
        if ((a->flags & mask) != (b->flags & mask))
                abort();
        if ((a->flags & WG_DEVICE_HAS_PRIVATE_KEY) && memcmp(a->private_key, b->private_key, WG_KEY_LEN) != 0)
                abort();
        if (a->listen_port != b->listen_port || a->fwmark != b->fwmark || a->n_peers != b->n_peers)
                abort();
        for (size_t i = 0; i < a->n_peers; i++) {
                const struct wg_peer *p = &a->peers[i], *q = &b->peers[i];

                if (p->flags != q->flags || memcmp(p->public_key, q->public_key, WG_KEY_LEN) != 0 ||
                    memcmp(p->preshared_key, q->preshared_key, WG_KEY_LEN) != 0 ||
                    p->persistent_keepalive_interval != q->persistent_keepalive_interval ||
                    memcmp(&p->endpoint, &q->endpoint, sizeof(p->endpoint)) != 0 ||
                    p->n_allowedips != q->n_allowedips)
                        abort();
                if (p->n_allowedips > 0 &&
                    memcmp(p->allowedips, q->allowedips, p->n_allowedips * sizeof(*p->allowedips)) != 0)
                        abort();
        }
}

static const struct wg_peer *peer_by_key(const struct wg_device *d, const uint8_t *key) {
        const struct wg_peer *found = NULL;

        for (size_t i = 0; i < d->n_peers; i++)
                if (memcmp(d->peers[i].public_key, key, WG_KEY_LEN) == 0) {
                        if (found)
                                return NULL; /* a key twice: no daemon does that */
                        found = &d->peers[i];
                }
        return found;
}

static bool peers_same(const struct wg_peer *p, const struct wg_peer *q) {
        return p->n_allowedips == q->n_allowedips &&
               (p->n_allowedips == 0 || memcmp(p->allowedips, q->allowedips, p->n_allowedips * sizeof(*p->allowedips)) == 0) &&
               memcmp(&p->endpoint, &q->endpoint, sizeof(p->endpoint)) == 0 &&
               memcmp(p->preshared_key, q->preshared_key, WG_KEY_LEN) == 0 &&
               p->persistent_keepalive_interval == q->persistent_keepalive_interval;
}

/* DATA is two replies A and B around a NUL byte: the changes a read of B
 * reports against A's index, applied to A, are B's peers. */
static void check_indexed(const uint8_t *data, size_t size) {
        const uint8_t *nul = memchr(data, 0, size), *b;
        struct wg_device *da = NULL, *db = NULL, *delta = NULL;
        struct wg_index *ia = NULL, *ib = NULL;
        const struct wg_peer *forgot;
        const char *reason = NULL;
        size_t na, nb;
        bool partial;
        int r;

        if (!nul)
                return;
        na = (size_t) (nul - data);
        b = nul + 1;
        nb = size - na - 1;
        if (wg_uapi_parse_indexed(data, na, NOW, NULL, &ia, &da, &partial, &reason) < 0)
                return;
        if (!ia || wg_uapi_parse_get(b, nb, NOW, &db, &reason) < 0)
                goto finish;
        /* Some inputs forget one of A's peers, as hamgr does for a peer it
         * wrote: B must then list it, changed or gone, and all else holds. */
        forgot = da->n_peers > 0 && size % 3 == 0 ? &da->peers[size % da->n_peers] : NULL;
        if (forgot && wg_index_forget(ia, forgot->public_key) < 0)
                goto finish;
        r = wg_uapi_parse_indexed(b, nb, NOW, ia, &ib, &delta, &partial, &reason);
        if (r < 0)
                goto finish;
        for (size_t i = 0; i < da->n_peers; i++)
                if (!peer_by_key(da, da->peers[i].public_key))
                        goto finish;
        for (size_t i = 0; i < db->n_peers; i++) {
                const struct wg_peer *want = &db->peers[i], *got;

                if (!peer_by_key(db, want->public_key))
                        goto finish;
                got = delta ? peer_by_key(delta, want->public_key) : NULL;
                if (!got)
                        got = peer_by_key(da, want->public_key);
                if (!got || (got->flags & WG_PEER_REMOVE_ME) || !peers_same(got, want))
                        abort();
        }
        for (size_t i = 0; i < da->n_peers; i++) {
                const struct wg_peer *gone;

                if (peer_by_key(db, da->peers[i].public_key))
                        continue;
                gone = delta ? peer_by_key(delta, da->peers[i].public_key) : NULL;
                if (!gone || !(gone->flags & WG_PEER_REMOVE_ME))
                        abort();
        }
        if (forgot && (!delta || !peer_by_key(delta, forgot->public_key)))
                abort();
finish:
        wg_device_free(da);
        wg_device_free(db);
        wg_device_free(delta);
        wg_index_free(ia);
        wg_index_free(ib);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct wg_device *d = NULL, *back = NULL, *light = NULL;
        const char *reason = NULL;
        char *text = NULL, *get = NULL;
        size_t n;
        int r, rl;

        /* The endpoint store's parse skips lines the full one checks:
         * it may accept more, never less, and where both do they agree. */
        rl = wg_uapi_parse_get_endpoints(data, size, NOW, &light, &reason);
        if (rl < 0 && (light || (rl == -EBADMSG && !reason)))
                abort();
        check_indexed(data, size);
        reason = NULL;
        r = wg_uapi_parse_get(data, size, NOW, &d, &reason);
        if (r < 0) {
                if (d || (r == -EBADMSG && !reason))
                        abort();
                goto finish;
        }
        if (light) {
                if (light->n_peers != d->n_peers)
                        abort();
                for (size_t i = 0; i < d->n_peers; i++)
                        if (memcmp(light->peers[i].public_key, d->peers[i].public_key, WG_KEY_LEN) != 0 ||
                            memcmp(&light->peers[i].endpoint, &d->peers[i].endpoint, sizeof(d->peers[i].endpoint)) != 0 ||
                            light->peers[i].persistent_keepalive_interval != d->peers[i].persistent_keepalive_interval ||
                            light->peers[i].last_handshake_time_sec != d->peers[i].last_handshake_time_sec ||
                            light->peers[i].n_allowedips != 0)
                                abort();
        } else if (rl != -ENOMEM)
                abort(); /* the full parse accepted what the light one refused */

        r = wg_uapi_format_set(d, &text);
        if (r == -ENOMEM)
                goto finish;
        if (r < 0)
                abort();
        check_set_text(text);

        /* Drop "set=1\n" and the blank line, add "errno=0\n\n". */
        n = strlen(text);
        get = malloc(n + 16);
        if (!get)
                goto finish;
        memcpy(get, text + 6, n - 7);
        memcpy(get + n - 7, "errno=0\n\n", 9);
        r = wg_uapi_parse_get((const uint8_t *) get, n - 7 + 9, NOW, &back, &reason);
        if (r == -ENOMEM)
                goto finish;
        if (r < 0)
                abort();
        check_same(d, back);
finish:
        free(get);
        wg_uapi_text_free(text);
        wg_device_free(back);
        wg_device_free(d);
        wg_device_free(light);
        return 0;
}
