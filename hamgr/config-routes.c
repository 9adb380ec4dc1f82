/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtual_routes of a vrrp instance: routes that follow the virtual IPs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hamgr/config-internal.h"
#include "hamgr/config.h"

#define VIRTUAL_ROUTES_MAX 256
#define TABLE_MAIN 254
#define TABLE_DEFAULT 253
#define TABLE_LOCAL 255
/* What the kernel gives an IPv6 route without a metric (IP6_RT_PRIO_USER). */
#define IPV6_METRIC_DEFAULT 1024

static const char *const route_keys[] = { "to", "via", "src", "dev", "metric", "table", "type", NULL };

static const char *const route_type_names[_HAMGR_ROUTE_TYPE_MAX] = {
        [HAMGR_ROUTE_UNICAST] = "unicast",
        [HAMGR_ROUTE_BLACKHOLE] = "blackhole",
        [HAMGR_ROUTE_UNREACHABLE] = "unreachable",
        [HAMGR_ROUTE_PROHIBIT] = "prohibit",
};

const char *hamgr_route_type_to_string(enum hamgr_route_type t) {
        return ENUM_NAME(route_type_names, t);
}

static int route_type_from_string(const char *s) {
        for (unsigned i = 0; i < _HAMGR_ROUTE_TYPE_MAX; i++)
                if (streq(s, route_type_names[i]))
                        return (int) i;
        return -EINVAL;
}

static const char *family_name(int family) {
        return family == AF_INET6 ? "IPv6" : "IPv4";
}

/* P with every bit past the prefix length cleared. */
static struct ip_prefix prefix_network(const struct ip_prefix *p) {
        struct ip_prefix n = *p;
        size_t bits = ip_family_addr_len(p->address.family) * 8;

        for (size_t i = p->prefixlen; i < bits; i++)
                n.address.addr.bytes[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
        return n;
}

/* "10.0.0.0/8" into BUF. */
static const char *prefix_to_string(const struct ip_prefix *p, char *buf, size_t len) {
        char a[INET6_ADDRSTRLEN];

        snprintf(buf, len, "%s/%u", ip_address_to_string(&p->address, a, sizeof(a)), p->prefixlen);
        return buf;
}

/* An address KEY of the route's family; AF_UNSPEC left in *ret when absent or wrong. */
static void parse_route_address(struct loader *l, config_setting_t *e, const char *key, const struct ip_prefix *to,
                                struct ip_address *ret) {
        config_setting_t *s;
        struct ip_address a;
        char buf[INET6_ADDRSTRLEN + 4];
        const char *str;

        if (get_string(l, e, key, &str, &s) <= 0)
                return;
        if (ip_address_parse(str, &a) < 0) {
                error_at(l, line_of(s), "%s '%s' is not an IP address", key, str);
                return;
        }
        if (to->address.family && a.family != to->address.family) {
                error_at(l, line_of(s), "%s '%s' is %s but the route to %s is %s", key, str, family_name(a.family),
                         prefix_to_string(to, buf, sizeof(buf)), family_name(to->address.family));
                return;
        }
        *ret = a;
}

static void parse_table(struct loader *l, config_setting_t *e, uint32_t *ret) {
        config_setting_t *s = config_setting_get_member(e, "table");
        const char *str;
        uint32_t t;

        if (!s)
                return;
        if (config_setting_type(s) == CONFIG_TYPE_STRING) {
                str = config_setting_get_string(s);
                if (streq(str, "main"))
                        *ret = TABLE_MAIN;
                else if (streq(str, "default"))
                        *ret = TABLE_DEFAULT;
                else
                        error_at(l, line_of(s),
                                 "table '%s' must be a number or \"main\" or \"default\" "
                                 "(names from rt_tables are not read)", str);
                return;
        }
        if (get_uint(l, e, "table", 1, UINT32_MAX, &t) <= 0)
                return;
        if (t == TABLE_LOCAL) {
                error_at(l, line_of(s), "table 255 is the kernel's local table, which holds no moving routes");
                return;
        }
        *ret = t;
}

struct routes_walk {
        struct hamgr_vrrp_config *v;
        const char *what;
};

static int routes_count(struct loader *l, config_setting_t *list, int n, void *userdata) {
        if (n <= VIRTUAL_ROUTES_MAX)
                return 1;
        error_at(l, line_of(list), "virtual_routes has %d routes, at most %d are allowed", n, VIRTUAL_ROUTES_MAX);
        return 0;
}

static int parse_route(struct loader *l, config_setting_t *e, int idx, void *item, void *userdata) {
        const struct routes_walk *w = userdata;
        struct hamgr_virtual_route *rt = item;
        config_setting_t *s;
        struct ip_prefix p, net;
        char where[128], buf[INET6_ADDRSTRLEN + 4];
        const char *str;
        bool metric_set;
        int r;

        *rt = (struct hamgr_virtual_route) { .table = TABLE_MAIN, .line = line_of(e) };
        snprintf(where, sizeof(where), "in virtual route #%d of %s", idx + 1, w->what);
        check_keys(l, e, route_keys, where);

        r = get_string(l, e, "to", &str, &s);
        if (r == 0)
                error_at(l, line_of(e), "missing required setting 'to' %s", where);
        else if (r > 0) {
                if (ip_prefix_parse(str, &p) < 0)
                        error_at(l, line_of(s), "virtual route to '%s' is not a prefix (address/length)", str);
                else {
                        net = prefix_network(&p);
                        if (!ip_address_equal(&net.address, &p.address))
                                /* The kernel refuses it for IPv4 and silently masks it for IPv6. */
                                error_at(l, line_of(s), "virtual route to '%s' has host bits set: the network is %s",
                                         str, prefix_to_string(&net, buf, sizeof(buf)));
                        else
                                rt->to = p;
                }
        }

        if (get_string(l, e, "type", &str, &s) > 0) {
                r = route_type_from_string(str);
                if (r < 0)
                        error_at(l, line_of(s), "type '%s' must be \"unicast\", \"blackhole\", \"unreachable\" or \"prohibit\"",
                                 str);
                else
                        rt->type = (enum hamgr_route_type) r;
        }

        parse_route_address(l, e, "via", &rt->to, &rt->via);
        parse_route_address(l, e, "src", &rt->to, &rt->src);
        if (get_string(l, e, "dev", &str, &s) > 0) {
                if (!ifname_is_valid(str))
                        error_at(l, line_of(s), "dev '%s' is not a valid interface name (1..15 characters, no '/', ':' or spaces)",
                                 str);
                else if (strdup_to(str, &rt->dev) < 0)
                        return -ENOMEM;
        }
        if (rt->type != HAMGR_ROUTE_UNICAST) {
                /* These have no next hop: nothing to send to, nowhere to send it. */
                s = config_setting_get_member(e, "via") ?: config_setting_get_member(e, "dev");
                if (s)
                        error_at(l, line_of(s), "'%s' has no meaning for a route of type %s (it has no next hop)",
                                 config_setting_name(s), route_type_names[rt->type]);
                rt->via = (struct ip_address) {};
                free(rt->dev);
                rt->dev = NULL;
        }

        metric_set = get_uint(l, e, "metric", 0, UINT32_MAX, &rt->metric) > 0;
        if (!metric_set && rt->to.address.family == AF_INET6)
                rt->metric = IPV6_METRIC_DEFAULT;
        parse_table(l, e, &rt->table);
        return 0;
}

static const struct list_spec routes_spec = {
        .key = "virtual_routes",
        .not_list = "virtual_routes must be a list of routes: virtual_routes = ( { to = \"10.0.0.0/8\"; via = \"192.0.2.1\"; } );",
        .noun = "virtual route",
        .shape = "{ to = \"PREFIX\"; ... }",
        .count = routes_count,
        .parse = parse_route,
};

int parse_virtual_routes(struct loader *l, config_setting_t *inst, const char *what, struct hamgr_vrrp_config *v) {
        struct routes_walk w = { .v = v, .what = what };

        return PARSE_LIST(l, inst, &routes_spec, NULL, &w, v->virtual_routes, v->n_virtual_routes);
}

/* The kernel keeps one route per destination, metric and table (an
 * exclusive add of a second one fails): two such are one route. */
static bool same_slot(const struct hamgr_virtual_route *a, const struct hamgr_virtual_route *b) {
        return a->to.address.family && ip_address_equal(&a->to.address, &b->to.address) &&
               a->to.prefixlen == b->to.prefixlen && a->metric == b->metric && a->table == b->table;
}

void check_virtual_routes(struct loader *l, const struct hamgr_config *c) {
        char buf[INET6_ADDRSTRLEN + 4];

        for (size_t i = 0; i < c->n_vrrp; i++)
                for (size_t k = 0; k < c->vrrp[i].n_virtual_routes; k++) {
                        const struct hamgr_virtual_route *b = &c->vrrp[i].virtual_routes[k];
                        bool found = false;

                        for (size_t j = 0; j <= i && !found; j++) {
                                const struct hamgr_vrrp_config *a = &c->vrrp[j];
                                size_t n = j == i ? k : a->n_virtual_routes;

                                for (size_t x = 0; x < n && !found; x++) {
                                        if (!same_slot(&a->virtual_routes[x], b))
                                                continue;
                                        found = true;
                                        if (j == i)
                                                error_at(l, b->line,
                                                         "duplicate virtual route to %s (table %" PRIu32
                                                         ", metric %" PRIu32 ", first at line %d)",
                                                         prefix_to_string(&b->to, buf, sizeof(buf)), b->table,
                                                         b->metric, a->virtual_routes[x].line);
                                        else
                                                error_at(l, b->line,
                                                         "virtual route to %s (table %" PRIu32 ", metric %" PRIu32
                                                         ") is also in vrrp instance '%s' (line %d)",
                                                         prefix_to_string(&b->to, buf, sizeof(buf)), b->table,
                                                         b->metric, a->name ?: "?", a->virtual_routes[x].line);
                                }
                        }
                }
}

void free_virtual_routes(struct hamgr_vrrp_config *v) {
        for (size_t i = 0; i < v->n_virtual_routes; i++)
                free(v->virtual_routes[i].dev);
        free(v->virtual_routes);
        v->virtual_routes = NULL;
        v->n_virtual_routes = 0;
}

static bool str_equal(const char *a, const char *b) {
        return a == b || (a && b && streq(a, b));
}

static bool address_equal(const struct ip_address *a, const struct ip_address *b) {
        return a->family == b->family && (!a->family || ip_address_equal(a, b));
}

bool hamgr_virtual_route_equal(const struct hamgr_virtual_route *a, const struct hamgr_virtual_route *b) {
        return address_equal(&a->to.address, &b->to.address) && a->to.prefixlen == b->to.prefixlen &&
               address_equal(&a->via, &b->via) && address_equal(&a->src, &b->src) && str_equal(a->dev, b->dev) &&
               a->metric == b->metric && a->table == b->table && a->type == b->type;
}
