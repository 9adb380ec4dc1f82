/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/macro.h"
#include "daemon.h"
#include "instance-routes.h"
#include "json-util.h"
#include "link.h"
#include "log.h"
#include "strbuf.h"
#include "vrrp/route.h"

#define log_inst(inst, level, ...)                                                             \
        log_fields((level), 0, (inst)->config->name, (inst)->config->vrid,                    \
                   vrrp_state_to_string((inst)->fsm.state), NULL, __VA_ARGS__)
#define log_inst_errno(inst, level, err, ...)                                                  \
        log_fields((level), (err), (inst)->config->name, (inst)->config->vrid,                \
                   vrrp_state_to_string((inst)->fsm.state), NULL, __VA_ARGS__)

static const uint8_t kernel_type[_HAMGR_ROUTE_TYPE_MAX] = {
        [HAMGR_ROUTE_UNICAST] = RTN_UNICAST,
        [HAMGR_ROUTE_BLACKHOLE] = RTN_BLACKHOLE,
        [HAMGR_ROUTE_UNREACHABLE] = RTN_UNREACHABLE,
        [HAMGR_ROUTE_PROHIBIT] = RTN_PROHIBIT,
};

/* The device a unicast route leaves through; NULL for the other types. */
static const char *route_dev(const struct hamgr_instance *inst, const struct hamgr_virtual_route *c) {
        if (c->type != HAMGR_ROUTE_UNICAST)
                return NULL;
        return c->dev ?: inst->config->interface;
}

/* "10.0.0.0/8 via 10.77.0.1 dev eth0 table 100 metric 5", as ip-route(8) writes it. */
static const char *route_to_string(const struct hamgr_instance *inst, const struct hamgr_virtual_route *c, char *buf,
                                   size_t len) {
        char a[INET6_ADDRSTRLEN];
        const char *dev = route_dev(inst, c);
        size_t off = 0;

#define APPEND(...)                                                                     \
        do {                                                                            \
                if (off < len)                                                          \
                        off += (size_t) snprintf(buf + off, len - off, __VA_ARGS__);    \
        } while (0)
        if (c->type != HAMGR_ROUTE_UNICAST)
                APPEND("%s ", hamgr_route_type_to_string(c->type));
        APPEND("%s/%u", ip_address_to_string(&c->to.address, a, sizeof(a)), c->to.prefixlen);
        if (c->via.family)
                APPEND(" via %s", ip_address_to_string(&c->via, a, sizeof(a)));
        if (dev)
                APPEND(" dev %s", dev);
        if (c->src.family)
                APPEND(" src %s", ip_address_to_string(&c->src, a, sizeof(a)));
        if (c->table != RT_TABLE_MAIN)
                APPEND(" table %" PRIu32, c->table);
        APPEND(" metric %" PRIu32, c->metric);
#undef APPEND
        return buf;
}

/* C for the kernel. -ENODEV while its device does not exist. */
static int route_resolve(const struct hamgr_instance *inst, const struct hamgr_virtual_route *c,
                         struct vrrp_route *ret) {
        const char *dev = route_dev(inst, c);
        struct link_info li;
        int r;

        *ret = (struct vrrp_route) {
                .dst = c->to,
                .gateway = c->via,
                .src = c->src,
                .table = c->table,
                .metric = c->metric,
                .type = kernel_type[c->type],
        };
        if (!dev)
                return 0;
        if (!c->dev && inst->ifindex > 0) {
                ret->ifindex = inst->ifindex;
                return 0;
        }
        r = link_monitor_get(inst->daemon->links, dev, &li);
        if (r < 0)
                return r;
        ret->ifindex = li.ifindex;
        return 0;
}

/* Add route I of the config, recording the outcome in ST (may be NULL).
 * RETRY: a route that failed before; the same failure again is not logged. */
static int route_add(struct hamgr_instance *inst, size_t i, struct instance_route_state *st, bool retry) {
        const struct hamgr_virtual_route *c = &inst->config->virtual_routes[i];
        int prev = st ? st->error : 0;
        struct vrrp_route vr;
        char desc[256];
        int r;

        r = route_resolve(inst, c, &vr);
        if (r >= 0)
                r = vrrp_route_add(inst->daemon->nl, &vr);
        if (st) {
                st->installed = r >= 0;
                st->error = r < 0 ? r : 0;
        }
        if (retry && r < 0 && r == prev)
                return r;
        if (r == -EEXIST)
                log_inst(inst, LOG_ERR,
                         "cannot add virtual route %s: a different route with this destination, table and metric "
                         "is in place", route_to_string(inst, c, desc, sizeof(desc)));
        else if (r < 0)
                log_inst_errno(inst, LOG_ERR, r, "cannot add virtual route %s: %m",
                               route_to_string(inst, c, desc, sizeof(desc)));
        else if (retry)
                log_inst(inst, LOG_NOTICE, "added virtual route %s, which had failed",
                         route_to_string(inst, c, desc, sizeof(desc)));
        else if (r > 0)
                log_inst(inst, LOG_DEBUG, "virtual route %s was already in place",
                         route_to_string(inst, c, desc, sizeof(desc)));
        return r;
}

static void route_remove(struct hamgr_instance *inst, const struct hamgr_virtual_route *c,
                         struct instance_route_state *st, const char *why) {
        struct vrrp_route vr;
        char desc[256];
        int r;

        if (st)
                *st = (struct instance_route_state) {};
        r = route_resolve(inst, c, &vr);
        if (r == -ENODEV)
                return; /* the device took its routes with it */
        if (r >= 0)
                r = vrrp_route_remove(inst->daemon->nl, &vr);
        if (r < 0)
                log_inst_errno(inst, LOG_WARNING, r, "cannot remove virtual route %s: %m",
                               route_to_string(inst, c, desc, sizeof(desc)));
        else if (r > 0 && why)
                log_inst(inst, LOG_NOTICE, "removed virtual route %s %s",
                         route_to_string(inst, c, desc, sizeof(desc)), why);
}

static struct instance_route_state *state_of(struct hamgr_instance *inst, size_t i) {
        const struct hamgr_vrrp_config *c = inst->config;

        if (!inst->route_state && c->n_virtual_routes > 0)
                inst->route_state = calloc(c->n_virtual_routes, sizeof(*inst->route_state));
        return inst->route_state ? &inst->route_state[i] : NULL;
}

void instance_routes_install(struct hamgr_instance *inst) {
        for (size_t i = 0; i < inst->config->n_virtual_routes; i++)
                (void) route_add(inst, i, state_of(inst, i), false);
}

void instance_routes_retry(struct hamgr_instance *inst) {
        if (inst->fsm.state != VRRP_STATE_MASTER || !inst->route_state)
                return;
        for (size_t i = 0; i < inst->config->n_virtual_routes; i++)
                if (!inst->route_state[i].installed && inst->route_state[i].error < 0)
                        (void) route_add(inst, i, &inst->route_state[i], true);
}

void instance_routes_remove(struct hamgr_instance *inst) {
        for (size_t i = inst->config->n_virtual_routes; i > 0; i--)
                route_remove(inst, &inst->config->virtual_routes[i - 1], state_of(inst, i - 1), NULL);
}

void instance_routes_remove_stale(struct hamgr_instance *inst) {
        for (size_t i = inst->config->n_virtual_routes; i > 0; i--)
                route_remove(inst, &inst->config->virtual_routes[i - 1], NULL, "left by a previous run");
}

static ssize_t find_route(const struct hamgr_vrrp_config *c, const struct hamgr_virtual_route *r) {
        for (size_t i = 0; i < c->n_virtual_routes; i++)
                if (hamgr_virtual_route_equal(&c->virtual_routes[i], r))
                        return (ssize_t) i;
        return -1;
}

void instance_routes_reconfigure(struct hamgr_instance *inst, const struct hamgr_vrrp_config *old) {
        const struct hamgr_vrrp_config *config = inst->config;
        struct instance_route_state *state = NULL;
        bool master = inst->fsm.state == VRRP_STATE_MASTER;

        /* Gone first: a changed route takes the place of the old one. */
        for (size_t i = old->n_virtual_routes; i > 0; i--)
                if (find_route(config, &old->virtual_routes[i - 1]) < 0 && master)
                        route_remove(inst, &old->virtual_routes[i - 1], NULL, "(no longer configured)");

        if (config->n_virtual_routes > 0) {
                state = calloc(config->n_virtual_routes, sizeof(*state));
                if (!state)
                        log_inst_errno(inst, LOG_ERR, -ENOMEM, "cannot track the virtual routes: %m");
        }
        for (size_t j = 0; state && j < config->n_virtual_routes; j++) {
                ssize_t i = find_route(old, &config->virtual_routes[j]);

                if (i >= 0 && inst->route_state)
                        state[j] = inst->route_state[i];
        }
        free(inst->route_state);
        inst->route_state = state;

        /* New routes, and kept ones that failed before: a reload is the
         * way to retry one without a failover. */
        for (size_t j = 0; master && j < config->n_virtual_routes; j++)
                if (find_route(old, &config->virtual_routes[j]) < 0 || (state && !state[j].installed))
                        (void) route_add(inst, j, state ? &state[j] : NULL, false);
}

void instance_routes_free(struct hamgr_instance *inst) {
        free(inst->route_state);
        inst->route_state = NULL;
}

static void json_add_address(json_object *o, const char *key, const struct ip_address *a, bool *ok) {
        char s[INET6_ADDRSTRLEN];

        json_add_string(o, key, a->family ? ip_address_to_string(a, s, sizeof(s)) : NULL, ok);
}

int instance_routes_status_json(const struct hamgr_instance *inst, struct json_object **ret) {
        _cleanup_(json_object_putp) json_object *arr = json_object_new_array();
        const struct hamgr_vrrp_config *c = inst->config;
        char a[INET6_ADDRSTRLEN + 8];
        bool ok = arr != NULL;

        for (size_t i = 0; ok && i < c->n_virtual_routes; i++) {
                const struct hamgr_virtual_route *r = &c->virtual_routes[i];
                const struct instance_route_state *st = inst->route_state ? &inst->route_state[i] : NULL;
                json_object *o = json_object_new_object();
                size_t n;

                ip_address_to_string(&r->to.address, a, sizeof(a));
                n = strlen(a);
                snprintf(a + n, sizeof(a) - n, "/%u", r->to.prefixlen);
                json_add_string(o, "to", a, &ok);
                json_add_string(o, "type", hamgr_route_type_to_string(r->type), &ok);
                json_add_address(o, "via", &r->via, &ok);
                json_add_string(o, "dev", route_dev(inst, r), &ok);
                json_add_address(o, "src", &r->src, &ok);
                json_add_u64(o, "table", r->table, &ok);
                json_add_u64(o, "metric", r->metric, &ok);
                json_add_bool(o, "installed", st && st->installed, &ok);
                if (st && st->error == -EEXIST)
                        json_add_string(o, "error", "a different route holds its destination, table and metric", &ok);
                else if (st && st->error < 0)
                        json_add_string(o, "error", strerror(-st->error), &ok);
                else
                        json_add_null(o, "error", &ok);
                json_push(arr, o, &ok);
        }
        if (!ok)
                return -ENOMEM;
        *ret = TAKE_PTR(arr);
        return 0;
}
