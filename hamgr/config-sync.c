/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The "sync" section: replication between gateways. */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"
#include "wg/key.h"
#include "wg/wg.h"

static const char *const sync_keys[] = {
        "listen", "private_key_file", "poll_interval_ms", "bootstrap_grace_s", "rekey_interval_ms", "tombstone_retention_s", "peers", NULL,
};

static const char *const sync_peer_keys[] = {
        "name", "address", "public_key", NULL,
};

#define ADDRESS_RULE "must be numeric IPv4:port or [IPv6]:port with port 1..65535"

/* A parsed listen or peer address. The scope of a link-local address is
 * kept as written and not looked up, so that a file checks the same on any
 * machine; the daemon resolves it when it binds or dials. */
struct sync_address {
        union wg_endpoint ep;                 /* sin6_scope_id left 0 */
        char scope[IFNAMSIZ];                 /* "" when none */
};

static bool scope_is_valid(const char *s) {
        size_t n = strlen(s);

        /* An interface name (the kernel's rule) or an interface index. */
        return n >= 1 && n < IFNAMSIZ && !streq(s, ".") && !streq(s, "..") && !strpbrk(s, "/:%[] \t\n\v\f\r");
}

/* "IPv4:port" or "[IPv6]:port" or "[IPv6%scope]:port", numeric, port not 0:
 * the address of a node that replicates keys must not depend on a resolver. */
static int address_parse(const char *s, struct sync_address *ret) {
        struct sync_address a = {};
        char buf[INET6_ADDRSTRLEN + 16];
        const char *pct = strchr(s, '%');

        if (pct) {
                const char *close = strchr(s, ']');
                size_t n;

                if (s[0] != '[' || !close || pct > close)
                        return -EINVAL;
                n = (size_t) (close - pct - 1);
                if (n >= sizeof(a.scope))
                        return -EINVAL;
                memcpy(a.scope, pct + 1, n);
                a.scope[n] = '\0';
                if (!scope_is_valid(a.scope))
                        return -EINVAL;
                if ((size_t) snprintf(buf, sizeof(buf), "%.*s%s", (int) (pct - s), s, close) >= sizeof(buf))
                        return -EINVAL;
                s = buf;
        }
        if (wg_endpoint_parse(s, &a.ep) < 0)
                return -EINVAL;
        if (a.ep.addr.sa_family == AF_INET ? a.ep.addr4.sin_port == 0 : a.ep.addr6.sin6_port == 0)
                return -EINVAL;
        *ret = a;
        return 0;
}

static bool address_equal(const struct sync_address *a, const struct sync_address *b) {
        if (a->ep.addr.sa_family != b->ep.addr.sa_family || !streq(a->scope, b->scope))
                return false;
        if (a->ep.addr.sa_family == AF_INET)
                return a->ep.addr4.sin_port == b->ep.addr4.sin_port &&
                       a->ep.addr4.sin_addr.s_addr == b->ep.addr4.sin_addr.s_addr;
        return a->ep.addr6.sin6_port == b->ep.addr6.sin6_port &&
               memcmp(&a->ep.addr6.sin6_addr, &b->ep.addr6.sin6_addr, sizeof(struct in6_addr)) == 0;
}

static bool address_is_unspecified(const struct sync_address *a) {
        if (a->ep.addr.sa_family == AF_INET)
                return a->ep.addr4.sin_addr.s_addr == htonl(INADDR_ANY);
        return IN6_IS_ADDR_UNSPECIFIED(&a->ep.addr6.sin6_addr);
}

/* Multicast or broadcast: no TCP connection can be made to or from it. */
static bool address_is_group(const struct sync_address *a) {
        if (a->ep.addr.sa_family == AF_INET)
                return IN_MULTICAST(ntohl(a->ep.addr4.sin_addr.s_addr)) ||
                       a->ep.addr4.sin_addr.s_addr == htonl(INADDR_BROADCAST);
        return IN6_IS_ADDR_MULTICAST(&a->ep.addr6.sin6_addr);
}

/* bind() and connect() refuse a link-local address without its interface. */
static bool address_lacks_scope(const struct sync_address *a) {
        return a->ep.addr.sa_family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(&a->ep.addr6.sin6_addr) && !a->scope[0];
}

/* The address setting KEY of GROUP into *ret_text (a copy) and *ret; LISTEN
 * allows the unspecified address. Returns 1 when it is valid, 0 when it is
 * absent or invalid (recorded), -ENOMEM. */
static int parse_address(struct loader *l, config_setting_t *group, const char *key, bool listen, const char *where,
                         char **ret_text, struct sync_address *ret, config_setting_t **ret_setting) {
        struct sync_address a;
        config_setting_t *s;
        const char *str;
        int r;

        r = get_string(l, group, key, &str, &s);
        if (r == 0)
                error_at(l, line_of(group), "missing required setting '%s' %s", key, where);
        if (r <= 0)
                return 0;
        if (address_parse(str, &a) < 0)
                error_at(l, line_of(s), "%s '%s' " ADDRESS_RULE, key, str);
        else if (address_is_group(&a))
                error_at(l, line_of(s), "%s '%s' is a multicast or broadcast address", key, str);
        else if (!listen && address_is_unspecified(&a))
                error_at(l, line_of(s), "%s '%s' is unspecified: give the other node's address", key, str);
        else if (address_lacks_scope(&a))
                error_at(l, line_of(s), "%s '%s' is link-local and needs its interface: [fe80::1%%eth0]:port", key,
                         str);
        else {
                if (strdup_to(str, ret_text) < 0)
                        return -ENOMEM;
                *ret = a;
                *ret_setting = s;
                return 1;
        }
        return 0;
}

/* What later peers are compared with: only the settings that were valid. */
struct sync_peer_meta {
        int name_line;                        /* 0: the name was not valid */
        int address_line;                     /* 0: the address was not valid */
        int key_line;                         /* 0: the key was not valid */
        struct sync_address address;
};

struct sync_walk {
        const struct hamgr_sync_config *sc;
        const struct sync_address *listen;    /* NULL: no valid listen address */
        struct sync_peer_meta *meta;          /* one per list element */
};

static int sync_peers_count(struct loader *l, config_setting_t *list, int n, void *userdata) {
        struct sync_walk *w = userdata;

        if (n == 0)
                return 0;
        w->meta = calloc(n, sizeof(*w->meta));
        return w->meta ? 1 : -ENOMEM;
}

static int parse_sync_peer(struct loader *l, config_setting_t *e, int idx, void *item, void *userdata) {
        const struct sync_walk *w = userdata;
        const struct hamgr_sync_config *sc = w->sc;
        struct sync_peer_meta *m = &w->meta[sc->n_peers];
        struct hamgr_sync_peer_config *p = item;
        config_setting_t *s;
        const char *str;
        char where[64];
        int r;

        *p = (struct hamgr_sync_peer_config) { .line = line_of(e) };
        snprintf(where, sizeof(where), "in sync peer #%d", idx + 1);

        r = get_string(l, e, "name", &str, &s);
        if (r == 0)
                error_at(l, line_of(e), "missing required setting 'name' %s", where);
        else if (r > 0) {
                if (!name_is_valid(str))
                        error_at(l, line_of(s), "sync peer name '%s' must be 1..%d characters of A-Z a-z 0-9 _ . -",
                                 str, NAME_LEN_MAX);
                else {
                        if (strdup_to(str, &p->name) < 0)
                                return -ENOMEM;
                        m->name_line = line_of(s);
                        snprintf(where, sizeof(where), "in sync peer '%s'", str);
                        for (size_t i = 0; i < sc->n_peers; i++)
                                if (w->meta[i].name_line && streq(sc->peers[i].name, str)) {
                                        error_at(l, line_of(s), "duplicate sync peer name '%s' (first at line %d)",
                                                 str, w->meta[i].name_line);
                                        break;
                                }
                }
        }
        check_keys(l, e, sync_peer_keys, where);

        r = parse_address(l, e, "address", false, where, &p->address, &m->address, &s);
        if (r < 0)
                return r;
        if (r > 0) {
                bool dup = false;

                m->address_line = line_of(s);
                for (size_t i = 0; i < sc->n_peers && !dup; i++)
                        if (w->meta[i].address_line && address_equal(&w->meta[i].address, &m->address)) {
                                error_at(l, line_of(s), "duplicate sync peer address '%s' (first at line %d)",
                                         p->address, w->meta[i].address_line);
                                dup = true;
                        }
                /* This node would dial itself and be refused as reflected. */
                if (!dup && w->listen && address_equal(w->listen, &m->address))
                        error_at(l, line_of(s), "address '%s' is this node's listen address", p->address);
        }

        r = get_string(l, e, "public_key", &str, &s);
        if (r == 0)
                error_at(l, line_of(e), "missing required setting 'public_key' %s", where);
        else if (r > 0) {
                if (wg_key_from_base64(p->public_key, str) < 0)
                        error_at(l, line_of(s), "public_key is not a base64 key (44 characters ending in '='; "
                                 "see hamgr pubkey)");
                /* The output of no private key, and a low-order point: no
                 * handshake with it can succeed. Usually a placeholder. */
                else if (wg_key_is_zero(p->public_key))
                        error_at(l, line_of(s), "public_key is all zero: use the other node's 'hamgr pubkey'");
                else {
                        m->key_line = line_of(s);
                        for (size_t i = 0; i < sc->n_peers; i++)
                                if (w->meta[i].key_line && wg_key_equal(sc->peers[i].public_key, p->public_key)) {
                                        /* The responder tells peers apart by key alone. */
                                        error_at(l, line_of(s), "duplicate sync peer public_key (first at line %d)",
                                                 w->meta[i].key_line);
                                        break;
                                }
                }
        }
        return 0;
}

static const struct list_spec sync_peers_spec = {
        .key = "peers",
        .not_list = "peers must be a list of groups: peers = ( { name = \"gw2\"; address = \"...\"; public_key = \"...\"; } );",
        .noun = "sync peer",
        .shape = "{ name = ...; address = ...; public_key = ...; }",
        .count = sync_peers_count,
        .parse = parse_sync_peer,
};

/* A virtual IP is on the MASTER only: listening there, the BACKUP could
 * not bind, and its peers could not reach it. */
static void check_listen_not_vip(struct loader *l, const struct hamgr_config *c, const struct sync_address *a,
                                 const char *text, int line) {
        struct ip_address ip = { .family = a->ep.addr.sa_family };

        if (ip.family == AF_INET)
                ip.addr.in = a->ep.addr4.sin_addr;
        else
                ip.addr.in6 = a->ep.addr6.sin6_addr;
        for (size_t i = 0; i < c->n_vrrp; i++)
                for (size_t j = 0; j < c->vrrp[i].n_virtual_ips; j++)
                        if (ip_address_equal(&c->vrrp[i].virtual_ips[j].address, &ip)) {
                                error_at(l, line,
                                         "listen '%s' is a virtual IP of vrrp instance '%s': only the MASTER holds "
                                         "it, so the BACKUP could not replicate; listen on the node's own address",
                                         text, c->vrrp[i].name ?: "?");
                                return;
                        }
}

int parse_sync(struct loader *l, config_setting_t *root, struct hamgr_config *c) {
        config_setting_t *grp = config_setting_get_member(root, "sync"), *s;
        config_setting_t *wg = config_setting_get_member(root, "wireguard");
        struct hamgr_sync_config *sc = &c->sync;
        struct sync_address listen;
        struct sync_walk w = { .sc = sc };
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
        sc->bootstrap_grace_s = 30;
        sc->rekey_interval_ms = 120000;
        sc->tombstone_retention_s = 7 * 24 * 3600;
        sc->line = line_of(grp);
        check_keys(l, grp, sync_keys, "in sync");

        r = parse_address(l, grp, "listen", true, "in sync", &sc->listen, &listen, &s);
        if (r < 0)
                return r;
        if (r > 0) {
                w.listen = &listen;
                check_listen_not_vip(l, c, &listen, sc->listen, line_of(s));
        }
        r = get_string(l, grp, "private_key_file", &str, &s);
        if (r == 0)
                error_at(l, line_of(grp), "missing required setting 'private_key_file' in sync");
        else if (r > 0) {
                if (str[0] != '/')
                        error_at(l, line_of(s), "private_key_file '%s' must be an absolute path", str);
                else if (strdup_to(str, &sc->private_key_file) < 0)
                        return -ENOMEM;
                sc->private_key_file_line = line_of(s);
        }
        (void) get_uint(l, grp, "poll_interval_ms", 100, 3600000, &sc->poll_interval_ms);
        (void) get_uint(l, grp, "bootstrap_grace_s", 0, 86400, &sc->bootstrap_grace_s);
        (void) get_uint(l, grp, "rekey_interval_ms", 1000, 86400000, &sc->rekey_interval_ms);
        (void) get_uint(l, grp, "tombstone_retention_s", 0, 10 * 365 * 24 * 3600, &sc->tombstone_retention_s);
        r = PARSE_LIST(l, grp, &sync_peers_spec, "in sync", &w, sc->peers, sc->n_peers);
        free(w.meta);
        if (r < 0)
                return r;
        /* A wireguard section that is there but malformed has its own
         * error; only its absence or emptiness is this section's. */
        if (!wg || (config_setting_is_list(wg) && config_setting_length(wg) == 0))
                error_at(l, line_of(grp), "sync replicates the interfaces of the wireguard section, which has none");
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
