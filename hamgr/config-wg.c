/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The WireGuard layer's sections of the config: checks (and the instances'
 * track_checks), wireguard, endpoints. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/macro.h"
#include "hamgr/config-internal.h"
#include "hamgr/config.h"

#define CANDIDATES_MAX 16
/* A DNS name (RFC 1035), the longest host an endpoint candidate can name. */
#define HOST_LEN_MAX 253

static const char *const track_check_keys[] = { "check", "weight", NULL };
static const char *const wireguard_keys[] = { "interface", "backend", "follow", "source_address", NULL };
static const char *const endpoint_keys[] = {
        "interface", "peer", "candidates", "stale_after_s", "prefer_first", "backend", NULL,
};

/* A check's keys: those of every type, then those that only some types take. */
static const char *const check_common_keys[] = { "name", "type", "interval_ms", "timeout_ms", "rise", "fall", NULL };
static const char *const check_specific_keys[] = { "interface", "max_handshake_age_s", "address", "command", NULL };
static const char *const check_wireguard_keys[] = { "interface", "max_handshake_age_s", NULL };
static const char *const check_link_keys[] = { "interface", NULL };
static const char *const check_address_keys[] = { "address", NULL };
static const char *const check_exec_keys[] = { "command", NULL };
static const char *const *const check_type_keys[_HEALTH_CHECK_TYPE_MAX] = {
        [HEALTH_CHECK_WIREGUARD] = check_wireguard_keys,
        [HEALTH_CHECK_LINK] = check_link_keys,
        [HEALTH_CHECK_ICMP] = check_address_keys,
        [HEALTH_CHECK_TCP] = check_address_keys,
        [HEALTH_CHECK_EXEC] = check_exec_keys,
};

/*
 * Split "host:port" or "[host]:port", port 1..65535 in decimal. HOST gets
 * the host without brackets and *ret_bracketed which form it was. A colon
 * in an unbracketed host is refused: "2001:db8::1:443" has two readings.
 */
static int split_host_port(const char *s, char host[static HOST_LEN_MAX + 1], bool *ret_bracketed,
                           uint16_t *ret_port) {
        bool bracketed = s[0] == '[';
        const char *end, *port;
        unsigned long v;
        size_t n;

        if (bracketed) {
                s++;
                end = strchr(s, ']');
                if (!end || end[1] != ':')
                        return -EINVAL;
                port = end + 2;
        } else {
                end = strrchr(s, ':');
                if (!end)
                        return -EINVAL;
                port = end + 1;
        }
        n = end - s;
        if (n == 0 || n > HOST_LEN_MAX || (!bracketed && memchr(s, ':', n)))
                return -EINVAL;
        /* strtoul() alone would take signs, spaces and "0x". */
        if (port[0] == '\0' || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
                return -EINVAL;
        v = strtoul(port, NULL, 10);
        if (v < 1 || v > 65535)
                return -EINVAL;

        memcpy(host, s, n);
        host[n] = '\0';
        *ret_bracketed = bracketed;
        *ret_port = (uint16_t) v;
        return 0;
}

/* Letters, digits, '.', '-', '_': names and IPv4 literals, nothing a
 * resolver would have to guess about. */
static bool hostname_is_valid(const char *s) {
        size_t n = strlen(s);

        return n >= 1 && n <= HOST_LEN_MAX && s[0] != '-' && s[0] != '.' &&
               strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_") == n;
}

/* Unknown keys, and keys that exist but not for this TYPE (< 0: unknown type, not checked). */
static void check_check_keys(struct loader *l, const config_setting_t *grp, int type, const char *where) {
        int n = config_setting_length(grp);

        for (int i = 0; i < n; i++) {
                const config_setting_t *s = config_setting_get_elem(grp, i);
                const char *key = config_setting_name(s);

                if (!key || key_is_known(key, check_common_keys))
                        continue;
                if (!key_is_known(key, check_specific_keys))
                        error_at(l, line_of(s), "unknown setting '%s' %s", key, where);
                else if (type >= 0 && !key_is_known(key, check_type_keys[type]))
                        error_at(l, line_of(s), "setting '%s' does not apply to a check of type %s", key,
                                 health_check_type_to_string(type));
        }
}

static int parse_check_address(struct loader *l, config_setting_t *grp, const char *where, struct hamgr_check_config *k) {
        char host[HOST_LEN_MAX + 1];
        config_setting_t *s;
        struct ip_address a;
        const char *str;
        bool bracketed;
        uint16_t port;
        int r;

        r = get_string(l, grp, "address", &str, &s);
        if (r == 0)
                error_at(l, line_of(grp), "missing required setting 'address' %s", where);
        if (r <= 0)
                return 0;

        if (k->type == HEALTH_CHECK_ICMP) {
                if (ip_address_parse(str, &a) < 0) {
                        error_at(l, line_of(s), "address '%s' is not an IP address", str);
                        return 0;
                }
                k->target = a;
                return 0;
        }
        if (split_host_port(str, host, &bracketed, &port) < 0 || ip_address_parse(host, &a) < 0 ||
            a.family != (bracketed ? AF_INET6 : AF_INET)) {
                error_at(l, line_of(s), "address '%s' must be IPv4:port or [IPv6]:port with port 1..65535", str);
                return 0;
        }
        k->target = a;
        k->port = port;
        return 0;
}

/* A list_spec's parse. The check is not yet among C's, so it does not find
 * itself as a duplicate. */
static int parse_check(struct loader *l, config_setting_t *grp, int idx, void *item, void *userdata) {
        const struct hamgr_config *c = userdata;
        struct hamgr_check_config *k = item;
        config_setting_t *s;
        const char *str;
        char where[64];
        uint32_t timeout;
        bool interval_ok;
        int type = -1, r;

        *k = (struct hamgr_check_config) {
                .interval_ms = 1000,
                .rise = 2,
                .fall = 3,
                .max_handshake_age_s = 180,
                .line = line_of(grp),
        };
        snprintf(where, sizeof(where), "in check #%d", idx + 1);

        r = get_string(l, grp, "name", &str, &s);
        if (r == 0)
                error_at(l, line_of(grp), "missing required setting 'name' %s", where);
        else if (r > 0) {
                const struct hamgr_check_config *other = hamgr_config_find_check(c, str);

                if (!name_is_valid(str))
                        error_at(l, line_of(s),
                                 "check name '%s' is invalid: use 1 to %d characters from A-Z a-z 0-9 _ . -",
                                 str, NAME_LEN_MAX);
                else {
                        if (other)
                                error_at(l, line_of(s), "duplicate check name '%s' (first at line %d)", str,
                                         other->line);
                        else if (strdup_to(str, &k->name) < 0)
                                return -ENOMEM;
                        snprintf(where, sizeof(where), "in check '%s'", str);
                }
        }

        r = get_string(l, grp, "type", &str, &s);
        if (r == 0)
                error_at(l, line_of(grp), "missing required setting 'type' %s", where);
        else if (r > 0) {
                type = health_check_type_from_string(str);
                if (type < 0)
                        error_at(l, line_of(s), "check type '%s' must be one of wireguard, link, icmp, tcp, exec",
                                 str);
                else
                        k->type = type;
        }
        check_check_keys(l, grp, type, where);

        interval_ok = get_uint(l, grp, "interval_ms", 10, 3600000, &k->interval_ms) >= 0;
        r = get_uint(l, grp, "timeout_ms", 10, 3600000, &timeout);
        if (r == 0)
                k->timeout_ms = k->interval_ms;
        else if (r > 0) {
                /* A probe still running when the next is due would overlap it. */
                if (interval_ok && timeout > k->interval_ms)
                        error_at(l, line_of(config_setting_get_member(grp, "timeout_ms")),
                                 "timeout_ms %" PRIu32 " must not exceed interval_ms %" PRIu32, timeout,
                                 k->interval_ms);
                k->timeout_ms = timeout;
        }
        (void) get_uint(l, grp, "rise", 1, 100, &k->rise);
        (void) get_uint(l, grp, "fall", 1, 100, &k->fall);

        /* Without a type nothing tells which of the others are required. */
        if (type < 0)
                return 0;
        if (type == HEALTH_CHECK_WIREGUARD || type == HEALTH_CHECK_LINK) {
                r = parse_ifname(l, grp, where, &k->interface);
                if (r < 0)
                        return r;
        }
        if (type == HEALTH_CHECK_WIREGUARD)
                (void) get_uint(l, grp, "max_handshake_age_s", 1, 86400, &k->max_handshake_age_s);
        if (type == HEALTH_CHECK_ICMP || type == HEALTH_CHECK_TCP) {
                r = parse_check_address(l, grp, where, k);
                if (r < 0)
                        return r;
        }
        if (type == HEALTH_CHECK_EXEC) {
                r = get_string(l, grp, "command", &str, &s);
                if (r == 0)
                        error_at(l, line_of(grp), "missing required setting 'command' %s", where);
                else if (r > 0) {
                        if (str[0] != '/')
                                error_at(l, line_of(s), "command '%s' must be an absolute path", str);
                        else if (strpbrk(str, " \t"))
                                error_at(l, line_of(s),
                                         "command '%s' has arguments: hamgr runs a path, without a shell; put the "
                                         "command line in a script and give its path", str);
                        else if (strdup_to(str, &k->command) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

static const struct list_spec checks_spec = {
        .key = "checks",
        .not_list = "checks must be a list of checks: checks = ( { ... } );",
        .noun = "check",
        .parse = parse_check,
};

int parse_checks(struct loader *l, config_setting_t *root, struct hamgr_config *c) {
        return PARSE_LIST(l, root, &checks_spec, NULL, c, c->checks, c->n_checks);
}

/* parse_track_checks()'s walk of V's list. */
struct track_walk {
        const struct hamgr_config *c;
        const struct hamgr_vrrp_config *v;
        const char *where;
};

static int parse_track_check(struct loader *l, config_setting_t *e, int idx, void *item, void *userdata) {
        const struct track_walk *w = userdata;
        const struct hamgr_track_check *dup = NULL;
        struct hamgr_track_check *t = item;
        config_setting_t *s;
        const char *name;
        int weight = 0, r, rw;

        check_keys(l, e, track_check_keys, w->where);
        rw = get_int(l, e, "weight", -254, 254, &weight);
        r = get_string(l, e, "check", &name, &s);
        if (r == 0)
                error_at(l, line_of(e), "missing required setting 'check' %s", w->where);
        if (r <= 0)
                return LIST_DROP;
        if (!hamgr_config_find_check(w->c, name)) {
                error_at(l, line_of(s), "unknown check '%s'", name);
                return LIST_DROP;
        }
        for (size_t j = 0; j < w->v->n_track_checks && !dup; j++)
                if (streq(w->v->track_checks[j].check, name))
                        dup = &w->v->track_checks[j];
        if (dup) {
                error_at(l, line_of(s), "duplicate track check '%s' (first at line %d)", name, dup->line);
                return LIST_DROP;
        }
        if (rw < 0)
                return LIST_DROP;
        t->weight = weight;
        t->line = line_of(e);
        return strdup_to(name, &t->check);
}

static const struct list_spec track_checks_spec = {
        .key = "track_checks",
        .not_list = "track_checks must be a list of groups: track_checks = ( { check = \"name\"; weight = 0; } );",
        .noun = "track_checks",
        .shape = "{ check = \"name\"; weight = 0; }",
        .parse = parse_track_check,
};

/* Checks are parsed before instances, so references resolve whatever the order in the file. */
int parse_track_checks(struct loader *l, config_setting_t *inst, const char *what, const struct hamgr_config *c,
                       struct hamgr_vrrp_config *v) {
        char where[128];
        struct track_walk w = { .c = c, .v = v, .where = where };

        snprintf(where, sizeof(where), "in track_checks of %s", what);
        return PARSE_LIST(l, inst, &track_checks_spec, NULL, &w, v->track_checks, v->n_track_checks);
}

static const struct hamgr_group_config *group_of_instance(const struct hamgr_config *c, const char *name) {
        for (size_t i = 0; i < c->n_groups; i++)
                for (size_t j = 0; j < c->groups[i].n_instances; j++)
                        if (streq(c->groups[i].instances[j], name))
                                return &c->groups[i];
        return NULL;
}

static bool instance_has_vip(const struct hamgr_vrrp_config *v, const struct ip_address *a) {
        for (size_t i = 0; v && i < v->n_virtual_ips; i++)
                if (ip_address_equal(&v->virtual_ips[i].address, a))
                        return true;
        return false;
}

/* FOLLOW resolved: the one instance, or the group whose members move together. */
static bool follow_has_vip(const struct hamgr_config *c, const struct hamgr_vrrp_config *inst,
                           const struct hamgr_group_config *grp, const struct ip_address *a) {
        if (inst)
                return instance_has_vip(inst, a);
        for (size_t i = 0; i < grp->n_instances; i++)
                if (instance_has_vip(hamgr_config_find_vrrp(c, grp->instances[i]), a))
                        return true;
        return false;
}

/* A list_spec's parse. */
static int parse_wireguard_entry(struct loader *l, config_setting_t *e, int idx, void *item, void *userdata) {
        const struct hamgr_config *c = userdata;
        struct hamgr_wireguard_config *w = item;
        const struct hamgr_vrrp_config *inst = NULL;
        const struct hamgr_group_config *grp = NULL;
        config_setting_t *s;
        const char *str;
        char where[64];
        int r;

        *w = (struct hamgr_wireguard_config) {
                .backend = WG_BACKEND_AUTO,
                .source_address.family = AF_UNSPEC,
                .line = line_of(e),
        };
        snprintf(where, sizeof(where), "in wireguard entry #%d", idx + 1);

        r = parse_ifname(l, e, where, &w->interface);
        if (r < 0)
                return r;
        if (w->interface) {
                for (size_t i = 0; i < c->n_wireguard; i++)
                        if (c->wireguard[i].interface && streq(c->wireguard[i].interface, w->interface)) {
                                /* One owner per device, or two would fight over its peers. */
                                error_at(l, line_of(config_setting_get_member(e, "interface")),
                                         "duplicate wireguard interface '%s' (first at line %d)", w->interface,
                                         c->wireguard[i].line);
                                break;
                        }
                snprintf(where, sizeof(where), "in wireguard entry '%s'", w->interface);
        }
        check_keys(l, e, wireguard_keys, where);

        if (get_string(l, e, "backend", &str, &s) > 0) {
                r = wg_backend_from_string(str);
                if (r < 0)
                        error_at(l, line_of(s), "backend '%s' must be \"auto\", \"kernel\", \"uapi\" or \"boringtun\"", str);
                else
                        w->backend = r;
        }

        r = get_string(l, e, "follow", &str, &s);
        if (r == 0)
                error_at(l, line_of(e), "missing required setting 'follow' %s", where);
        else if (r > 0) {
                const struct hamgr_group_config *owner;

                inst = hamgr_config_find_vrrp(c, str);
                grp = hamgr_config_find_group(c, str);
                owner = inst ? group_of_instance(c, str) : NULL;
                if (inst && grp)
                        error_at(l, line_of(s), "follow '%s' names both a vrrp instance and a group: rename one",
                                 str);
                else if (!inst && !grp)
                        error_at(l, line_of(s), "follow '%s' is not a vrrp instance or group", str);
                /* The group moves as one; following a member alone would
                 * miss the moments the others drag it along. */
                else if (owner)
                        error_at(l, line_of(s), "instance '%s' is in group '%s': follow the group", str,
                                 owner->name ?: "?");
                else if (strdup_to(str, &w->follow) < 0)
                        return -ENOMEM;
                if (!w->follow) {
                        /* Nothing to compare source_address with. */
                        inst = NULL;
                        grp = NULL;
                }
        }

        if (get_string(l, e, "source_address", &str, &s) > 0) {
                struct ip_address a;
                char buf[INET6_ADDRSTRLEN];

                if (ip_address_parse(str, &a) < 0)
                        error_at(l, line_of(s), "source_address '%s' is not an IP address", str);
                /* Packets from the VIP are what lets the peers' roaming follow the failover. */
                else if ((inst || grp) && !follow_has_vip(c, inst, grp, &a))
                        error_at(l, line_of(s), "source_address %s is not a virtual IP of '%s'",
                                 ip_address_to_string(&a, buf, sizeof(buf)), w->follow);
                else
                        w->source_address = a;
        }
        return 0;
}

static const struct list_spec wireguard_spec = {
        .key = "wireguard",
        .not_list = "wireguard must be a list of interfaces: wireguard = ( { ... } );",
        .noun = "wireguard entry",
        .parse = parse_wireguard_entry,
};

int parse_wireguard(struct loader *l, config_setting_t *root, struct hamgr_config *c) {
        return PARSE_LIST(l, root, &wireguard_spec, NULL, c, c->wireguard, c->n_wireguard);
}

/* Names stay names: they are resolved at each rotation, so a gateway whose
 * address changes is found again without a reload. */
static bool candidate_is_valid(const char *s) {
        char host[HOST_LEN_MAX + 1];
        struct ip_address a;
        bool bracketed;
        uint16_t port;

        if (split_host_port(s, host, &bracketed, &port) < 0)
                return false;
        if (bracketed)
                return ip_address_parse(host, &a) >= 0 && a.family == AF_INET6;
        return hostname_is_valid(host);
}

static int candidates_count(struct loader *l, config_setting_t *list, int n, void *userdata) {
        if (n >= 1 && n <= CANDIDATES_MAX)
                return 1;
        error_at(l, line_of(list), "candidates has %d entries, allowed 1..%d", n, CANDIDATES_MAX);
        return 0;
}

static int parse_candidate(struct loader *l, config_setting_t *e, int idx, void *item, void *userdata) {
        const struct hamgr_endpoint_config *ep = userdata;
        const char *str = config_setting_get_string(e);

        if (!candidate_is_valid(str)) {
                error_at(l, line_of(e), "candidate '%s' must be host:port or [IPv6]:port with port 1..65535", str);
                return LIST_DROP;
        }
        for (size_t j = 0; j < ep->n_candidates; j++)
                if (streq(ep->candidates[j], str)) {
                        error_at(l, line_of(e), "duplicate candidate '%s'", str);
                        return LIST_DROP;
                }
        return strdup_to(str, item);
}

static const struct list_spec candidates_spec = {
        .key = "candidates",
        .required = true,
        .count = candidates_count,
        .parse = parse_candidate,
};

/* *ret_peer_ok: the peer key was valid (an all-zero key is valid text, so the key alone cannot tell). */
static int parse_endpoint(struct loader *l, config_setting_t *e, int idx, struct hamgr_endpoint_config *ep,
                          bool *ret_peer_ok) {
        config_setting_t *s;
        const char *str;
        char where[64];
        int r;

        *ep = (struct hamgr_endpoint_config) {
                .stale_after_s = 10,
                .prefer_first = false,
                .backend = WG_BACKEND_AUTO,
                .line = line_of(e),
        };
        *ret_peer_ok = false;
        snprintf(where, sizeof(where), "in endpoint #%d", idx + 1);
        check_keys(l, e, endpoint_keys, where);

        r = parse_ifname(l, e, where, &ep->interface);
        if (r < 0)
                return r;

        r = get_string(l, e, "peer", &str, &s);
        if (r == 0)
                error_at(l, line_of(e), "missing required setting 'peer' %s", where);
        else if (r > 0) {
                if (wg_key_from_base64(ep->peer, str) < 0)
                        error_at(l, line_of(s), "peer is not a base64 WireGuard key (44 characters ending in '=')");
                else
                        *ret_peer_ok = true;
        }

        r = PARSE_LIST(l, e, &candidates_spec, where, ep, ep->candidates, ep->n_candidates);
        if (r < 0)
                return r;
        (void) get_uint(l, e, "stale_after_s", 5, 3600, &ep->stale_after_s);
        (void) get_bool(l, e, "prefer_first", &ep->prefer_first);
        if (get_string(l, e, "backend", &str, &s) > 0) {
                r = wg_backend_from_string(str);
                if (r < 0)
                        error_at(l, line_of(s), "backend '%s' must be \"auto\", \"kernel\", \"uapi\" or \"boringtun\"", str);
                else
                        ep->backend = r;
        }
        return 0;
}

/* parse_endpoints()'s walk: the config so far, and whether each endpoint's peer key was valid. */
struct endpoints_walk {
        const struct hamgr_config *c;
        bool *peer_ok;
};

static int endpoints_count(struct loader *l, config_setting_t *list, int n, void *userdata) {
        struct endpoints_walk *w = userdata;

        if (n == 0)
                return 0;
        w->peer_ok = calloc(n, sizeof(*w->peer_ok));
        return w->peer_ok ? 1 : -ENOMEM;
}

static int parse_endpoint_entry(struct loader *l, config_setting_t *e, int idx, void *item, void *userdata) {
        const struct endpoints_walk *w = userdata;
        const struct hamgr_config *c = w->c;
        struct hamgr_endpoint_config *ep = item;
        bool ok;
        int r;

        r = parse_endpoint(l, e, idx, ep, &ok);
        if (r < 0)
                return r;
        w->peer_ok[c->n_endpoints] = ok;
        if (!ok || !ep->interface)
                return 0;
        /* Two rotations of one peer would undo each other. */
        for (size_t j = 0; j < c->n_endpoints; j++) {
                const struct hamgr_endpoint_config *o = &c->endpoints[j];

                if (w->peer_ok[j] && o->interface && streq(o->interface, ep->interface) &&
                    wg_key_equal(o->peer, ep->peer)) {
                        error_at(l, line_of(config_setting_get_member(e, "peer")),
                                 "duplicate endpoint: this peer on interface '%s' is already at line %d",
                                 ep->interface, o->line);
                        break;
                }
        }
        return 0;
}

static const struct list_spec endpoints_spec = {
        .key = "endpoints",
        .not_list = "endpoints must be a list of peers: endpoints = ( { ... } );",
        .noun = "endpoint",
        .count = endpoints_count,
        .parse = parse_endpoint_entry,
};

int parse_endpoints(struct loader *l, config_setting_t *root, struct hamgr_config *c) {
        struct endpoints_walk w = { .c = c };
        int r;

        r = PARSE_LIST(l, root, &endpoints_spec, NULL, &w, c->endpoints, c->n_endpoints);
        free(w.peer_ok);
        return r;
}
