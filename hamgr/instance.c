/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One VRRP instance on the event loop: the glue between the pure fsm, its
 * socket, its timers, the interface's addresses and the notifier.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/macro.h"
#include "daemon.h"
#include "health.h"
#include "instance-routes.h"
#include "link.h"
#include "log.h"
#include "notify.h"
#include "route.h"
#include "vrrp/address.h"
#include "vrrp/announce.h"
#include "vrrp/packet.h"
#include "vrrp/socket.h"
#include "wireguard.h"

static const char *const instance_fault_names[_INSTANCE_FAULT_MAX] = {
        [INSTANCE_FAULT_IFACE_MISSING] = "interface-missing",
        [INSTANCE_FAULT_IFACE_DOWN] = "interface-down",
        [INSTANCE_FAULT_NO_ADDRESS] = "no-address",
        [INSTANCE_FAULT_TRACKED_DOWN] = "tracked-interface-down",
        [INSTANCE_FAULT_SOCKET] = "socket",
        [INSTANCE_FAULT_CHECK] = "check-failing",
};

const char *instance_fault_to_string(enum instance_fault f) {
        return ENUM_NAME(instance_fault_names, f);
}

static const char *const instance_drop_names[_INSTANCE_DROP_MAX] = {
        [INSTANCE_DROP_VERSION] = "version",
        [INSTANCE_DROP_INTERVAL] = "interval",
        [INSTANCE_DROP_SOURCE] = "source",
        [INSTANCE_DROP_TTL] = "ttl",
        [INSTANCE_DROP_CHECKSUM] = "checksum",
        [INSTANCE_DROP_ADDRESS_CONFLICT] = "address_conflict",
        [INSTANCE_DROP_AUTH] = "auth",
};

const char *instance_drop_to_string(enum instance_drop d) {
        return ENUM_NAME(instance_drop_names, d);
}

/* One line per cause a minute: a misconfigured peer sends every interval. */
#define DROP_LOG_INTERVAL_USEC (60 * USEC_PER_SEC)

static void instance_arm_timer(struct hamgr_instance *inst);
static void instance_stop_announce(struct hamgr_instance *inst);

void instance_fsm_config(const struct hamgr_vrrp_config *c, const struct ip_address *primary,
                         struct vrrp_fsm_config *ret) {
        *ret = (struct vrrp_fsm_config) {
                .version = c->version,
                .priority = c->priority,
                .advert_interval_cs = (uint16_t) (c->advert_interval_ms / 10),
                .preempt = c->preempt,
                .preempt_delay_usec = (uint64_t) c->preempt_delay_ms * USEC_PER_MSEC,
        };
        if (primary)
                ret->primary = *primary;
}

#define log_inst(inst, level, ...)                                                             \
        log_fields((level), 0, (inst)->config->name, (inst)->config->vrid,                    \
                   vrrp_state_to_string((inst)->fsm.state), NULL, __VA_ARGS__)
#define log_inst_errno(inst, level, err, ...)                                                  \
        log_fields((level), (err), (inst)->config->name, (inst)->config->vrid,                \
                   vrrp_state_to_string((inst)->fsm.state), NULL, __VA_ARGS__)

int instance_new(struct hamgr_daemon *d, struct hamgr_vrrp_config *config, struct hamgr_instance **ret) {
        struct hamgr_instance *inst;
        struct vrrp_fsm_config fc;

        inst = calloc(1, sizeof(*inst));
        if (!inst)
                return -ENOMEM;
        inst->daemon = d;
        inst->config = config;
        inst->fd = -1;
        /* Reload keeps an instance only with the same virtual IPs, so this
         * stays the right size. */
        inst->vips = calloc(config->n_virtual_ips ? config->n_virtual_ips : 1, sizeof(*inst->vips));
        if (!inst->vips) {
                free(inst);
                return -ENOMEM;
        }
        instance_fsm_config(config, NULL, &fc);
        vrrp_fsm_init(&inst->fsm, &fc);
        inst->last_from = VRRP_STATE_INIT;
        for (size_t i = 0; i < _INSTANCE_DROP_MAX; i++)
                inst->drop_log[i].interval_usec = DROP_LOG_INTERVAL_USEC;
        if (config->auth_pass)
                log_inst(inst, LOG_WARNING, "auth_pass: the password is sent in clear text in every "
                         "advertisement; it keeps misconfigured routers apart, it is not security");
        *ret = inst;
        return 0;
}

static void instance_close_socket(struct hamgr_instance *inst) {
        inst->io = sd_event_source_disable_unref(inst->io);
        if (inst->fd >= 0)
                close(inst->fd);
        inst->fd = -1;
}

struct hamgr_instance *instance_free(struct hamgr_instance *inst) {
        if (!inst)
                return NULL;
        instance_close_socket(inst);
        sd_event_source_disable_unref(inst->timer);
        sd_event_source_disable_unref(inst->announce_timer);
        instance_routes_free(inst);
        free(inst->vips);
        free(inst);
        return NULL;
}

/* ---- addresses -------------------------------------------------------- */

static bool instance_is_owner(const struct hamgr_instance *inst) {
        return inst->config->priority == 255;
}

static void instance_vips(struct hamgr_instance *inst, bool add) {
        const struct hamgr_vrrp_config *c = inst->config;
        char buf[INET6_ADDRSTRLEN];
        int r;

        if (inst->ifindex <= 0)
                return;
        for (size_t i = 0; i < c->n_virtual_ips; i++) {
                const struct ip_prefix *p = &c->virtual_ips[i];
                struct instance_vip *v = &inst->vips[i];

                if (add && instance_is_owner(inst) && !v->added &&
                    vrrp_address_present(inst->daemon->nl, inst->ifindex, &p->address) > 0) {
                        if (!v->owned)
                                log_inst(inst, LOG_INFO, "virtual IP %s is an address of %s: owned, never removed",
                                         ip_address_to_string(&p->address, buf, sizeof(buf)), c->interface);
                        v->owned = true;
                        continue;
                }
                if (!add && v->owned)
                        continue; /* the owner's own address stays, in every state */
                r = add ? vrrp_address_add(inst->daemon->nl, inst->ifindex, p)
                        : vrrp_address_remove(inst->daemon->nl, inst->ifindex, p);
                if (r < 0)
                        log_inst_errno(inst, LOG_ERR, r, "cannot %s virtual IP %s/%u on %s: %m",
                                       add ? "add" : "remove",
                                       ip_address_to_string(&p->address, buf, sizeof(buf)), p->prefixlen,
                                       c->interface);
                else {
                        v->added = add;
                        v->owned = false;
                }
        }
}

void instance_remove_stale_vips(struct hamgr_instance *inst) {
        const struct hamgr_vrrp_config *c = inst->config;
        struct link_info li;
        char buf[INET6_ADDRSTRLEN];

        /* Routes first: one may lean on a stale VIP (gateway, source). */
        instance_routes_remove_stale(inst);
        if (link_monitor_get(inst->daemon->links, c->interface, &li) < 0)
                return;
        for (size_t i = 0; i < c->n_virtual_ips; i++) {
                const struct ip_prefix *p = &c->virtual_ips[i];

                if (vrrp_address_present(inst->daemon->nl, li.ifindex, &p->address) <= 0)
                        continue;
                if (instance_is_owner(inst)) {
                        inst->vips[i].owned = true;
                        log_inst(inst, LOG_INFO, "virtual IP %s is an address of %s: owned, never removed",
                                 ip_address_to_string(&p->address, buf, sizeof(buf)), c->interface);
                        continue;
                }
                /* A run killed while master left it as the source of the
                 * link's routes (WireGuard source_address). */
                if (route_src_disown(inst->daemon->nl, li.ifindex, &p->address) > 0)
                        log_inst(inst, LOG_NOTICE, "routes on %s had virtual IP %s as source, left by a previous run; "
                                 "their source is the interface's own address again", c->interface,
                                 ip_address_to_string(&p->address, buf, sizeof(buf)));
                if (vrrp_address_remove(inst->daemon->nl, li.ifindex, p) >= 0)
                        log_inst(inst, LOG_NOTICE, "removed virtual IP %s left on %s by a previous run",
                                 ip_address_to_string(&p->address, buf, sizeof(buf)), c->interface);
        }
}

/* ---- advertisements ----------------------------------------------------- */

static void instance_send_advert(struct hamgr_instance *inst, uint8_t priority) {
        const struct hamgr_vrrp_config *c = inst->config;
        struct vrrp_advert adv = {
                .version = c->version,
                .vrid = c->vrid,
                .priority = priority,
                .max_adver_int_cs = (uint16_t) (c->advert_interval_ms / 10),
                .family = c->family,
        };
        struct vrrp_ip_meta meta = { .family = c->family, .ttl = VRRP_TTL };
        uint8_t buf[VRRP_MAX_MESSAGE_LEN];
        size_t n_dst = c->n_unicast_peers > 0 ? c->n_unicast_peers : 1;
        int len, r;

        if (inst->fd < 0 || !inst->have_primary)
                return;
        if (c->auth_pass) {
                adv.auth_type = VRRP_AUTH_SIMPLE;
                /* Zero-padded, as RFC 2338 5.3.10 and keepalived do. */
                memcpy(adv.auth_data, c->auth_pass, strnlen(c->auth_pass, VRRP_V2_AUTH_LEN));
        }
        for (size_t i = 0; i < c->n_virtual_ips && adv.n_addrs < VRRP_MAX_ADDRS; i++)
                if (c->virtual_ips[i].address.family == c->family)
                        adv.addrs[adv.n_addrs++] = c->virtual_ips[i].address.addr;
        meta.src = inst->primary;

        for (size_t i = 0; i < n_dst; i++) {
                meta.dst = c->n_unicast_peers > 0 ? c->unicast_peers[i] : vrrp_multicast_group(c->family);
                len = vrrp_advert_build(&adv, &meta, c->checksum, buf, sizeof(buf));
                if (len < 0) {
                        log_inst_errno(inst, LOG_ERR, len, "cannot build advertisement: %m");
                        return;
                }
                r = vrrp_socket_send(inst->fd, inst->ifindex, &meta.src, &meta.dst, buf, (size_t) len);
                if (r < 0) {
                        inst->counters.send_errors++;
                        /* Once per burst of errors is enough: the link may be flapping. */
                        if (inst->counters.send_errors == 1 || inst->counters.send_errors % 100 == 0)
                                log_inst_errno(inst, LOG_WARNING, r, "cannot send advertisement: %m");
                } else
                        inst->counters.adverts_sent++;
        }
}

static bool peer_allowed(const struct hamgr_vrrp_config *c, const struct ip_address *src) {
        if (c->n_unicast_peers == 0)
                return true;
        for (size_t i = 0; i < c->n_unicast_peers; i++)
                if (ip_address_equal(&c->unicast_peers[i], src))
                        return true;
        return false;
}

static bool auth_matches(const struct hamgr_vrrp_config *c, const struct vrrp_advert *adv) {
        uint8_t want[VRRP_V2_AUTH_LEN] = {};

        if (!c->auth_pass)
                return adv->auth_type == VRRP_AUTH_NONE;
        if (adv->auth_type != VRRP_AUTH_SIMPLE)
                return false;
        memcpy(want, c->auth_pass, strnlen(c->auth_pass, VRRP_V2_AUTH_LEN));
        return memcmp(want, adv->auth_data, sizeof(want)) == 0;
}

/* Count a dropped advertisement of cause D and say why at WARNING, at
 * most once a minute per cause, with the number held back since. */
_printf_(4, 5) static void instance_drop(struct hamgr_instance *inst, enum instance_drop d,
                                         const struct ip_address *src, const char *fmt, ...) {
        char addr[INET6_ADDRSTRLEN], peer_field[64], cause_field[64], detail[160], more[64] = "";
        const char *extra[3] = { peer_field, cause_field, NULL };
        va_list ap;

        inst->counters.drops[d]++;
        if (!ratelimit_log(&inst->drop_log[d], daemon_now(inst->daemon), more, sizeof(more)))
                return;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        ip_address_to_string(src, addr, sizeof(addr));
        snprintf(peer_field, sizeof(peer_field), "PEER=%s", addr);
        snprintf(cause_field, sizeof(cause_field), "DROP_CAUSE=%s", instance_drop_to_string(d));
        log_fields(LOG_WARNING, 0, inst->config->name, inst->config->vrid, vrrp_state_to_string(inst->fsm.state),
                   extra, "dropped advertisement from %s (%s): %s%s", addr, instance_drop_to_string(d), detail,
                   more);
}

/* The codec's failures that point at a misconfigured or misplaced peer. */
static int drop_of_parse_error(enum vrrp_parse_error e) {
        switch (e) {
        case VRRP_PARSE_VERSION:
        case VRRP_PARSE_V2_OVER_IPV6:
                return INSTANCE_DROP_VERSION;
        case VRRP_PARSE_TTL:
                return INSTANCE_DROP_TTL;
        case VRRP_PARSE_CHECKSUM:
                return INSTANCE_DROP_CHECKSUM;
        case VRRP_PARSE_AUTH_TYPE:
                return INSTANCE_DROP_AUTH;
        default:
                return -1;
        }
}

static void instance_receive_one(struct hamgr_instance *inst, const uint8_t *payload, size_t len,
                                 const struct vrrp_ip_meta *received) {
        const struct hamgr_vrrp_config *c = inst->config;
        struct vrrp_ip_meta meta = *received;
        char buf[INET6_ADDRSTRLEN];
        enum vrrp_parse_error error;
        struct vrrp_advert adv;
        struct vrrp_event ev;
        int r, d;

        /* Unicast peers may sit behind routers (cloud pairs in two subnets),
         * so the TTL proves nothing there; unicast_peers is the filter. */
        if (c->n_unicast_peers > 0)
                meta.ttl = -1;
        r = vrrp_advert_check(payload, len, &meta, &adv, &error);
        if (r < 0) {
                inst->counters.packets_invalid++;
                inst->last_invalid_reason = vrrp_parse_error_to_string(error);
                log_fields(LOG_DEBUG, 0, c->name, c->vrid, NULL, NULL, "invalid packet from %s: %s",
                           ip_address_to_string(&meta.src, buf, sizeof(buf)), inst->last_invalid_reason);
                /* Only a message that names our vrid is our misconfiguration. */
                d = drop_of_parse_error(error);
                if (d >= 0 && len >= 2 && payload[1] == c->vrid) {
                        if (d == INSTANCE_DROP_TTL)
                                instance_drop(inst, d, &meta.src, "TTL/hop limit %d, must be 255; a router on the "
                                              "path? Pairs across routers need unicast_peers", meta.ttl);
                        else if (d == INSTANCE_DROP_AUTH)
                                instance_drop(inst, d, &meta.src, "authentication type %u%s is not supported; "
                                              "hamgr speaks none or simple password (auth_pass)",
                                              len > 4 ? payload[4] : 0,
                                              len > 4 && payload[4] == VRRP_AUTH_AH ? " (IP AH)" : "");
                        else if (d == INSTANCE_DROP_VERSION)
                                instance_drop(inst, d, &meta.src, "version field %u (%s), we speak v%u",
                                              payload[0] >> 4, inst->last_invalid_reason, c->version);
                        else
                                instance_drop(inst, d, &meta.src, "%s", inst->last_invalid_reason);
                }
                return;
        }
        if (adv.vrid != c->vrid)
                return; /* another virtual router on this link */
        /* Multicast loopback is off and unicast never comes back, so this
         * is another node using our address: both would win every tie. */
        if (inst->have_primary && ip_address_equal(&meta.src, &inst->primary)) {
                inst->counters.adverts_dropped++;
                instance_drop(inst, INSTANCE_DROP_ADDRESS_CONFLICT, &meta.src,
                              "another node sends from our primary address (priority %u)", adv.priority);
                return;
        }
        if (adv.version != c->version) {
                inst->counters.adverts_dropped++;
                instance_drop(inst, INSTANCE_DROP_VERSION, &meta.src, "v%u advertisement, we speak v%u",
                              adv.version, c->version);
                return;
        }
        if (!peer_allowed(c, &meta.src)) {
                inst->counters.adverts_dropped++;
                instance_drop(inst, INSTANCE_DROP_SOURCE, &meta.src, "not in unicast_peers");
                return;
        }
        /* RFC 2338 7.1: both the type and the password must be ours. */
        if (c->version == 2 && !auth_matches(c, &adv)) {
                inst->counters.adverts_dropped++;
                instance_drop(inst, INSTANCE_DROP_AUTH, &meta.src, "%s",
                              adv.auth_type == VRRP_AUTH_NONE ? "no authentication, we use auth_pass"
                              : !c->auth_pass ? "simple-password authentication, we have no auth_pass"
                                              : "wrong auth_pass");
                return;
        }
        /* RFC 3768 7.1: v2 routers must agree on the interval. */
        if (c->version == 2 && adv.max_adver_int_cs != c->advert_interval_ms / 10) {
                inst->counters.adverts_dropped++;
                instance_drop(inst, INSTANCE_DROP_INTERVAL, &meta.src, "interval %u s, ours %u s",
                              adv.max_adver_int_cs / 100, c->advert_interval_ms / 1000);
                return;
        }
        inst->counters.adverts_received++;
        inst->last_master = meta.src;
        inst->last_master_priority = adv.priority;
        ev = (struct vrrp_event) {
                .type = VRRP_EVENT_ADVERT,
                .priority = adv.priority,
                .max_adver_int_cs = adv.max_adver_int_cs,
                .src = meta.src,
        };
        instance_dispatch(inst, &ev);
}

/* Read what is queued on the socket, without waiting. Bounded so a flood
 * cannot starve the timers. */
static void instance_drain(struct hamgr_instance *inst) {
        uint8_t buf[65536];

        for (int i = 0; i < 64 && inst->fd >= 0; i++) {
                struct vrrp_ip_meta meta;
                const uint8_t *payload;
                const char *reason = NULL;
                size_t len;
                int r;

                r = vrrp_socket_recv(inst->fd, inst->config->family, buf, sizeof(buf), &meta, &payload, &len,
                                     &reason);
                if (r == -EAGAIN || r == -EINTR)
                        break;
                if (r == -EBADMSG) {
                        inst->counters.packets_invalid++;
                        inst->last_invalid_reason = reason;
                        continue;
                }
                if (r < 0) {
                        log_inst_errno(inst, LOG_WARNING, r, "receive failed: %m");
                        break;
                }
                /* Heard as of now, not as of the loop's wake-up: had the
                 * process been stopped in between, an advert dated then
                 * would re-arm a Master_Down that has already run out, and
                 * the next iteration would take over from a live master. */
                daemon_now_fresh(inst->daemon);
                instance_receive_one(inst, payload, len, &meta);
        }
}

static int on_socket(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        instance_drain(userdata);
        return 0;
}

/* ---- gratuitous ARP / NA ------------------------------------------------ */

/* The source of our neighbour advertisements: the link-local address the
 * adverts go out from, or for an IPv4 instance with IPv6 virtual IPs the
 * interface's own link-local address. */
static int instance_na_source(struct hamgr_instance *inst, struct ip_address *ret) {
        const struct hamgr_vrrp_config *c = inst->config;

        if (c->family == AF_INET6) {
                if (!inst->have_primary)
                        return -ENOENT;
                *ret = inst->primary;
                return 0;
        }
        return vrrp_address_primary(inst->daemon->nl, inst->ifindex, AF_INET6, c->virtual_ips, c->n_virtual_ips,
                                    ret);
}

static void instance_announce_once(struct hamgr_instance *inst) {
        const struct hamgr_vrrp_config *c = inst->config;
        struct ip_address src;
        int r, src_r = 1; /* 1: not looked up yet */

        for (size_t i = 0; i < c->n_virtual_ips; i++) {
                const struct ip_address *a = &c->virtual_ips[i].address;

                if (a->family == AF_INET)
                        r = vrrp_announce_garp(inst->ifindex, inst->mac, &a->addr.in);
                else {
                        if (src_r > 0)
                                src_r = instance_na_source(inst, &src);
                        r = src_r < 0 ? src_r : vrrp_announce_na(inst->ifindex, inst->mac, &src.addr.in6, &a->addr.in6);
                }
                if (r < 0)
                        log_inst_errno(inst, LOG_DEBUG, r, "announce failed: %m");
        }
}

/* Bursts: the first (repeat packets), the delayed second one (delay_s after
 * the first started, delay_repeat packets) for switches that were not
 * forwarding yet, then refreshes (repeat packets every refresh_s). */
static int on_announce_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct hamgr_instance *inst = userdata;
        const struct hamgr_garp_config *g = &inst->config->garp;
        uint64_t second_at = inst->announce_started_usec + (uint64_t) g->delay_s * USEC_PER_SEC, next = 0;

        if (inst->fsm.state != VRRP_STATE_MASTER)
                return 0;
        if (inst->announce_left == 0) {
                /* a new burst: the second one once due, else a refresh */
                bool second = inst->announce_second_due && usec >= second_at;

                inst->announce_left = second ? g->delay_repeat : g->repeat;
                if (second)
                        inst->announce_second_due = false;
        }
        instance_announce_once(inst);
        inst->announce_left--;
        if (inst->announce_left > 0)
                next = usec + (uint64_t) g->interval_ms * USEC_PER_MSEC;
        else {
                /* Refreshes go on while the second burst is still to come:
                 * they count from the end of each burst, the second burst
                 * from the start of the first. */
                if (inst->announce_second_due)
                        next = MAX(usec, second_at);
                if (g->refresh_s > 0 && (next == 0 || usec + (uint64_t) g->refresh_s * USEC_PER_SEC < next))
                        next = usec + (uint64_t) g->refresh_s * USEC_PER_SEC;
        }
        if (next == 0)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        sd_event_source_set_time(s, next);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static void instance_start_announce(struct hamgr_instance *inst) {
        uint64_t now = daemon_now(inst->daemon);
        int r;

        inst->announce_left = inst->config->garp.repeat;
        inst->announce_second_due = inst->config->garp.delay_s > 0;
        inst->announce_started_usec = now;
        if (!inst->announce_timer) {
                r = sd_event_add_time(inst->daemon->event, &inst->announce_timer, CLOCK_MONOTONIC, now, 1,
                                      on_announce_timer, inst);
                if (r < 0) {
                        log_inst_errno(inst, LOG_ERR, r, "cannot schedule gratuitous ARP: %m");
                        return;
                }
        }
        /* First packet now, from the loop, after the VIPs are in place. */
        on_announce_timer(inst->announce_timer, now, inst);
}

static void instance_stop_announce(struct hamgr_instance *inst) {
        inst->announce_left = 0;
        inst->announce_second_due = false;
        if (inst->announce_timer)
                sd_event_source_set_enabled(inst->announce_timer, SD_EVENT_OFF);
}

/* ---- the fsm ------------------------------------------------------------ */

static void instance_log_transition(struct hamgr_instance *inst, const struct vrrp_actions *a) {
        const char *reason = vrrp_reason_to_string(a->reason);
        char prev_field[64], reason_field[64], detail[200] = "";
        const char *extra[3] = { prev_field, reason_field, NULL };

        snprintf(prev_field, sizeof(prev_field), "PREV_STATE=%s", vrrp_state_to_string(a->old_state));
        snprintf(reason_field, sizeof(reason_field), "REASON=%s", reason);
        if (a->new_state == VRRP_STATE_FAULT && inst->faults)
                snprintf(detail, sizeof(detail), ": %s", inst->fault_detail);
        else if (a->reason == VRRP_REASON_GROUP && inst->group->name)
                snprintf(detail, sizeof(detail), ": following group %s%s", inst->group->name,
                         a->new_state == VRRP_STATE_FAULT ? ", a member is in fault" : "");
        log_fields(LOG_NOTICE, 0, inst->config->name, inst->config->vrid, vrrp_state_to_string(a->new_state), extra,
                   "%s -> %s (%s%s)", vrrp_state_to_string(a->old_state), vrrp_state_to_string(a->new_state),
                   reason, detail);
}

static void instance_apply(struct hamgr_instance *inst, const struct vrrp_actions *a) {
        struct hamgr_daemon *d = inst->daemon;

        if (a->state_changed) {
                instance_log_transition(inst, a);
                inst->last_from = a->old_state;
                inst->last_reason = a->reason;
                inst->last_change_usec = daemon_now(d);
                inst->counters.transitions++;
                if (a->new_state == VRRP_STATE_MASTER)
                        inst->counters.became_master++;
                if (a->old_state == VRRP_STATE_MASTER)
                        instance_stop_announce(inst);
        }
        if (a->add_vips)
                instance_vips(inst, true);
        /* After the VIPs: a route's gateway or source may be one of them. */
        if (a->add_vips)
                instance_routes_install(inst);
        if (a->send_advert)
                instance_send_advert(inst, a->advert_priority);
        /* Before the VIPs, in the reverse of that order. */
        if (a->remove_vips)
                instance_routes_remove(inst);
        if (a->remove_vips)
                instance_vips(inst, false);
        if (a->announce && !a->state_changed)
                log_inst(inst, LOG_INFO, "re-announcing virtual IPs: a second master that loses to us was heard%s",
                         inst->group && inst->group->name ? " in the group" : "");
        if (a->announce)
                instance_start_announce(inst);
        if (a->state_changed) {
                char queue[128];

                if (inst->group && inst->group->name)
                        snprintf(queue, sizeof(queue), "group/%s", inst->group->name);
                else
                        snprintf(queue, sizeof(queue), "instance/%s", inst->config->name);
                notifier_transition(d->notifier, &d->config->notify, d->config->node_name, queue,
                                    NOTIFY_KIND_INSTANCE, inst->config->name, a->old_state, a->new_state,
                                    inst->fsm.config.priority);
        }
}

static void group_notify(struct hamgr_group_rt *g) {
        struct hamgr_daemon *d;
        enum vrrp_state s;
        char queue[128];

        if (!g->name || g->n_members == 0)
                return;
        d = g->members[0]->daemon;
        s = g->members[0]->fsm.state;
        for (size_t i = 1; i < g->n_members; i++)
                if (g->members[i]->fsm.state != s)
                        return; /* still moving */
        if (s == g->notified_state)
                return;
        log_fields(LOG_NOTICE, 0, NULL, 0, vrrp_state_to_string(s), NULL, "group %s: %s -> %s", g->name,
                   vrrp_state_to_string(g->notified_state), vrrp_state_to_string(s));
        snprintf(queue, sizeof(queue), "group/%s", g->name);
        notifier_transition(d->notifier, &d->config->notify, d->config->node_name, queue, NOTIFY_KIND_GROUP, g->name,
                            g->notified_state, s, g->members[0]->fsm.config.priority);
        g->notified_state = s;
}

/* A member that re-announces (it heard a second master losing to it, see
 * vrrp_reannounce_interval_usec()) does so for the whole group: the other
 * node was master for all of it, so neighbours hold its MAC for every
 * member's addresses, also on links where no advert from it arrived. */
static void instance_group_reannounce(struct hamgr_group_rt *g, struct vrrp_actions *actions) {
        bool reannounce = false;

        for (size_t i = 0; i < g->n_members; i++)
                if (actions[i].announce && !actions[i].state_changed)
                        reannounce = true;
        if (!reannounce)
                return;
        for (size_t i = 0; i < g->n_members; i++)
                if (g->members[i]->fsm.state == VRRP_STATE_MASTER && !actions[i].state_changed)
                        actions[i].announce = true;
}

void instance_dispatch(struct hamgr_instance *inst, const struct vrrp_event *event) {
        struct hamgr_group_rt *g = inst->group;
        struct vrrp_actions actions[VRRP_GROUP_MAX_MEMBERS];
        bool held[VRRP_GROUP_MAX_MEMBERS];
        uint64_t now = daemon_now(inst->daemon);
        bool changed = false;

        /* Another master, of lower priority, besides us: both serve (a
         * partition, a frozen node) until it hears us and yields. */
        if (event->type == VRRP_EVENT_ADVERT && inst->fsm.state == VRRP_STATE_MASTER && event->priority != 0 &&
            event->priority < inst->fsm.config.priority)
                inst->split_seen_usec = now;

        memcpy(held, g->group.wants_master, sizeof(held));
        vrrp_group_step(&g->group, inst->group_index, event, now, actions);
        /* Once per change, not at every re-armed timer: a partial partition
         * would otherwise log at every Master_Down_Interval. */
        for (size_t i = 0; i < g->n_members && g->name; i++) {
                struct hamgr_instance *m = g->members[i];

                if (!held[i] && g->group.wants_master[i] && m->fsm.state == VRRP_STATE_BACKUP)
                        log_inst(m, LOG_NOTICE,
                                 "master down, but group %s stays BACKUP while another member hears its master",
                                 g->name);
                else if (held[i] && !g->group.wants_master[i] && m->fsm.state == VRRP_STATE_BACKUP)
                        log_inst(m, LOG_INFO, "hears a master again");
        }
        /* A master that leaves says so first (priority 0 when it releases):
         * the backup's Skew_Time then runs while the tunnels below stop,
         * not after. The VIPs still go only after the tunnels. */
        for (size_t i = 0; i < g->n_members; i++)
                if (actions[i].send_advert && actions[i].state_changed && actions[i].old_state == VRRP_STATE_MASTER) {
                        instance_send_advert(g->members[i], actions[i].advert_priority);
                        actions[i].send_advert = false;
                }
        /* Tunnels stop before the VIPs go: a WireGuard packet sent after the
         * VIP is gone would leave from the node's own address, and clients
         * roam to whatever address an authenticated packet comes from. */
        wg_followers_release_lost(inst->daemon);
        instance_group_reannounce(g, actions);
        for (size_t i = 0; i < g->n_members; i++) {
                instance_apply(g->members[i], &actions[i]);
                changed |= actions[i].state_changed;
        }
        for (size_t i = 0; i < g->n_members; i++)
                instance_arm_timer(g->members[i]);
        if (changed) {
                group_notify(g);
                wg_followers_update(inst->daemon);
                daemon_update_status(inst->daemon);
        }
        /* Once its adverts stopped for a Master_Down-like while, it has
         * yielded: neighbours that followed it still have its MAC for the
         * VIPs (its gratuitous ARP came after ours), and WireGuard clients
         * its sessions. This is the second of two announce paths, and both
         * are needed. The fsm's re-announce (master_reassert()) answers a
         * lower advert at once, rate-limited, while the other node may
         * still be master: it takes the neighbours back without waiting,
         * also through a one-way split that never ends. But it cannot know
         * that the other node's last GARP/NA came before it, and a kick
         * then would bring WireGuard clients back only for the other
         * master, still serving, to take them again. This path runs once,
         * when the other master has gone quiet: its announcements are over
         * (ours come last), and only now are the peers kicked. */
        if (inst->fsm.state != VRRP_STATE_MASTER)
                inst->split_seen_usec = 0;
        else if (inst->split_seen_usec != 0 && event->type == VRRP_EVENT_TIMER &&
                 now - inst->split_seen_usec > 3 * (uint64_t) inst->config->advert_interval_ms * USEC_PER_MSEC) {
                inst->split_seen_usec = 0;
                log_inst(inst, LOG_NOTICE, "the other master has yielded: announcing the virtual IPs again");
                instance_start_announce(inst);
                wg_followers_rekick(inst->daemon, inst->config->name, g->name);
        }
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct hamgr_instance *inst = userdata;
        struct hamgr_group_rt *g = inst->group;
        struct vrrp_event ev = { .type = VRRP_EVENT_TIMER };

        /* After the process was stopped or starved for longer than
         * Master_Down, the timer and the socket are ready in the same loop
         * iteration and sd-event may run the timer first: the master's
         * adverts are queued but unread, and acting on the expired timer
         * would be a false takeover. Read them first; an advert re-arms
         * Master_Down and the fsm then ignores this early TIMER. (Raising
         * the socket's priority instead would let a flood starve the
         * timers, as sd-event runs one source per iteration.) */
        for (size_t i = 0; i < g->n_members; i++)
                instance_drain(g->members[i]);
        instance_dispatch(inst, &ev);
        return 0;
}

static void instance_arm_timer(struct hamgr_instance *inst) {
        uint64_t deadline = vrrp_fsm_next_deadline(&inst->fsm);
        int r;

        if (deadline == 0) {
                if (inst->timer)
                        sd_event_source_set_enabled(inst->timer, SD_EVENT_OFF);
                return;
        }
        if (!inst->timer) {
                /* Accuracy 1 us: the default 250 ms slack would break 100 ms adverts. */
                r = sd_event_add_time(inst->daemon->event, &inst->timer, CLOCK_MONOTONIC, deadline, 1, on_timer,
                                      inst);
                if (r < 0)
                        log_inst_errno(inst, LOG_ERR, r, "cannot arm timer: %m");
                return;
        }
        sd_event_source_set_time(inst->timer, deadline);
        sd_event_source_set_enabled(inst->timer, SD_EVENT_ONESHOT);
}

/* ---- link state --------------------------------------------------------- */

static int instance_open_socket(struct hamgr_instance *inst) {
        const struct hamgr_vrrp_config *c = inst->config;
        int fd, r;

        instance_close_socket(inst);
        fd = vrrp_socket_open(c->family, inst->ifindex, c->interface, c->n_unicast_peers == 0);
        if (fd < 0)
                return fd;
        if (c->n_unicast_peers > 0 && c->unicast_ttl != VRRP_TTL) {
                r = vrrp_socket_set_unicast_ttl(fd, c->family, c->unicast_ttl);
                if (r < 0) {
                        close(fd);
                        return r;
                }
        }
        r = sd_event_add_io(inst->daemon->event, &inst->io, fd, EPOLLIN, on_socket, inst);
        if (r < 0) {
                close(fd);
                return r;
        }
        inst->fd = fd;
        return 0;
}

/* The weighted checks that move INST's priority: its own, or in a sync
 * group those of every member, so that the members rise and fall as one. A
 * group goes MASTER only when every member would: a weight moving one
 * member alone could never fail the group over. */
static size_t instance_group_weights(struct hamgr_instance *inst, struct health_weight *ret, size_t max) {
        const struct hamgr_group_rt *g = inst->group;
        size_t n = 0, n_members = g && g->n_members > 0 ? g->n_members : 1;

        for (size_t m = 0; m < n_members; m++) {
                const struct hamgr_vrrp_config *c = g && g->n_members > 0 ? g->members[m]->config : inst->config;

                for (size_t i = 0; i < c->n_track_checks && n < max; i++)
                        if (c->track_checks[i].weight != 0)
                                ret[n++] = (struct health_weight) {
                                        .weight = c->track_checks[i].weight,
                                        .status = health_monitor_status(inst->daemon, c->track_checks[i].check),
                                };
        }
        return n;
}

void instance_evaluate(struct hamgr_instance *inst) {
        const struct hamgr_vrrp_config *c = inst->config;
        struct link_info li;
        uint32_t faults = 0;
        char detail[sizeof(inst->fault_detail)] = "";
        bool faulted;
        int r;

        r = link_monitor_get(inst->daemon->links, c->interface, &li);
        if (r < 0) {
                faults |= 1u << INSTANCE_FAULT_IFACE_MISSING;
                snprintf(detail, sizeof(detail), "interface %s missing", c->interface);
                if (inst->ifindex > 0)
                        instance_close_socket(inst);
                inst->ifindex = 0;
        } else {
                if (li.ifindex != inst->ifindex)
                        instance_close_socket(inst); /* recreated interface: new index */
                inst->ifindex = li.ifindex;
                memcpy(inst->mac, li.mac, sizeof(inst->mac));
                if (!li.up) {
                        faults |= 1u << INSTANCE_FAULT_IFACE_DOWN;
                        snprintf(detail, sizeof(detail), "interface %s down", c->interface);
                }
        }
        for (size_t i = 0; i < c->n_track_interfaces; i++) {
                struct link_info ti;

                if (link_monitor_get(inst->daemon->links, c->track_interfaces[i], &ti) < 0 || !ti.up) {
                        if (!(faults & (1u << INSTANCE_FAULT_TRACKED_DOWN)) && !detail[0])
                                snprintf(detail, sizeof(detail), "tracked interface %s down",
                                         c->track_interfaces[i]);
                        faults |= 1u << INSTANCE_FAULT_TRACKED_DOWN;
                }
        }
        /* Tracked checks: weight 0 is a fault while DOWN; other weights
         * move the priority (UNKNOWN, before the first decision, counts as
         * neither, so a starting node is not FAULT for rise intervals). */
        {
                struct health_weight weights[64];
                size_t n;
                int prio;

                for (size_t i = 0; i < c->n_track_checks; i++) {
                        if (c->track_checks[i].weight != 0 ||
                            health_monitor_status(inst->daemon, c->track_checks[i].check) != HEALTH_DOWN)
                                continue;
                        if (!faults)
                                snprintf(detail, sizeof(detail), "check %s failing", c->track_checks[i].check);
                        faults |= 1u << INSTANCE_FAULT_CHECK;
                }
                n = instance_group_weights(inst, weights, ELEMENTSOF(weights));
                prio = health_priority_adjust(c->priority, weights, n);
                if (prio != inst->effective_priority && inst->effective_priority != 0)
                        log_inst(inst, LOG_NOTICE, "priority %d -> %d (tracked checks%s%s)", inst->effective_priority,
                                 prio, inst->group && inst->group->name ? " of group " : "",
                                 inst->group && inst->group->name ? inst->group->name : "");
                if (prio != inst->effective_priority) {
                        struct vrrp_fsm_config fc;

                        inst->effective_priority = (uint8_t) prio;
                        instance_fsm_config(c, inst->have_primary ? &inst->primary : NULL, &fc);
                        fc.priority = inst->effective_priority;
                        vrrp_fsm_reconfigure(&inst->fsm, &fc);
                }
        }
        if (inst->ifindex > 0) {
                struct ip_address primary;

                r = vrrp_address_primary(inst->daemon->nl, inst->ifindex, c->family, c->virtual_ips,
                                         c->n_virtual_ips, &primary);
                /* Our adverts' source is also what peers tie-break on. */
                if (r >= 0 && c->n_unicast_peers > 0 && c->unicast_source.family == c->family)
                        primary = c->unicast_source;
                if (r < 0) {
                        if (!faults)
                                snprintf(detail, sizeof(detail), "no %s address on %s",
                                         c->family == AF_INET ? "IPv4" : "IPv6 link-local", c->interface);
                        faults |= 1u << INSTANCE_FAULT_NO_ADDRESS;
                        inst->have_primary = false;
                } else if (!inst->have_primary || !ip_address_equal(&primary, &inst->primary)) {
                        struct vrrp_fsm_config fc;

                        inst->primary = primary;
                        inst->have_primary = true;
                        instance_fsm_config(c, &primary, &fc);
                        if (inst->effective_priority)
                                fc.priority = inst->effective_priority;
                        vrrp_fsm_reconfigure(&inst->fsm, &fc);
                }
                if (inst->fd < 0) {
                        r = instance_open_socket(inst);
                        if (r < 0) {
                                if (!faults)
                                        snprintf(detail, sizeof(detail), "cannot open VRRP socket on %s: %s",
                                                 c->interface, strerror(-r));
                                faults |= 1u << INSTANCE_FAULT_SOCKET;
                        }
                }
        }

        if (faults != inst->faults) {
                if (faults)
                        log_inst(inst, LOG_WARNING, "fault: %s", detail);
                else if (inst->faults)
                        log_inst(inst, LOG_NOTICE, "fault cleared");
        }
        inst->faults = faults;
        memcpy(inst->fault_detail, detail, sizeof(detail));

        faulted = faults != 0;
        if (!inst->started) {
                struct vrrp_event ev = { .type = faulted ? VRRP_EVENT_FAULT : VRRP_EVENT_STARTUP };

                inst->started = true;
                inst->fault_reported = faulted;
                instance_dispatch(inst, &ev);
        } else if (faulted != inst->fault_reported) {
                struct vrrp_event ev = { .type = faulted ? VRRP_EVENT_FAULT : VRRP_EVENT_FAULT_CLEAR };

                inst->fault_reported = faulted;
                instance_dispatch(inst, &ev);
        }
        /* A failed route's device may have come up (a followed WireGuard
         * interface does, late in the takeover). */
        instance_routes_retry(inst);
}

/* ---- reload ------------------------------------------------------------- */

bool instance_config_compatible(const struct hamgr_vrrp_config *a, const struct hamgr_vrrp_config *b) {
        if (!streq(a->name, b->name) || !streq(a->interface, b->interface) || a->vrid != b->vrid ||
            a->version != b->version || a->family != b->family || a->n_virtual_ips != b->n_virtual_ips)
                return false;
        for (size_t i = 0; i < a->n_virtual_ips; i++)
                if (!ip_address_equal(&a->virtual_ips[i].address, &b->virtual_ips[i].address) ||
                    a->virtual_ips[i].prefixlen != b->virtual_ips[i].prefixlen)
                        return false;
        return true;
}

void instance_reconfigure(struct hamgr_instance *inst, struct hamgr_vrrp_config *config) {
        struct vrrp_fsm_config fc;
        bool peers_changed = config->n_unicast_peers != inst->config->n_unicast_peers ||
                             config->unicast_ttl != inst->config->unicast_ttl;
        const struct hamgr_vrrp_config *old = inst->config;

        inst->config = config;
        /* Routes change in place: a new route is no reason for a failover. */
        instance_routes_reconfigure(inst, old);
        inst->effective_priority = 0; /* recomputed from the new weights by instance_evaluate() */
        instance_fsm_config(config, inst->have_primary ? &inst->primary : NULL, &fc);
        vrrp_fsm_reconfigure(&inst->fsm, &fc);
        /* Multicast membership depends on whether peers are listed, the
         * unicast TTL is a socket option. */
        if (peers_changed && inst->fd >= 0)
                instance_close_socket(inst);
        instance_arm_timer(inst);
}
