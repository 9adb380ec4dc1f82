/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libconfig.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/macro.h"
#include "hamgr/config-internal.h"
#include "hamgr/config.h"

/* A config larger than this is a mistake (or an attack on the fuzzer). */
#define CONFIG_SIZE_MAX (1024 * 1024)
#define IFNAME_LEN_MAX (IFNAMSIZ - 1)
#define IFNAME_RULE "(1..%d characters, no '/', ':' or spaces)"
#define NODE_NAME_LEN_MAX 64
#define GROUP_MEMBERS_MAX 64

/* Per-instance facts the cross-instance checks need, kept out of the public struct. */
struct instance_meta {
        int name_line;
        int vrid_line;
        bool name_ok;
        bool vrid_ok;
        bool interface_ok;
};

static const char *const top_keys[] = {
        "node", "vrrp", "groups", "notify", "checks", "wireguard", "endpoints", "sync", NULL,
};
static const char *const node_keys[] = { "name", "state_dir", "control_socket", NULL };
static const char *const vrrp_keys[] = {
        "name", "interface", "vrid", "priority", "version", "advert_interval_ms",
        "unicast_ttl", "unicast_source",
        "preempt", "preempt_delay_ms", "accept_mode", "virtual_ips", "unicast_peers",
        "track_interfaces", "garp", "checksum", "track_checks", "virtual_routes", "auth_pass", NULL,
};
static const char *const garp_keys[] = { "repeat", "interval_ms", "refresh_s", "delay_s", "delay_repeat", NULL };
static const char *const group_keys[] = { "name", "instances", NULL };
static const char *const notify_keys[] = { "script", "master", "backup", "fault", "stop", "timeout_ms", NULL };

void error_at(struct loader *l, int line, const char *fmt, ...) {
        struct hamgr_config_error *items;
        char *msg;
        va_list ap;
        int r;

        l->n_errors++;
        if (!l->errors)
                return;

        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0) {
                l->oom = true;
                return;
        }
        items = reallocarray(l->errors->items, l->errors->n + 1, sizeof(*items));
        if (!items) {
                free(msg);
                l->oom = true;
                return;
        }
        items[l->errors->n++] = (struct hamgr_config_error) { .line = line, .message = msg };
        l->errors->items = items;
}

static const char *family_name(int family) {
        return family == AF_INET6 ? "IPv6" : "IPv4";
}

#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"

static bool name_is_valid_len(const char *s, size_t max) {
        size_t n = strlen(s);

        return n >= 1 && n <= max && strspn(s, NAME_CHARS) == n;
}

bool name_is_valid(const char *s) {
        return name_is_valid_len(s, NAME_LEN_MAX);
}

/* The kernel's own rule (dev_valid_name()), so anything accepted here can exist. */
bool ifname_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n < 1 || n >= IFNAME_LEN_MAX + 1)
                return false;
        if (streq(s, ".") || streq(s, ".."))
                return false;
        return !strpbrk(s, "/: \t\n\v\f\r");
}

bool key_is_known(const char *key, const char *const *keys) {
        for (; *keys; keys++)
                if (streq(key, *keys))
                        return true;
        return false;
}

void check_keys(struct loader *l, const config_setting_t *group, const char *const *keys, const char *where) {
        int n = config_setting_length(group);

        for (int i = 0; i < n; i++) {
                const config_setting_t *s = config_setting_get_elem(group, i);
                const char *key = config_setting_name(s);

                if (key && !key_is_known(key, keys))
                        error_at(l, line_of(s), "unknown setting '%s' %s", key, where);
        }
}

/* Like the getters in config-internal.h. */
static int get_integer(struct loader *l, config_setting_t *group, const char *key,
                       long long *ret, config_setting_t **ret_setting) {
        config_setting_t *s = config_setting_get_member(group, key);
        int type;

        if (!s)
                return 0;
        type = config_setting_type(s);
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
                error_at(l, line_of(s), "%s must be an integer", key);
                return -EINVAL;
        }
        *ret = config_setting_get_int64(s);
        if (ret_setting)
                *ret_setting = s;
        return 1;
}

int get_uint(struct loader *l, config_setting_t *group, const char *key, uint32_t min, uint32_t max,
             uint32_t *ret) {
        config_setting_t *s;
        long long v;
        int r;

        r = get_integer(l, group, key, &v, &s);
        if (r <= 0)
                return r;
        if (v < (long long) min || v > (long long) max) {
                error_at(l, line_of(s), "%s %lld out of range %" PRIu32 "..%" PRIu32, key, v, min, max);
                return -EINVAL;
        }
        *ret = (uint32_t) v;
        return 1;
}

int get_int(struct loader *l, config_setting_t *group, const char *key, int min, int max, int *ret) {
        config_setting_t *s;
        long long v;
        int r;

        r = get_integer(l, group, key, &v, &s);
        if (r <= 0)
                return r;
        if (v < min || v > max) {
                error_at(l, line_of(s), "%s %lld out of range %d..%d", key, v, min, max);
                return -EINVAL;
        }
        *ret = (int) v;
        return 1;
}

int get_bool(struct loader *l, config_setting_t *group, const char *key, bool *ret) {
        config_setting_t *s = config_setting_get_member(group, key);

        if (!s)
                return 0;
        if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
                error_at(l, line_of(s), "%s must be a boolean (true or false)", key);
                return -EINVAL;
        }
        *ret = config_setting_get_bool(s);
        return 1;
}

int get_string(struct loader *l, config_setting_t *group, const char *key, const char **ret,
               config_setting_t **ret_setting) {
        config_setting_t *s = config_setting_get_member(group, key);

        if (!s)
                return 0;
        if (config_setting_type(s) != CONFIG_TYPE_STRING) {
                error_at(l, line_of(s), "%s must be a string", key);
                return -EINVAL;
        }
        *ret = config_setting_get_string(s);
        if (ret_setting)
                *ret_setting = s;
        return 1;
}

/* An array [ ... ] or list ( ... ) of strings, every bad element recorded. */
static bool string_list_is_valid(struct loader *l, config_setting_t *s, const char *key) {
        bool ok = true;
        int n;

        if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
                error_at(l, line_of(s), "%s must be a list of strings, e.g. [ \"a\", \"b\" ]", key);
                return false;
        }
        n = config_setting_length(s);
        for (int i = 0; i < n; i++) {
                config_setting_t *e = config_setting_get_elem(s, i);

                if (config_setting_type(e) != CONFIG_TYPE_STRING) {
                        error_at(l, line_of(e), "%s must contain only strings", key);
                        ok = false;
                }
        }
        return ok;
}

int parse_list(struct loader *l, config_setting_t *parent, const struct list_spec *spec, const char *where,
               void *userdata, void **items, size_t size, size_t *n_items) {
        config_setting_t *list = config_setting_get_member(parent, spec->key);
        uint8_t *array;
        int n, r;

        if (!list) {
                if (spec->required)
                        error_at(l, line_of(parent), "missing required setting '%s' %s", spec->key, where);
                return 0;
        }
        if (!spec->noun) {
                if (!string_list_is_valid(l, list, spec->key))
                        return 0;
        } else if (!config_setting_is_list(list)) {
                error_at(l, line_of(list), "%s", spec->not_list);
                return 0;
        }
        n = config_setting_length(list);
        if (spec->count) {
                r = spec->count(l, list, n, userdata);
                if (r <= 0)
                        return r;
        }
        if (n == 0)
                return 0;
        array = calloc(n, size);
        if (!array)
                return -ENOMEM;
        *items = array;

        for (int i = 0; i < n; i++) {
                config_setting_t *e = config_setting_get_elem(list, i);

                if (spec->noun && !config_setting_is_group(e)) {
                        error_at(l, line_of(e), "%s #%d must be a group %s", spec->noun, i + 1,
                                 spec->shape ?: "{ ... }");
                        continue;
                }
                r = spec->parse(l, e, i, array + *n_items * size, userdata);
                if (r == LIST_DROP)
                        continue;
                /* Counted even on failure so hamgr_config_free() releases what it holds. */
                (*n_items)++;
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A group { ... } setting; absent is fine. */
static int get_group(struct loader *l, config_setting_t *parent, const char *key, config_setting_t **ret) {
        config_setting_t *s = config_setting_get_member(parent, key);

        if (!s)
                return 0;
        if (!config_setting_is_group(s)) {
                error_at(l, line_of(s), "%s must be a group { ... }", key);
                return -EINVAL;
        }
        *ret = s;
        return 1;
}

int strdup_to(const char *s, char **ret) {
        char *p = strdup(s);

        if (!p)
                return -ENOMEM;
        free(*ret);
        *ret = p;
        return 0;
}

static int parse_abs_path(struct loader *l, config_setting_t *group, const char *key, size_t max_len,
                          char **ret) {
        config_setting_t *s;
        const char *v;

        if (get_string(l, group, key, &v, &s) <= 0)
                return 0;
        if (v[0] != '/') {
                error_at(l, line_of(s), "%s '%s' must be an absolute path", key, v);
                return 0;
        }
        if (max_len > 0 && strlen(v) > max_len) {
                error_at(l, line_of(s), "%s is too long (at most %zu characters)", key, max_len);
                return 0;
        }
        return strdup_to(v, ret);
}

int parse_ifname(struct loader *l, config_setting_t *grp, const char *where, char **ret) {
        config_setting_t *s;
        const char *str;
        int r;

        r = get_string(l, grp, "interface", &str, &s);
        if (r == 0)
                error_at(l, line_of(grp), "missing required setting 'interface' %s", where);
        if (r <= 0)
                return 0;
        if (!ifname_is_valid(str)) {
                error_at(l, line_of(s), "interface '%s' is not a valid interface name " IFNAME_RULE, str,
                         IFNAME_LEN_MAX);
                return 0;
        }
        return strdup_to(str, ret);
}

static int parse_node(struct loader *l, config_setting_t *root, struct hamgr_config *c) {
        config_setting_t *node = NULL, *s;
        const char *name;
        int r;

        if (get_group(l, root, "node", &node) > 0) {
                check_keys(l, node, node_keys, "in node");

                if (get_string(l, node, "name", &name, &s) > 0) {
                        if (!name_is_valid_len(name, NODE_NAME_LEN_MAX))
                                error_at(l, line_of(s),
                                         "node name '%s' is invalid: use 1 to %d characters from A-Z a-z 0-9 _ . -",
                                         name, NODE_NAME_LEN_MAX);
                        else if (strdup_to(name, &c->node_name) < 0)
                                return -ENOMEM;
                }
                r = parse_abs_path(l, node, "state_dir", 0, &c->state_dir);
                if (r < 0)
                        return r;
                /* The control socket is bound as an AF_UNIX path. */
                r = parse_abs_path(l, node, "control_socket", sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1,
                                   &c->control_socket);
                if (r < 0)
                        return r;
        }

        if (!c->node_name) {
                char host[HOST_NAME_MAX + 1] = {};

                if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
                        error_at(l, node ? line_of(node) : 0, "node name is not set and the host name is unknown");
                else if (strdup_to(host, &c->node_name) < 0)
                        return -ENOMEM;
        }
        if (!c->state_dir && strdup_to(HAMGR_DEFAULT_STATE_DIR, &c->state_dir) < 0)
                return -ENOMEM;
        if (!c->control_socket && strdup_to(HAMGR_DEFAULT_CONTROL_SOCKET, &c->control_socket) < 0)
                return -ENOMEM;
        return 0;
}

static int vips_count(struct loader *l, config_setting_t *list, int n, void *userdata) {
        if (n > 0)
                return 1;
        error_at(l, line_of(list), "virtual_ips must list at least one address");
        return 0;
}

/* Why A cannot be a virtual IP or a unicast peer, or NULL. A VIP is also
 * refused in 169.254.0.0/16: an IPv4 link-local address is chosen per link
 * by each host (RFC 3927), not handed between routers. */
static const char *address_unusable(const struct ip_address *a, bool vip) {
        if (a->family == AF_INET) {
                uint32_t h = ntohl(a->addr.in.s_addr);

                if (h == INADDR_ANY)
                        return "the unspecified address";
                if (h == INADDR_BROADCAST)
                        return "the broadcast address";
                if (IN_MULTICAST(h))
                        return "a multicast address";
                if ((h >> 24) == 127)
                        return "a loopback address";
                if (vip && (h >> 16) == 0xa9fe)
                        return "an IPv4 link-local address (169.254.0.0/16)";
                return NULL;
        }
        if (IN6_IS_ADDR_UNSPECIFIED(&a->addr.in6))
                return "the unspecified address";
        if (IN6_IS_ADDR_MULTICAST(&a->addr.in6))
                return "a multicast address";
        if (IN6_IS_ADDR_LOOPBACK(&a->addr.in6))
                return "the loopback address";
        return NULL;
}

/* Host bits of P all zero (the network) or, for IPv4, all one (the
 * broadcast): -1, 1, or 0 for neither. /31, /32, /127 and /128 have no such
 * addresses (RFC 3021). */
static int prefix_edge(const struct ip_prefix *p) {
        size_t bits = ip_family_addr_len(p->address.family) * 8;
        bool zero = true, one = true;

        if ((size_t) p->prefixlen + 1 >= bits)
                return 0;
        for (size_t i = p->prefixlen; i < bits; i++) {
                bool set = p->address.addr.bytes[i / 8] & (0x80 >> (i % 8));

                zero = zero && !set;
                one = one && set;
        }
        if (zero)
                return -1;
        return one && p->address.family == AF_INET ? 1 : 0;
}

const char *hamgr_vip_unusable(const struct ip_prefix *p) {
        const char *why = address_unusable(&p->address, true);
        int edge;

        if (why)
                return why;
        edge = prefix_edge(p);
        if (edge < 0)
                return "the network address of its prefix";
        if (edge > 0)
                return "the broadcast address of its prefix";
        return NULL;
}

const char *hamgr_peer_unusable(const struct ip_address *a) {
        return address_unusable(a, false);
}

/* Why S, which ip_prefix_parse() refused, is wrong, as exactly as we can. */
static void vip_syntax_error(struct loader *l, int line, const char *s) {
        const char *slash = strrchr(s, '/');
        struct ip_address a;
        char addr[INET6_ADDRSTRLEN + 1];
        size_t n = slash ? (size_t) (slash - s) : 0;

        if (slash && n < sizeof(addr)) {
                memcpy(addr, s, n);
                addr[n] = '\0';
                if (ip_address_parse(addr, &a) >= 0 && slash[1] && strspn(slash + 1, "0123456789") == strlen(slash + 1)) {
                        error_at(l, line, "virtual IP '%s': prefix /%s is too long for %s (at most /%zu)", s, slash + 1,
                                 family_name(a.family), ip_family_addr_len(a.family) * 8);
                        return;
                }
        }
        error_at(l, line, "virtual IP '%s' is not an address with optional /prefix", s);
}

static int parse_vip(struct loader *l, config_setting_t *e, int idx, void *item, void *userdata) {
        struct hamgr_vrrp_config *v = userdata;
        const char *s = config_setting_get_string(e);
        const char *why;
        struct ip_prefix p;
        int edge;

        if (ip_prefix_parse(s, &p) < 0) {
                vip_syntax_error(l, line_of(e), s);
                return LIST_DROP;
        }
        why = address_unusable(&p.address, true);
        if (why) {
                error_at(l, line_of(e), "virtual IP '%s' is %s, which cannot be a virtual router's address", s, why);
                return LIST_DROP;
        }
        edge = prefix_edge(&p);
        if (edge != 0) {
                error_at(l, line_of(e),
                         "virtual IP '%s' is the %s address of its /%u network, not a host address "
                         "(give the address the router answers on, with the prefix of the subnet)",
                         s, edge < 0 ? "network" : "broadcast", p.prefixlen);
                return LIST_DROP;
        }
        if (v->family == AF_UNSPEC)
                v->family = p.address.family;
        if (p.address.family == AF_INET6 && v->version == 2) {
                error_at(l, line_of(e), "IPv6 virtual IP '%s' needs version 3 (VRRPv2 is IPv4 only)", s);
                return LIST_DROP;
        }
        /* The same address twice, whatever the prefix, would be added once and removed twice. */
        for (size_t j = 0; j < v->n_virtual_ips; j++)
                if (ip_address_equal(&v->virtual_ips[j].address, &p.address)) {
                        error_at(l, line_of(e), "duplicate virtual IP '%s'", s);
                        return LIST_DROP;
                }
        *(struct ip_prefix *) item = p;
        return 0;
}

static int parse_peer(struct loader *l, config_setting_t *e, int idx, void *item, void *userdata) {
        const struct hamgr_vrrp_config *v = userdata;
        const char *s = config_setting_get_string(e);
        const char *why;
        struct ip_address a;

        if (ip_address_parse(s, &a) < 0) {
                error_at(l, line_of(e), "unicast peer '%s' is not an IP address%s", s,
                         strchr(s, '/') ? " (give it without a /prefix)" : "");
                return LIST_DROP;
        }
        why = address_unusable(&a, false);
        if (why) {
                error_at(l, line_of(e), "unicast peer '%s' is %s; list the other router's own address", s, why);
                return LIST_DROP;
        }
        for (size_t j = 0; j < v->n_virtual_ips; j++)
                if (ip_address_equal(&v->virtual_ips[j].address, &a)) {
                        /* Whoever is MASTER would advertise to itself. */
                        error_at(l, line_of(e),
                                 "unicast peer '%s' is a virtual IP of this instance; list the other router's "
                                 "own address", s);
                        return LIST_DROP;
                }
        if (v->family != AF_UNSPEC && a.family != v->family) {
                error_at(l, line_of(e),
                         "unicast peer '%s' is %s but the advertisements are %s "
                         "(the family of the first virtual IP)",
                         s, family_name(a.family), family_name(v->family));
                return LIST_DROP;
        }
        /* IPv6 advertisements leave from the link-local address
         * (RFC 9568 5.1.2.1), so peers see and must list link-locals;
         * unless a global unicast_source routes them across subnets. */
        if (a.family == AF_INET6 && !ip_address_is_link_local(&a) &&
            (v->unicast_source.family != AF_INET6 || ip_address_is_link_local(&v->unicast_source))) {
                error_at(l, line_of(e),
                         "unicast peer '%s' must be the peer's IPv6 link-local address (fe80::/10): "
                         "IPv6 advertisements are sent from link-local addresses", s);
                return LIST_DROP;
        }
        for (size_t j = 0; j < v->n_unicast_peers; j++)
                if (ip_address_equal(&v->unicast_peers[j], &a)) {
                        error_at(l, line_of(e), "duplicate unicast peer '%s'", s);
                        return LIST_DROP;
                }
        *(struct ip_address *) item = a;
        return 0;
}

static int parse_track_interface(struct loader *l, config_setting_t *e, int idx, void *item, void *userdata) {
        const struct hamgr_vrrp_config *v = userdata;
        const char *s = config_setting_get_string(e);

        if (!ifname_is_valid(s)) {
                error_at(l, line_of(e), "track interface '%s' is not a valid interface name " IFNAME_RULE, s,
                         IFNAME_LEN_MAX);
                return LIST_DROP;
        }
        for (size_t j = 0; j < v->n_track_interfaces; j++)
                if (streq(v->track_interfaces[j], s)) {
                        error_at(l, line_of(e), "duplicate track interface '%s'", s);
                        return LIST_DROP;
                }
        return strdup_to(s, item);
}

static const struct list_spec vips_spec = {
        .key = "virtual_ips",
        .required = true,
        .count = vips_count,
        .parse = parse_vip,
};
static const struct list_spec peers_spec = { .key = "unicast_peers", .parse = parse_peer };
static const struct list_spec track_spec = { .key = "track_interfaces", .parse = parse_track_interface };

static void parse_garp(struct loader *l, config_setting_t *inst, const char *what, struct hamgr_garp_config *g) {
        config_setting_t *garp;
        char where[128];

        if (get_group(l, inst, "garp", &garp) <= 0)
                return;
        snprintf(where, sizeof(where), "in garp of %s", what);
        check_keys(l, garp, garp_keys, where);
        (void) get_uint(l, garp, "repeat", 1, 100, &g->repeat);
        (void) get_uint(l, garp, "interval_ms", 0, 10000, &g->interval_ms);
        (void) get_uint(l, garp, "refresh_s", 0, 86400, &g->refresh_s);
        (void) get_uint(l, garp, "delay_s", 0, 3600, &g->delay_s);
        (void) get_uint(l, garp, "delay_repeat", 1, 100, &g->delay_repeat);
}

/* unicast_ttl and unicast_source; needs the family, so it runs after the
 * virtual IPs, and before the peers, whose IPv6 rule depends on the source. */
static void parse_unicast_options(struct loader *l, config_setting_t *inst, struct hamgr_vrrp_config *v) {
        config_setting_t *s;
        const char *str;
        struct ip_address a;
        uint32_t u;

        if (get_uint(l, inst, "unicast_ttl", 1, 255, &u) > 0)
                v->unicast_ttl = (uint8_t) u;
        if (get_string(l, inst, "unicast_source", &str, &s) <= 0)
                return;
        if (ip_address_parse(str, &a) < 0) {
                error_at(l, line_of(s), "unicast_source '%s' is not an IP address", str);
                return;
        }
        if (v->family != AF_UNSPEC && a.family != v->family) {
                error_at(l, line_of(s),
                         "unicast_source '%s' is %s but the advertisements are %s "
                         "(the family of the first virtual IP)",
                         str, family_name(a.family), family_name(v->family));
                return;
        }
        for (size_t i = 0; i < v->n_virtual_ips; i++)
                if (ip_address_equal(&v->virtual_ips[i].address, &a)) {
                        /* It would leave with the VIP, and adverts with it. */
                        error_at(l, line_of(s), "unicast_source '%s' is a virtual IP of this instance", str);
                        return;
                }
        v->unicast_source = a;
}

/* The unicast options mean nothing in multicast mode; say so rather than
 * ignore them (keepalived resets unicast_ttl with a warning). */
static void check_unicast_options(struct loader *l, config_setting_t *inst, const struct hamgr_vrrp_config *v) {
        config_setting_t *s;

        /* Peers that were listed but rejected have their own errors. */
        if (v->n_unicast_peers > 0 || config_setting_get_member(inst, "unicast_peers"))
                return;
        s = config_setting_get_member(inst, "unicast_ttl");
        if (s)
                error_at(l, line_of(s), "unicast_ttl needs unicast_peers (multicast adverts always use TTL 255)");
        s = config_setting_get_member(inst, "unicast_source");
        if (s)
                error_at(l, line_of(s), "unicast_source needs unicast_peers");
}

/* Needs the version, so it runs after "version" was read. */
static int parse_auth_pass(struct loader *l, config_setting_t *inst, bool version_ok, struct hamgr_vrrp_config *v) {
        config_setting_t *s;
        const char *str;
        size_t n;

        if (get_string(l, inst, "auth_pass", &str, &s) <= 0 || !version_ok)
                return 0;
        n = strlen(str);
        if (v->version != 2) {
                error_at(l, line_of(s), "auth_pass needs version 2 (VRRPv3 has no authentication, RFC 9568)");
                return 0;
        }
        if (n == 0 || n > VRRP_V2_AUTH_LEN) {
                error_at(l, line_of(s), "auth_pass must be 1 to %d characters (RFC 2338 simple password), not %zu",
                         VRRP_V2_AUTH_LEN, n);
                return 0;
        }
        return strdup_to(str, &v->auth_pass);
}

/* Needs the version, so it runs after "version" was read whatever the order in the file. */
static void parse_interval(struct loader *l, config_setting_t *inst, bool version_ok, struct hamgr_vrrp_config *v) {
        config_setting_t *s;
        long long ms;

        if (get_integer(l, inst, "advert_interval_ms", &ms, &s) <= 0 || !version_ok)
                return;
        if (v->version == 3) {
                /* v3 carries centiseconds in 12 bits. */
                if (ms < 10 || ms > 40950) {
                        error_at(l, line_of(s), "advert_interval_ms %lld out of range 10..40950 (version 3)", ms);
                        return;
                }
                if (ms % 10 != 0) {
                        error_at(l, line_of(s), "advert_interval_ms %lld must be a multiple of 10 (version 3)", ms);
                        return;
                }
        } else {
                /* v2 carries whole seconds in 8 bits. */
                if (ms < 1000 || ms > 255000) {
                        error_at(l, line_of(s), "advert_interval_ms %lld out of range 1000..255000 (version 2)", ms);
                        return;
                }
                if (ms % 1000 != 0) {
                        error_at(l, line_of(s), "advert_interval_ms %lld must be whole seconds (version 2)", ms);
                        return;
                }
        }
        v->advert_interval_ms = (uint32_t) ms;
}

/* parse_vrrp()'s walk: the config so far, and one instance_meta per list element. */
struct vrrp_walk {
        const struct hamgr_config *c;
        struct instance_meta *meta;
};

/* A list_spec's parse. IDX is the position in the list, for naming an
 * instance that has no valid name. */
static int parse_instance(struct loader *l, config_setting_t *inst, int idx, void *item, void *userdata) {
        const struct vrrp_walk *w = userdata;
        const struct hamgr_config *c = w->c;
        struct hamgr_vrrp_config *v = item;
        struct instance_meta *m = &w->meta[c->n_vrrp];
        config_setting_t *s;
        const char *str;
        char what[64], where[80];
        long long ver;
        uint32_t u;
        bool version_ok = true;
        int r;

        *v = (struct hamgr_vrrp_config) {
                .priority = 100,
                .version = 3,
                .advert_interval_ms = 1000,
                .unicast_ttl = VRRP_TTL,
                .preempt = true,
                .checksum = VRRP_CHECKSUM_RFC5798,
                .family = AF_UNSPEC,
                .garp = { .repeat = 3, .interval_ms = 100, .refresh_s = 0, .delay_s = 5, .delay_repeat = 3 },
                .line = line_of(inst),
        };
        snprintf(what, sizeof(what), "vrrp instance #%d", idx + 1);

        r = get_string(l, inst, "name", &str, &s);
        if (r == 0)
                error_at(l, line_of(inst), "missing required setting 'name' in %s", what);
        else if (r > 0) {
                m->name_line = line_of(s);
                if (!name_is_valid(str))
                        error_at(l, line_of(s),
                                 "vrrp instance name '%s' is invalid: use 1 to %d characters from A-Z a-z 0-9 _ . -",
                                 str, NAME_LEN_MAX);
                else {
                        if (strdup_to(str, &v->name) < 0)
                                return -ENOMEM;
                        m->name_ok = true;
                        snprintf(what, sizeof(what), "vrrp instance '%s'", str);
                }
        }
        snprintf(where, sizeof(where), "in %s", what);
        check_keys(l, inst, vrrp_keys, where);

        r = parse_ifname(l, inst, where, &v->interface);
        if (r < 0)
                return r;
        m->interface_ok = v->interface != NULL;

        r = get_uint(l, inst, "vrid", 1, 255, &u);
        if (r == 0)
                error_at(l, line_of(inst), "missing required setting 'vrid' %s", where);
        else if (r > 0) {
                v->vrid = (uint8_t) u;
                m->vrid_ok = true;
                m->vrid_line = line_of(config_setting_get_member(inst, "vrid"));
        }

        if (get_uint(l, inst, "priority", 1, 255, &u) > 0)
                v->priority = (uint8_t) u;

        r = get_integer(l, inst, "version", &ver, &s);
        if (r < 0)
                version_ok = false;
        else if (r > 0) {
                if (ver != 2 && ver != 3) {
                        error_at(l, line_of(s), "version %lld must be 2 or 3", ver);
                        version_ok = false;
                } else
                        v->version = (uint8_t) ver;
        }
        parse_interval(l, inst, version_ok, v);
        r = parse_auth_pass(l, inst, version_ok, v);
        if (r < 0)
                return r;

        (void) get_bool(l, inst, "preempt", &v->preempt);
        (void) get_uint(l, inst, "preempt_delay_ms", 0, 3600000, &v->preempt_delay_ms);
        (void) get_bool(l, inst, "accept_mode", &v->accept_mode);

        if (get_string(l, inst, "checksum", &str, &s) > 0) {
                r = vrrp_checksum_mode_from_string(str);
                if (r < 0)
                        error_at(l, line_of(s), "checksum '%s' must be \"rfc5798\" or \"rfc9568\"", str);
                else
                        v->checksum = r;
        }

        /* With a bad version the v2/IPv6 check would be noise. */
        if (!version_ok)
                v->version = 3;
        r = PARSE_LIST(l, inst, &vips_spec, where, v, v->virtual_ips, v->n_virtual_ips);
        if (r < 0)
                return r;
        parse_unicast_options(l, inst, v);
        r = PARSE_LIST(l, inst, &peers_spec, NULL, v, v->unicast_peers, v->n_unicast_peers);
        if (r < 0)
                return r;
        check_unicast_options(l, inst, v);
        r = PARSE_LIST(l, inst, &track_spec, NULL, v, v->track_interfaces, v->n_track_interfaces);
        if (r < 0)
                return r;
        parse_garp(l, inst, what, &v->garp);
        r = parse_virtual_routes(l, inst, what, v);
        if (r < 0)
                return r;
        return parse_track_checks(l, inst, what, c, v);
}

static void check_instances(struct loader *l, const struct hamgr_config *c, const struct instance_meta *m) {
        for (size_t i = 0; i < c->n_vrrp; i++) {
                const struct hamgr_vrrp_config *b = &c->vrrp[i];

                for (size_t j = 0; j < i; j++) {
                        const struct hamgr_vrrp_config *a = &c->vrrp[j];

                        if (m[i].name_ok && m[j].name_ok && streq(a->name, b->name)) {
                                error_at(l, m[i].name_line, "duplicate vrrp instance name '%s' (first at line %d)",
                                         b->name, a->line);
                                break;
                        }
                }

                /* One vrid per interface and family: IPv4 and IPv6 virtual
                 * routers with the same vrid are distinct routers. */
                if (m[i].vrid_ok && m[i].interface_ok && b->family != AF_UNSPEC)
                        for (size_t j = 0; j < i; j++) {
                                const struct hamgr_vrrp_config *a = &c->vrrp[j];

                                if (!m[j].vrid_ok || !m[j].interface_ok || a->vrid != b->vrid ||
                                    a->family != b->family || !streq(a->interface, b->interface))
                                        continue;
                                error_at(l, m[i].vrid_line,
                                         "vrid %u on interface %s (%s) is already used by vrrp instance '%s' (line %d)",
                                         b->vrid, b->interface, family_name(b->family),
                                         a->name ?: "?", a->line);
                                break;
                        }

                /* One address owned by two routers would flap between them. */
                for (size_t k = 0; k < b->n_virtual_ips; k++)
                        for (size_t j = 0; j < i; j++) {
                                const struct hamgr_vrrp_config *a = &c->vrrp[j];
                                bool found = false;

                                for (size_t x = 0; x < a->n_virtual_ips; x++)
                                        if (ip_address_equal(&a->virtual_ips[x].address, &b->virtual_ips[k].address))
                                                found = true;
                                if (found) {
                                        char buf[INET6_ADDRSTRLEN];

                                        error_at(l, b->line,
                                                 "virtual IP %s is also in vrrp instance '%s' (line %d)",
                                                 ip_address_to_string(&b->virtual_ips[k].address, buf, sizeof(buf)),
                                                 a->name ?: "?", a->line);
                                        break;
                                }
                        }
        }
}

static int vrrp_count(struct loader *l, config_setting_t *list, int n, void *userdata) {
        struct vrrp_walk *w = userdata;

        if (n == 0)
                return 0;
        w->meta = calloc(n, sizeof(*w->meta));
        return w->meta ? 1 : -ENOMEM;
}

static const struct list_spec vrrp_spec = {
        .key = "vrrp",
        .not_list = "vrrp must be a list of instances: vrrp = ( { ... }, { ... } );",
        .noun = "vrrp instance",
        .count = vrrp_count,
        .parse = parse_instance,
};

static int parse_vrrp(struct loader *l, config_setting_t *root, struct hamgr_config *c) {
        struct vrrp_walk w = { .c = c };
        int r;

        r = PARSE_LIST(l, root, &vrrp_spec, NULL, &w, c->vrrp, c->n_vrrp);
        if (r >= 0)
                check_instances(l, c, w.meta);
        if (r >= 0)
                check_virtual_routes(l, c);
        free(w.meta);
        return r;
}

/* parse_group()'s walk of the members of G. */
struct group_walk {
        const struct hamgr_config *c;
        const struct hamgr_group_config *g;
};

static int members_count(struct loader *l, config_setting_t *list, int n, void *userdata) {
        if (n >= 1 && n <= GROUP_MEMBERS_MAX)
                return 1;
        error_at(l, line_of(list), "instances has %d members, allowed 1..%d", n, GROUP_MEMBERS_MAX);
        return 0;
}

static int parse_member(struct loader *l, config_setting_t *e, int idx, void *item, void *userdata) {
        const struct group_walk *w = userdata;
        const char *name = config_setting_get_string(e);
        const struct hamgr_group_config *owner = NULL;
        const struct hamgr_vrrp_config *v = hamgr_config_find_vrrp(w->c, name);

        if (!v) {
                error_at(l, line_of(e), "group member '%s' is not a vrrp instance", name);
                return LIST_DROP;
        }
        /* The members of a group share their weights (each takes the sum of
         * all), so one check weighted twice would count twice. */
        for (size_t i = 0; i < v->n_track_checks; i++) {
                const struct hamgr_track_check *t = &v->track_checks[i];

                for (size_t k = 0; k < w->g->n_instances && t->weight != 0; k++) {
                        const struct hamgr_vrrp_config *o = hamgr_config_find_vrrp(w->c, w->g->instances[k]);

                        for (size_t j = 0; o && j < o->n_track_checks; j++)
                                if (o->track_checks[j].weight != 0 && streq(o->track_checks[j].check, t->check))
                                        error_at(l, t->line,
                                                 "check '%s' has a weight in vrrp instances '%s' (line %d) and '%s' "
                                                 "of group '%s': a group adds up the weights of all its members, "
                                                 "give it a weight in one of them",
                                                 t->check, o->name, o->track_checks[j].line, name,
                                                 w->g->name ?: "?");
                }
        }
        /* Earlier groups, then this one so far: a member listed twice is caught too. */
        for (size_t j = 0; j < w->c->n_groups && !owner; j++)
                for (size_t k = 0; k < w->c->groups[j].n_instances; k++)
                        if (streq(w->c->groups[j].instances[k], name))
                                owner = &w->c->groups[j];
        if (!owner)
                for (size_t k = 0; k < w->g->n_instances; k++)
                        if (streq(w->g->instances[k], name))
                                owner = w->g;
        if (owner) {
                error_at(l, line_of(e), "vrrp instance '%s' is already in group '%s' (line %d)", name,
                         owner->name ?: "?", owner->line);
                return LIST_DROP;
        }
        return strdup_to(name, item);
}

static const struct list_spec members_spec = {
        .key = "instances",
        .required = true,
        .count = members_count,
        .parse = parse_member,
};

/* A list_spec's parse. The group is not yet among C's, so it does not find
 * itself as a duplicate or as an earlier owner of its members. */
static int parse_group(struct loader *l, config_setting_t *grp, int idx, void *item, void *userdata) {
        const struct hamgr_config *c = userdata;
        struct hamgr_group_config *g = item;
        struct group_walk w = { .c = c, .g = g };
        config_setting_t *s;
        const char *str;
        char where[64];
        int r;

        g->line = line_of(grp);
        snprintf(where, sizeof(where), "in group #%d", idx + 1);

        r = get_string(l, grp, "name", &str, &s);
        if (r == 0)
                error_at(l, line_of(grp), "missing required setting 'name' %s", where);
        else if (r > 0) {
                const struct hamgr_group_config *other = hamgr_config_find_group(c, str);

                if (!name_is_valid(str))
                        error_at(l, line_of(s),
                                 "group name '%s' is invalid: use 1 to %d characters from A-Z a-z 0-9 _ . -",
                                 str, NAME_LEN_MAX);
                else if (other)
                        error_at(l, line_of(s), "duplicate group name '%s' (first at line %d)", str, other->line);
                else if (strdup_to(str, &g->name) < 0)
                        return -ENOMEM;
                if (name_is_valid(str))
                        snprintf(where, sizeof(where), "in group '%s'", str);
        }
        check_keys(l, grp, group_keys, where);

        return PARSE_LIST(l, grp, &members_spec, where, &w, g->instances, g->n_instances);
}

static const struct list_spec groups_spec = {
        .key = "groups",
        .not_list = "groups must be a list of groups: groups = ( { ... } );",
        .noun = "group",
        .parse = parse_group,
};

static int parse_groups(struct loader *l, config_setting_t *root, struct hamgr_config *c) {
        return PARSE_LIST(l, root, &groups_spec, NULL, c, c->groups, c->n_groups);
}

static int parse_notify(struct loader *l, config_setting_t *root, struct hamgr_config *c) {
        static const char *const scripts[] = { "script", "master", "backup", "fault", "stop" };
        struct hamgr_notify_config *nc = &c->notify;
        char **fields[] = { &nc->script, &nc->master, &nc->backup, &nc->fault, &nc->stop };
        config_setting_t *notify, *s;

        nc->timeout_ms = 10000;
        if (get_group(l, root, "notify", &notify) <= 0)
                return 0;
        check_keys(l, notify, notify_keys, "in notify");

        for (size_t i = 0; i < ELEMENTSOF(scripts); i++) {
                const char *v;

                if (get_string(l, notify, scripts[i], &v, &s) <= 0 || v[0] == '\0')
                        continue;
                if (v[0] != '/') {
                        error_at(l, line_of(s), "notify %s '%s' must be an absolute path", scripts[i], v);
                        continue;
                }
                /* keepalived runs notify lines through a shell; hamgr execs
                 * the path, so "/x.sh MASTER" would never run. */
                if (strpbrk(v, " \t")) {
                        error_at(l, line_of(s),
                                 "notify %s '%s' has arguments: hamgr runs a path, without a shell, and passes "
                                 "the state itself; put the command line in a script and give its path",
                                 scripts[i], v);
                        continue;
                }
                if (strdup_to(v, fields[i]) < 0)
                        return -ENOMEM;
        }
        (void) get_uint(l, notify, "timeout_ms", 1, 3600000, &nc->timeout_ms);
        return 0;
}

/* An integer literal of libconfig syntax at P: [+-]digits or 0x hex, with an
 * optional L. Returns its length; *ret_fits tells whether libconfig 1.5 will
 * read it unchanged (it silently wraps values beyond 32 bits without L, so
 * that "vrid = 4294967347;" would load as vrid 51). */
static size_t scan_integer(const char *p, bool *ret_fits) {
        const char *q = p;
        bool hex = false;
        int base = 10;

        if (*q == '+' || *q == '-')
                q++;
        if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X') && isxdigit((unsigned char) q[2])) {
                hex = true;
                base = 16;
                q += 2;
        }
        while (hex ? isxdigit((unsigned char) *q) : isdigit((unsigned char) *q))
                q++;
        if (!hex && (*q == '.' || *q == 'e' || *q == 'E')) {
                /* A float: skip it, floats are rejected by type later. */
                q += strspn(q, "0123456789.eE+-");
                *ret_fits = true;
                return q - p;
        }
        if (*q == 'L') {
                *ret_fits = true;
                return q + 1 - p;
        }

        errno = 0;
        if (hex) {
                unsigned long long u = strtoull(p, NULL, base);

                *ret_fits = errno == 0 && u <= INT32_MAX;
        } else {
                long long v = strtoll(p, NULL, base);

                *ret_fits = errno == 0 && v >= INT32_MIN && v <= INT32_MAX;
        }
        return q - p;
}

/*
 * A lexical pass before libconfig's, for what libconfig 1.5 gets wrong:
 * integers it would truncate, and @include, which it opens while scanning
 * (before we could refuse it) and whose lines it reports against the wrong
 * file. Follows libconfig's tokens closely enough to skip strings, comments
 * and names; anything it misreads is a syntax error libconfig reports anyway.
 * Returns false when libconfig must not see TEXT (an @include it would open).
 */
static bool prescan(struct loader *l, const char *text) {
        bool line_start = true, include = false;
        int line = 1;

        for (const char *p = text; *p;) {
                if (*p == '\n') {
                        line++;
                        line_start = true;
                        p++;
                } else if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\f' || *p == '\v')
                        p++;
                else if (*p == '#' || (p[0] == '/' && p[1] == '/'))
                        p = strchrnul(p, '\n');
                else if (p[0] == '/' && p[1] == '*') {
                        for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
                                if (*p == '\n')
                                        line++;
                        if (*p)
                                p += 2;
                        line_start = false;
                } else if (*p == '"') {
                        for (p++; *p && *p != '"'; p++) {
                                if (*p == '\\' && p[1])
                                        p++;
                                if (*p == '\n')
                                        line++;
                        }
                        if (*p)
                                p++;
                        line_start = false;
                } else if (line_start && *p == '@') {
                        if (strncmp(p, "@include", strlen("@include")) == 0) {
                                error_at(l, line, "@include is not supported");
                                include = true;
                        }
                        p++;
                        line_start = false;
                } else if (isalpha((unsigned char) *p) || *p == '*') {
                        p += strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_*");
                        line_start = false;
                } else if (isdigit((unsigned char) *p) ||
                           ((*p == '+' || *p == '-') && isdigit((unsigned char) p[1]))) {
                        bool fits;
                        size_t n = scan_integer(p, &fits);

                        if (!fits)
                                error_at(l, line, "integer %.*s does not fit in 32 bits", (int) n, p);
                        p += n;
                        line_start = false;
                } else {
                        p++;
                        line_start = false;
                }
        }
        return !include;
}

/* A line with a prescan error (an integer libconfig wrapped) also gets
 * libconfig's or the checks' view of the wrapped value: noise. The N_PRESCAN
 * errors after START are the prescan's. */
static void drop_echoes(struct hamgr_config_errors *errors, size_t start, size_t n_prescan) {
        size_t kept;

        if (!errors || n_prescan == 0)
                return;
        kept = start + n_prescan;
        for (size_t i = start + n_prescan; i < errors->n; i++) {
                bool echo = false;

                for (size_t j = start; j < start + n_prescan && !echo; j++)
                        echo = errors->items[j].line == errors->items[i].line;
                if (echo)
                        free(errors->items[i].message);
                else
                        errors->items[kept++] = errors->items[i];
        }
        errors->n = kept;
}

/* Checks run section by section, so cross-references are found late; the
 * reader wants the file's order. Stable, so one line's errors keep theirs. */
static void sort_errors(struct hamgr_config_errors *errors, size_t start) {
        if (!errors)
                return;
        for (size_t i = start + 1; i < errors->n; i++) {
                struct hamgr_config_error e = errors->items[i];
                size_t j = i;

                for (; j > start && errors->items[j - 1].line > e.line; j--)
                        errors->items[j] = errors->items[j - 1];
                errors->items[j] = e;
        }
}

static int load_text(const char *text, const char *name, struct hamgr_config **ret,
                     struct hamgr_config_errors *errors) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        struct loader l = { .errors = errors };
        size_t first_error = errors ? errors->n : 0, n_prescan;
        config_setting_t *root;
        config_t cfg;
        int r;

        /* After a prescan error the rest of the file is still checked, so
         * that one pass shows every error. */
        if (!prescan(&l, text))
                return l.oom ? -ENOMEM : -EINVAL;
        n_prescan = errors ? errors->n - first_error : 0;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->path = strdup(name);
        if (!c->path)
                return -ENOMEM;

        config_init(&cfg);
        if (config_read_string(&cfg, text) != CONFIG_TRUE) {
                error_at(&l, config_error_line(&cfg), "%s", config_error_text(&cfg) ?: "syntax error");
                if (strstr(text, "vrrp_instance") || strstr(text, "virtual_router_id"))
                        error_at(&l, config_error_line(&cfg),
                                 "this looks like a keepalived.conf, which hamgr does not read; convert it with "
                                 "'hamgr import-keepalived FILE' (see hamgr(8) and hamgr.conf(5))");
                r = -EINVAL;
                goto finish;
        }

        root = config_root_setting(&cfg);
        check_keys(&l, root, top_keys, "at top level");
        /* Sections that others refer to first: checks before the
         * instances tracking them, instances and groups before wireguard. */
        r = parse_node(&l, root, c);
        if (r >= 0)
                r = parse_checks(&l, root, c);
        if (r >= 0)
                r = parse_vrrp(&l, root, c);
        if (r >= 0)
                r = parse_groups(&l, root, c);
        if (r >= 0)
                r = parse_notify(&l, root, c);
        if (r >= 0)
                r = parse_wireguard(&l, root, c);
        if (r >= 0)
                r = parse_endpoints(&l, root, c);
        if (r >= 0)
                r = parse_sync(&l, root, c);

finish:
        config_destroy(&cfg);
        drop_echoes(errors, first_error, n_prescan);
        sort_errors(errors, first_error);
        if (r < 0 && r != -EINVAL)
                return r;
        if (l.oom)
                return -ENOMEM;
        if (r < 0 || l.n_errors > 0)
                return -EINVAL;
        *ret = TAKE_PTR(c);
        return 0;
}

int hamgr_config_load_string(const char *text, const char *name, struct hamgr_config **ret,
                             struct hamgr_config_errors *errors) {
        if (!text || !ret)
                return -EINVAL;
        return load_text(text, name ?: "<string>", ret, errors);
}

static const char *file_type_name(mode_t mode) {
        if (S_ISDIR(mode))
                return "a directory";
        if (S_ISFIFO(mode))
                return "a FIFO";
        if (S_ISCHR(mode))
                return "a character device";
        if (S_ISBLK(mode))
                return "a block device";
        if (S_ISSOCK(mode))
                return "a socket";
        return "not a regular file";
}

/* All of FD, at most CONFIG_SIZE_MAX bytes, NUL-terminated. */
static int read_all(int fd, char **ret) {
        _cleanup_(freep) char *buf = NULL;
        size_t len = 0;

        buf = malloc(CONFIG_SIZE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, CONFIG_SIZE_MAX + 1 - len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += n;
                if (len > CONFIG_SIZE_MAX)
                        return -EFBIG;
        }
        /* libconfig would stop silently at a NUL and ignore the rest. */
        if (memchr(buf, '\0', len))
                return -EBADMSG;
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

/* PATH, a regular file; "-" is standard input, whatever it is. *ret_type
 * names what PATH is when it is refused with -EBADF. */
static int read_file(const char *path, char **ret, const char **ret_type) {
        _cleanup_(closep) int fd = -1;
        struct stat st;

        if (streq(path, "-"))
                return read_all(STDIN_FILENO, ret);
        /* O_NONBLOCK: opening a FIFO without a writer would block, and a
         * device may; nothing but a regular file is read anyway. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode)) {
                *ret_type = file_type_name(st.st_mode);
                return -EBADF;
        }
        if (st.st_size > CONFIG_SIZE_MAX)
                return -EFBIG;
        return read_all(fd, ret);
}

int hamgr_config_load(const char *path, struct hamgr_config **ret, struct hamgr_config_errors *errors) {
        _cleanup_(freep) char *text = NULL;
        struct loader l = { .errors = errors };
        const char *type = NULL;
        int r;

        if (!path || !ret)
                return -EINVAL;

        r = read_file(path, &text, &type);
        if (r == -EBADMSG)
                error_at(&l, 0, "file contains a NUL byte");
        else if (r == -EFBIG)
                error_at(&l, 0, "file is larger than %d bytes", CONFIG_SIZE_MAX);
        else if (r == -EBADF)
                error_at(&l, 0, "is %s, not a regular file: give the path of the configuration file "
                         "(or - for standard input)", type);
        else if (r < 0)
                error_at(&l, 0, "cannot read: %s", strerror(-r));
        if (r < 0)
                return r;

        return load_text(text, path, ret, errors);
}

void hamgr_config_errors_print(const struct hamgr_config_errors *errors, const char *file, FILE *out) {
        if (!errors)
                return;
        for (size_t i = 0; i < errors->n; i++) {
                const struct hamgr_config_error *e = &errors->items[i];

                if (e->line > 0)
                        fprintf(out, "%s:%d: %s\n", file ?: "<config>", e->line, e->message);
                else
                        fprintf(out, "%s: %s\n", file ?: "<config>", e->message);
        }
}

void hamgr_config_errors_clear(struct hamgr_config_errors *errors) {
        if (!errors)
                return;
        for (size_t i = 0; i < errors->n; i++)
                free(errors->items[i].message);
        free(errors->items);
        *errors = (struct hamgr_config_errors) {};
}

static int _printf_(3, 4) message_add(struct hamgr_config_errors *list, int line, const char *fmt, ...) {
        struct hamgr_config_error *items;
        char *msg;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        items = reallocarray(list->items, list->n + 1, sizeof(*items));
        if (!items) {
                free(msg);
                return -ENOMEM;
        }
        items[list->n++] = (struct hamgr_config_error) { .line = line, .message = msg };
        list->items = items;
        return 0;
}

int hamgr_config_warnings(const struct hamgr_config *config, struct hamgr_config_errors *warnings) {
        char buf[INET6_ADDRSTRLEN];
        int r;

        for (size_t i = 0; i < config->n_vrrp; i++) {
                const struct hamgr_vrrp_config *v = &config->vrrp[i];
                const struct ip_address *first;

                /* Settings that load but change nothing. */
                for (size_t k = 0; v->priority == 255 && k < v->n_track_checks; k++) {
                        const struct hamgr_track_check *t = &v->track_checks[k];

                        if (t->weight == 0)
                                continue;
                        r = message_add(warnings, t->line,
                                        "warning: vrrp instance '%s': weight %d of check '%s' does nothing: the "
                                        "address owner (priority 255) is never adjusted; lower the priority or "
                                        "use weight 0 (FAULT while the check is down)",
                                        v->name, t->weight, t->check);
                        if (r < 0)
                                return r;
                }
                if (!v->preempt && v->preempt_delay_ms > 0) {
                        r = message_add(warnings, v->line,
                                        "warning: vrrp instance '%s': preempt_delay_ms does nothing with "
                                        "preempt = false; remove one of them",
                                        v->name);
                        if (r < 0)
                                return r;
                }
                /* Kept for keepalived pairs; say what it is worth. */
                if (v->auth_pass) {
                        r = message_add(warnings, v->line,
                                        "warning: vrrp instance '%s': auth_pass is sent in clear text in every "
                                        "advertisement; it keeps misconfigured routers apart, it is not security",
                                        v->name);
                        if (r < 0)
                                return r;
                }

                if (v->family != AF_INET6 || v->n_virtual_ips == 0)
                        continue;
                first = &v->virtual_ips[0].address;
                if (ip_address_is_link_local(first))
                        continue;
                /* Not an error: hamgr and keepalived accept such adverts,
                 * but a stricter router may not. */
                r = message_add(warnings, v->line,
                                "warning: vrrp instance '%s': first virtual IP %s is not link-local; "
                                "RFC 9568 5.2.9 asks for the virtual router's link-local address (fe80::/10) "
                                "first in IPv6 advertisements",
                                v->name, ip_address_to_string(first, buf, sizeof(buf)));
                if (r < 0)
                        return r;
        }
        return 0;
}

static void strv_free_n(char **v, size_t n) {
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void vrrp_config_done(struct hamgr_vrrp_config *v) {
        free(v->name);
        free(v->interface);
        free(v->virtual_ips);
        free(v->unicast_peers);
        if (v->auth_pass)
                explicit_bzero(v->auth_pass, strlen(v->auth_pass));
        free(v->auth_pass);
        strv_free_n(v->track_interfaces, v->n_track_interfaces);
        for (size_t i = 0; i < v->n_track_checks; i++)
                free(v->track_checks[i].check);
        free(v->track_checks);
        free_virtual_routes(v);
}

struct hamgr_config *hamgr_config_free(struct hamgr_config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_vrrp; i++)
                vrrp_config_done(&c->vrrp[i]);
        free(c->vrrp);
        for (size_t i = 0; i < c->n_groups; i++) {
                free(c->groups[i].name);
                strv_free_n(c->groups[i].instances, c->groups[i].n_instances);
        }
        free(c->groups);
        for (size_t i = 0; i < c->n_checks; i++) {
                free(c->checks[i].name);
                free(c->checks[i].interface);
                free(c->checks[i].command);
        }
        free(c->checks);
        for (size_t i = 0; i < c->n_wireguard; i++) {
                free(c->wireguard[i].interface);
                free(c->wireguard[i].follow);
        }
        free(c->wireguard);
        for (size_t i = 0; i < c->n_endpoints; i++) {
                free(c->endpoints[i].interface);
                strv_free_n(c->endpoints[i].candidates, c->endpoints[i].n_candidates);
        }
        free(c->endpoints);
        free_sync(&c->sync);
        free(c->notify.script);
        free(c->notify.master);
        free(c->notify.backup);
        free(c->notify.fault);
        free(c->notify.stop);
        free(c->path);
        free(c->node_name);
        free(c->state_dir);
        free(c->control_socket);
        free(c);
        return NULL;
}

/* The first of the N elements of SIZE bytes at ARRAY whose char * at
 * OFFSET is NAME (a NULL name, left by an invalid entry, matches none). */
static const void *find_named(const void *array, size_t n, size_t size, size_t offset, const char *name) {
        for (size_t i = 0; name && i < n; i++) {
                const uint8_t *e = (const uint8_t *) array + i * size;
                const char *s = *(char *const *) (e + offset);

                if (s && streq(s, name))
                        return e;
        }
        return NULL;
}

#define FIND_NAMED(array, n, wanted) \
        find_named((array), (n), sizeof(*(array)), offsetof(__typeof__(*(array)), name), (wanted))

const struct hamgr_vrrp_config *hamgr_config_find_vrrp(const struct hamgr_config *c, const char *name) {
        return c ? FIND_NAMED(c->vrrp, c->n_vrrp, name) : NULL;
}

const struct hamgr_group_config *hamgr_config_find_group(const struct hamgr_config *c, const char *name) {
        return c ? FIND_NAMED(c->groups, c->n_groups, name) : NULL;
}

const struct hamgr_check_config *hamgr_config_find_check(const struct hamgr_config *c, const char *name) {
        return c ? FIND_NAMED(c->checks, c->n_checks, name) : NULL;
}

static bool str_equal(const char *a, const char *b) {
        return a == b || (a && b && streq(a, b));
}

bool hamgr_vrrp_config_equal(const struct hamgr_vrrp_config *a, const struct hamgr_vrrp_config *b) {
        if (a == b)
                return true;
        if (!a || !b)
                return false;

        if (!str_equal(a->name, b->name) || !str_equal(a->interface, b->interface) || a->vrid != b->vrid ||
            a->priority != b->priority || a->version != b->version ||
            a->advert_interval_ms != b->advert_interval_ms || a->preempt != b->preempt ||
            a->preempt_delay_ms != b->preempt_delay_ms || a->accept_mode != b->accept_mode ||
            a->checksum != b->checksum || a->family != b->family ||
            a->garp.repeat != b->garp.repeat || a->garp.interval_ms != b->garp.interval_ms ||
            a->garp.refresh_s != b->garp.refresh_s || a->garp.delay_s != b->garp.delay_s ||
            a->garp.delay_repeat != b->garp.delay_repeat || !str_equal(a->auth_pass, b->auth_pass))
                return false;

        /* Order is significant: the first address sets the family and the advertisement lists them in order. */
        if (a->n_virtual_ips != b->n_virtual_ips || a->n_unicast_peers != b->n_unicast_peers ||
            a->n_track_interfaces != b->n_track_interfaces)
                return false;
        for (size_t i = 0; i < a->n_virtual_ips; i++)
                if (!ip_address_equal(&a->virtual_ips[i].address, &b->virtual_ips[i].address) ||
                    a->virtual_ips[i].prefixlen != b->virtual_ips[i].prefixlen)
                        return false;
        for (size_t i = 0; i < a->n_unicast_peers; i++)
                if (!ip_address_equal(&a->unicast_peers[i], &b->unicast_peers[i]))
                        return false;
        if (a->unicast_ttl != b->unicast_ttl || a->unicast_source.family != b->unicast_source.family ||
            (a->unicast_source.family && !ip_address_equal(&a->unicast_source, &b->unicast_source)))
                return false;
        for (size_t i = 0; i < a->n_track_interfaces; i++)
                if (!str_equal(a->track_interfaces[i], b->track_interfaces[i]))
                        return false;

        /* Tracked checks are a set (names are unique per instance): order
         * changes nothing, so it does not restart the instance. */
        if (a->n_track_checks != b->n_track_checks)
                return false;
        for (size_t i = 0; i < a->n_track_checks; i++) {
                bool found = false;

                for (size_t j = 0; j < b->n_track_checks && !found; j++)
                        found = str_equal(a->track_checks[i].check, b->track_checks[j].check) &&
                                a->track_checks[i].weight == b->track_checks[j].weight;
                if (!found)
                        return false;
        }

        /* Routes in order: they are added in it. */
        if (a->n_virtual_routes != b->n_virtual_routes)
                return false;
        for (size_t i = 0; i < a->n_virtual_routes; i++)
                if (!hamgr_virtual_route_equal(&a->virtual_routes[i], &b->virtual_routes[i]))
                        return false;
        return true;
}
