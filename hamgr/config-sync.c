/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The "sync" section: replication between gateways. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"
#include "wg/key.h"
#include "wg/wg.h"

static const char *const sync_keys[] = {
        "listen", "private_key_file", "poll_interval_ms", "peers", NULL,
};

static const char *const sync_peer_keys[] = {
        "name", "address", "public_key", NULL,
};

/* "IPv4:port" or "[IPv6]:port": numeric, because the address of a node
 * that replicates keys must not depend on a resolver. */
static bool address_is_valid(const char *s) {
        union wg_endpoint e;

        if (wg_endpoint_parse(s, &e) < 0)
                return false;
        return (e.addr.sa_family == AF_INET && e.addr4.sin_port != 0) ||
               (e.addr.sa_family == AF_INET6 && e.addr6.sin6_port != 0);
}

static int parse_sync_peer(struct loader *l, config_setting_t *e, int idx, void *item, void *userdata) {
        const struct hamgr_sync_config *sc = userdata;
        struct hamgr_sync_peer_config *p = item;
        config_setting_t *s;
        const char *str;
        char where[48];
        int r;

        *p = (struct hamgr_sync_peer_config) { .line = line_of(e) };
        snprintf(where, sizeof(where), "in sync peer #%d", idx + 1);
        check_keys(l, e, sync_peer_keys, where);

        r = get_string(l, e, "name", &str, &s);
        if (r == 0)
                error_at(l, line_of(e), "missing required setting 'name' %s", where);
        else if (r > 0) {
                if (!name_is_valid(str))
                        error_at(l, line_of(s), "sync peer name '%s' must be 1..%d characters of A-Z a-z 0-9 _ . -",
                                 str, NAME_LEN_MAX);
                else {
                        for (size_t i = 0; i < sc->n_peers; i++)
                                if (streq(sc->peers[i].name, str))
                                        error_at(l, line_of(s), "duplicate sync peer name '%s'", str);
                        if (strdup_to(str, &p->name) < 0)
                                return -ENOMEM;
                }
        }

        r = get_string(l, e, "address", &str, &s);
        if (r == 0)
                error_at(l, line_of(e), "missing required setting 'address' %s", where);
        else if (r > 0) {
                if (!address_is_valid(str))
                        error_at(l, line_of(s), "address '%s' must be IPv4:port or [IPv6]:port", str);
                else if (strdup_to(str, &p->address) < 0)
                        return -ENOMEM;
        }

        r = get_string(l, e, "public_key", &str, &s);
        if (r == 0)
                error_at(l, line_of(e), "missing required setting 'public_key' %s", where);
        else if (r > 0) {
                if (wg_key_from_base64(p->public_key, str) < 0)
                        error_at(l, line_of(s), "public_key is not a base64 key (44 characters ending in '='; "
                                 "see hamgr pubkey)");
                else
                        for (size_t i = 0; i < sc->n_peers; i++)
                                if (wg_key_equal(sc->peers[i].public_key, p->public_key))
                                        error_at(l, line_of(s), "sync peers '%s' and #%d have the same public key",
                                                 sc->peers[i].name ? sc->peers[i].name : "?", idx + 1);
        }
        return 0;
}

static const struct list_spec sync_peers_spec = {
        .key = "peers",
        .not_list = "peers must be a list of groups: peers = ( { name = \"gw2\"; address = \"...\"; public_key = \"...\"; } );",
        .noun = "sync peer",
        .parse = parse_sync_peer,
};

int parse_sync(struct loader *l, config_setting_t *root, struct hamgr_config *c) {
        config_setting_t *grp = config_setting_get_member(root, "sync"), *s;
        struct hamgr_sync_config *sc = &c->sync;
        const char *str;
        int r;

        if (!grp)
                return 0;
        if (!config_setting_is_group(grp)) {
                error_at(l, line_of(grp), "sync must be a group: sync = { listen = \"...\"; ... };");
                return 0;
        }
        sc->enabled = true;
        sc->poll_interval_ms = 1000;
        sc->line = line_of(grp);
        check_keys(l, grp, sync_keys, "in sync");

        r = get_string(l, grp, "listen", &str, &s);
        if (r == 0)
                error_at(l, line_of(grp), "missing required setting 'listen' in sync");
        else if (r > 0) {
                if (!address_is_valid(str))
                        error_at(l, line_of(s), "listen '%s' must be IPv4:port or [IPv6]:port", str);
                else if (strdup_to(str, &sc->listen) < 0)
                        return -ENOMEM;
        }
        r = get_string(l, grp, "private_key_file", &str, &s);
        if (r == 0)
                error_at(l, line_of(grp), "missing required setting 'private_key_file' in sync");
        else if (r > 0) {
                if (str[0] != '/')
                        error_at(l, line_of(s), "private_key_file '%s' must be an absolute path", str);
                else if (strdup_to(str, &sc->private_key_file) < 0)
                        return -ENOMEM;
        }
        (void) get_uint(l, grp, "poll_interval_ms", 100, 3600000, &sc->poll_interval_ms);
        r = PARSE_LIST(l, grp, &sync_peers_spec, "in sync", sc, sc->peers, sc->n_peers);
        if (r < 0)
                return r;
        if (c->n_wireguard == 0)
                error_at(l, line_of(grp), "sync replicates the interfaces of the wireguard section, which is empty");
        return 0;
}

void free_sync(struct hamgr_sync_config *sc) {
        for (size_t i = 0; i < sc->n_peers; i++) {
                free(sc->peers[i].name);
                free(sc->peers[i].address);
        }
        free(sc->peers);
        free(sc->listen);
        free(sc->private_key_file);
}
