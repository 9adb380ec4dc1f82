/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One VRRP instance on the event loop: the glue between the pure fsm, its
 * socket, its timers, the interface's addresses and the notifier.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/macro.h"
#include "daemon.h"
#include "health.h"
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
        instance_fsm_config(config, NULL, &fc);
        vrrp_fsm_init(&inst->fsm, &fc);
        inst->last_from = VRRP_STATE_INIT;
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
        free(inst);
        return NULL;
}

/* ---- addresses -------------------------------------------------------- */

static void instance_vips(struct hamgr_instance *inst, bool add) {
        const struct hamgr_vrrp_config *c = inst->config;
        char buf[INET6_ADDRSTRLEN];
        int r;

        if (inst->ifindex <= 0)
                return;
        for (size_t i = 0; i < c->n_virtual_ips; i++) {
                const struct ip_prefix *p = &c->virtual_ips[i];

                r = add ? vrrp_address_add(inst->daemon->nl, inst->ifindex, p)
                        : vrrp_address_remove(inst->daemon->nl, inst->ifindex, p);
                if (r < 0)
                        log_inst_errno(inst, LOG_ERR, r, "cannot %s virtual IP %s/%u on %s: %m",
                                       add ? "add" : "remove",
                                       ip_address_to_string(&p->address, buf, sizeof(buf)), p->prefixlen,
                                       c->interface);
        }
}

void instance_remove_stale_vips(struct hamgr_instance *inst) {
        const struct hamgr_vrrp_config *c = inst->config;
        struct link_info li;
        char buf[INET6_ADDRSTRLEN];

        if (link_monitor_get(inst->daemon->links, c->interface, &li) < 0)
                return;
        for (size_t i = 0; i < c->n_virtual_ips; i++) {
                const struct ip_prefix *p = &c->virtual_ips[i];

                if (vrrp_address_present(inst->daemon->nl, li.ifindex, &p->address) <= 0)
                        continue;
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

static void instance_receive_one(struct hamgr_instance *inst, const uint8_t *payload, size_t len,
                                 const struct vrrp_ip_meta *meta) {
        const struct hamgr_vrrp_config *c = inst->config;
        char buf[INET6_ADDRSTRLEN];
        const char *reason = NULL;
        struct vrrp_advert adv;
        struct vrrp_event ev;
        int r;

        r = vrrp_advert_parse(payload, len, meta, &adv, &reason);
        if (r < 0) {
                inst->counters.packets_invalid++;
                inst->last_invalid_reason = reason;
                log_fields(LOG_DEBUG, 0, c->name, c->vrid, NULL, NULL, "invalid packet from %s: %s",
                           ip_address_to_string(&meta->src, buf, sizeof(buf)), reason ? reason : "?");
                return;
        }
        if (adv.vrid != c->vrid)
                return; /* another virtual router on this link */
        if (inst->have_primary && ip_address_equal(&meta->src, &inst->primary))
                return;
        if (adv.version != c->version) {
                inst->counters.adverts_dropped++;
                log_fields(LOG_DEBUG, 0, c->name, c->vrid, NULL, NULL, "dropped v%u advert from %s: we speak v%u",
                           adv.version, ip_address_to_string(&meta->src, buf, sizeof(buf)), c->version);
                return;
        }
        if (!peer_allowed(c, &meta->src)) {
                inst->counters.adverts_dropped++;
                log_fields(LOG_DEBUG, 0, c->name, c->vrid, NULL, NULL, "dropped advert from %s: not in unicast_peers",
                           ip_address_to_string(&meta->src, buf, sizeof(buf)));
                return;
        }
        /* RFC 3768 7.1: v2 routers must agree on the interval. */
        if (c->version == 2 && adv.max_adver_int_cs != c->advert_interval_ms / 10) {
                inst->counters.adverts_dropped++;
                log_fields(LOG_DEBUG, 0, c->name, c->vrid, NULL, NULL,
                           "dropped advert from %s: interval %u s, ours %u s",
                           ip_address_to_string(&meta->src, buf, sizeof(buf)), adv.max_adver_int_cs / 100,
                           c->advert_interval_ms / 1000);
                return;
        }
        inst->counters.adverts_received++;
        inst->last_master = meta->src;
        inst->last_master_priority = adv.priority;
        ev = (struct vrrp_event) {
                .type = VRRP_EVENT_ADVERT,
                .priority = adv.priority,
                .max_adver_int_cs = adv.max_adver_int_cs,
                .src = meta->src,
        };
        instance_dispatch(inst, &ev);
}

static int on_socket(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct hamgr_instance *inst = userdata;
        uint8_t buf[65536];

        /* Bounded so a flood cannot starve the timers. */
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
                instance_receive_one(inst, payload, len, &meta);
        }
        return 0;
}

/* ---- gratuitous ARP / NA ------------------------------------------------ */

static void instance_announce_once(struct hamgr_instance *inst) {
        const struct hamgr_vrrp_config *c = inst->config;
        int r;

        for (size_t i = 0; i < c->n_virtual_ips; i++) {
                const struct ip_address *a = &c->virtual_ips[i].address;

                if (a->family == AF_INET)
                        r = vrrp_announce_garp(inst->ifindex, inst->mac, &a->addr.in);
                else
                        r = vrrp_announce_na(inst->ifindex, inst->mac, &a->addr.in6);
                if (r < 0)
                        log_inst_errno(inst, LOG_DEBUG, r, "announce failed: %m");
        }
}

static int on_announce_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct hamgr_instance *inst = userdata;
        const struct hamgr_garp_config *g = &inst->config->garp;

        if (inst->fsm.state != VRRP_STATE_MASTER)
                return 0;
        if (inst->announce_left == 0)
                inst->announce_left = g->repeat; /* a refresh starts a new burst */
        instance_announce_once(inst);
        inst->announce_left--;
        if (inst->announce_left > 0)
                sd_event_source_set_time(s, usec + (uint64_t) g->interval_ms * USEC_PER_MSEC);
        else if (g->refresh_s > 0)
                sd_event_source_set_time(s, usec + (uint64_t) g->refresh_s * USEC_PER_SEC);
        else
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static void instance_start_announce(struct hamgr_instance *inst) {
        uint64_t now = daemon_now(inst->daemon);
        int r;

        inst->announce_left = inst->config->garp.repeat;
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
        if (a->send_advert)
                instance_send_advert(inst, a->advert_priority);
        if (a->remove_vips)
                instance_vips(inst, false);
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

void instance_dispatch(struct hamgr_instance *inst, const struct vrrp_event *event) {
        struct hamgr_group_rt *g = inst->group;
        struct vrrp_actions actions[VRRP_GROUP_MAX_MEMBERS];
        uint64_t now = daemon_now(inst->daemon);
        bool changed = false;

        /* Another master, of lower priority, besides us: both serve (a
         * partition, a frozen node) until it hears us and yields. */
        if (event->type == VRRP_EVENT_ADVERT && inst->fsm.state == VRRP_STATE_MASTER && event->priority != 0 &&
            event->priority < inst->fsm.config.priority)
                inst->split_seen_usec = now;

        vrrp_group_step(&g->group, inst->group_index, event, now, actions);
        /* Tunnels stop before the VIPs go: a WireGuard packet sent after the
         * VIP is gone would leave from the node's own address, and clients
         * roam to whatever address an authenticated packet comes from. */
        wg_followers_release_lost(inst->daemon);
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
         * its sessions. */
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
        struct vrrp_event ev = { .type = VRRP_EVENT_TIMER };

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
        r = sd_event_add_io(inst->daemon->event, &inst->io, fd, EPOLLIN, on_socket, inst);
        if (r < 0) {
                close(fd);
                return r;
        }
        inst->fd = fd;
        return 0;
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
                size_t n = 0;
                int prio;

                for (size_t i = 0; i < c->n_track_checks; i++) {
                        enum health_status st = health_monitor_status(inst->daemon, c->track_checks[i].check);

                        if (c->track_checks[i].weight == 0) {
                                if (st == HEALTH_DOWN) {
                                        if (!faults)
                                                snprintf(detail, sizeof(detail), "check %s failing",
                                                         c->track_checks[i].check);
                                        faults |= 1u << INSTANCE_FAULT_CHECK;
                                }
                        } else if (n < ELEMENTSOF(weights))
                                weights[n++] = (struct health_weight) { .weight = c->track_checks[i].weight,
                                                                        .status = st };
                }
                prio = health_priority_adjust(c->priority, weights, n);
                if (prio != inst->effective_priority && inst->effective_priority != 0)
                        log_inst(inst, LOG_NOTICE, "priority %d -> %d (tracked checks)", inst->effective_priority, prio);
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
        bool peers_changed = config->n_unicast_peers != inst->config->n_unicast_peers;

        inst->config = config;
        inst->effective_priority = 0; /* recomputed from the new weights by instance_evaluate() */
        instance_fsm_config(config, inst->have_primary ? &inst->primary : NULL, &fc);
        vrrp_fsm_reconfigure(&inst->fsm, &fc);
        /* Multicast membership depends on whether peers are listed. */
        if (peers_changed && inst->fd >= 0)
                instance_close_socket(inst);
        instance_arm_timer(inst);
}
