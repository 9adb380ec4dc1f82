/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The WireGuard takeover. A passive gateway keeps its interface configured
 * but down. On becoming MASTER it installs the endpoints it last knew,
 * makes the VIP the source of its packets, brings the link up and moves
 * each peer's persistent keepalive from 0 to N, which makes WireGuard send
 * a handshake initiation at once: clients get a session in one round trip
 * instead of waiting for their own rekey timer (~15 s). Work on large peer
 * sets is cut into batches on an idle-priority source so VRRP timers and
 * packets always go first.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "daemon.h"
#include "link.h"
#include "log.h"
#include "route.h"
#include "strbuf.h"
#include "wg/key.h"
#include "wg/uapi.h"
#include "wg/wg.h"
#include "wireguard.h"

#define WG_BATCH_PEERS        250
#define WG_SNAPSHOT_USEC      (5 * USEC_PER_SEC)
/* After the interface of an active follower is re-created (wireguard-go
 * restarted), time for wg-quick or the like to configure it again. */
#define WG_RETAKE_USEC        (1 * USEC_PER_SEC)
/* The other master sends an advert or two before it yields: one kick. */
#define WG_REKICK_HOLDOFF_USEC (1 * USEC_PER_SEC)
/* Keepalive used for the kick when the peer's own is 0 (off); it is set
 * back to 0 right after, so it never fires. */
#define WG_KICK_KEEPALIVE     25
#define WG_STORE_MAGIC_V1     "hamgr-endpoints 1"
#define WG_STORE_MAGIC        "hamgr-endpoints 2"

enum follower_phase {
        PHASE_PASSIVE,
        PHASE_STAGE_ENDPOINTS,   /* endpoints in, keepalive 0, link still down */
        PHASE_LINK_UP,
        PHASE_KICK,              /* keepalive 0 -> N: one initiation per peer */
        PHASE_RESTORE_KEEPALIVE, /* peers whose keepalive is off get 0 back */
        PHASE_ACTIVE,
        _PHASE_MAX,
};

static const char *const phase_names[_PHASE_MAX] = {
        [PHASE_PASSIVE] = "passive",
        [PHASE_STAGE_ENDPOINTS] = "staging-endpoints",
        [PHASE_LINK_UP] = "link-up",
        [PHASE_KICK] = "kicking",
        [PHASE_RESTORE_KEEPALIVE] = "restoring-keepalive",
        [PHASE_ACTIVE] = "active",
};

struct known_peer {
        uint8_t public_key[WG_KEY_LEN];
        union wg_endpoint endpoint;
        uint16_t keepalive;              /* the peer's configured persistent keepalive */
        uint64_t learned_ms;             /* wall clock when this endpoint was learned; 0: unknown */
};

struct wg_follower {
        struct hamgr_daemon *daemon;
        struct hamgr_wireguard_config *config;
        char *store_path;
        enum follower_phase phase;
        bool want_active;

        struct known_peer *known;        /* sorted by public key */
        size_t n_known;

        struct known_peer *work;         /* peers of the takeover in progress */
        size_t n_work, work_pos;
        sd_event_source *work_source;
        sd_event_source *snapshot_timer;
        sd_event_source *retake_timer;
        struct route_src_override *routes;
        int active_ifindex;              /* the interface the last takeover brought up */

        uint64_t takeover_started_usec;
        uint64_t takeover_usec;          /* duration of the last takeover */
        size_t last_kicked;
        uint64_t takeovers;
        int last_error;
        int link_checked_ifindex;        /* the link verified to be WireGuard */
        int link_refused_ifindex;        /* the link refused (logged once) */
};

static int known_cmp(const void *a, const void *b) {
        return memcmp(((const struct known_peer *) a)->public_key, ((const struct known_peer *) b)->public_key,
                      WG_KEY_LEN);
}

static struct known_peer *known_find(struct wg_follower *f, const uint8_t key[static WG_KEY_LEN]) {
        struct known_peer k;

        memcpy(k.public_key, key, WG_KEY_LEN);
        return f->n_known ? bsearch(&k, f->known, f->n_known, sizeof(k), known_cmp) : NULL;
}

static uint64_t wall_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static bool endpoint_same(const union wg_endpoint *a, const union wg_endpoint *b) {
        if (a->addr.sa_family != b->addr.sa_family)
                return false;
        if (a->addr.sa_family == AF_INET)
                return a->addr4.sin_port == b->addr4.sin_port && a->addr4.sin_addr.s_addr == b->addr4.sin_addr.s_addr;
        if (a->addr.sa_family == AF_INET6)
                return a->addr6.sin6_port == b->addr6.sin6_port && a->addr6.sin6_scope_id == b->addr6.sin6_scope_id &&
                       memcmp(&a->addr6.sin6_addr, &b->addr6.sin6_addr, sizeof(a->addr6.sin6_addr)) == 0;
        return true;
}

static bool known_equal(const struct known_peer *a, const struct known_peer *b) {
        return memcmp(a->public_key, b->public_key, WG_KEY_LEN) == 0 && endpoint_same(&a->endpoint, &b->endpoint) &&
               a->keepalive == b->keepalive && a->learned_ms == b->learned_ms;
}

/* Add the N peers of ADD, whose keys F does not know yet, keeping the
 * known peers sorted. */
static int known_add(struct wg_follower *f, const struct known_peer *add, size_t n) {
        struct known_peer *grown;

        if (n == 0)
                return 0;
        grown = realloc(f->known, (f->n_known + n) * sizeof(*grown));
        if (!grown)
                return -ENOMEM;
        memcpy(grown + f->n_known, add, n * sizeof(*add));
        f->known = grown;
        f->n_known += n;
        qsort(f->known, f->n_known, sizeof(*f->known), known_cmp);
        return 0;
}

#define log_wg(f, level, ...) \
        log_fields((level), 0, (f)->config->follow, 0, NULL, NULL, "wireguard %s: " LOG_FIRST(__VA_ARGS__), \
                   (f)->config->interface LOG_REST(__VA_ARGS__))

/* ---- the endpoint store ------------------------------------------------- */

/* Text, one peer a line: "BASE64KEY ENDPOINT KEEPALIVE LEARNED_MS" (the
 * first version had no LEARNED_MS; it is still read). Written to a
 * temporary file, synced and renamed over the old one, so a crash leaves
 * either the old or the new file, never half of one. */
static int store_save(struct wg_follower *f) {
        _cleanup_(freep) char *tmp = NULL;
        char key[WG_KEY_B64_LEN], ep[64];
        FILE *out;
        int fd, r = 0;

        if (asprintf(&tmp, "%s.tmp", f->store_path) < 0)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        out = fdopen(fd, "w");
        if (!out) {
                r = -errno;
                close(fd);
                goto fail;
        }
        fprintf(out, "%s\n", WG_STORE_MAGIC);
        for (size_t i = 0; i < f->n_known; i++) {
                wg_key_to_base64(key, f->known[i].public_key);
                fprintf(out, "%s %s %u %" PRIu64 "\n", key,
                        wg_endpoint_to_string(&f->known[i].endpoint, ep, sizeof(ep)), f->known[i].keepalive,
                        f->known[i].learned_ms);
        }
        if (fflush(out) != 0 || fsync(fileno(out)) < 0)
                r = -errno;
        if (fclose(out) != 0 && r == 0)
                r = -errno;
        if (r < 0)
                goto fail;
        if (rename(tmp, f->store_path) < 0) {
                r = -errno;
                goto fail;
        }
        return 0;
fail:
        unlink(tmp);
        return r;
}

static int store_load(struct wg_follower *f) {
        _cleanup_(freep) struct known_peer *known = NULL;
        size_t n = 0, cap = 0;
        char line[256];
        FILE *in;
        bool v1;
        int r = 0, lineno = 0;

        in = fopen(f->store_path, "re");
        if (!in)
                return errno == ENOENT ? 0 : -errno;
        if (!fgets(line, sizeof(line), in)) {
                r = -EBADMSG;
                goto out;
        }
        v1 = streq(line, WG_STORE_MAGIC_V1 "\n");
        if (!v1 && !streq(line, WG_STORE_MAGIC "\n")) {
                r = -EBADMSG;
                goto out;
        }
        lineno = 1;
        while (fgets(line, sizeof(line), in)) {
                char key[64], ep[80];
                unsigned keepalive;
                uint64_t learned = 0;
                struct known_peer k = {};

                lineno++;
                if ((v1 ? sscanf(line, "%63s %79s %u", key, ep, &keepalive) != 3
                        : sscanf(line, "%63s %79s %u %" SCNu64, key, ep, &keepalive, &learned) != 4) ||
                    keepalive > UINT16_MAX || wg_key_from_base64(k.public_key, key) < 0 ||
                    wg_endpoint_parse(ep, &k.endpoint) < 0) {
                        r = -EBADMSG;
                        goto out;
                }
                k.keepalive = (uint16_t) keepalive;
                k.learned_ms = learned;
                if (n == cap) {
                        struct known_peer *g = realloc(known, (cap = cap ? cap * 2 : 64) * sizeof(*known));
                        if (!g) {
                                r = -ENOMEM;
                                goto out;
                        }
                        known = g;
                }
                known[n++] = k;
        }
        qsort(known, n, sizeof(*known), known_cmp);
        free(f->known);
        f->known = TAKE_PTR(known);
        f->n_known = n;
out:
        if (r == -EBADMSG)
                log_wg(f, LOG_WARNING, "%s:%d: corrupt endpoint store, ignoring it", f->store_path, lineno);
        fclose(in);
        return r;
}

/* Learn endpoints and keepalives from the device (while serving it). */
static void follower_snapshot(struct wg_follower *f) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        struct known_peer *known;
        uint64_t now = wall_ms();
        size_t n = 0;
        bool changed;
        int r;

        r = wg_get_device(f->config->backend, f->config->interface, &dev);
        if (r < 0) {
                log_fields(LOG_DEBUG, r, NULL, 0, NULL, NULL, "wireguard %s: cannot read device: %m",
                           f->config->interface);
                return;
        }
        known = calloc(dev->n_peers ? dev->n_peers : 1, sizeof(*known));
        if (!known)
                return;
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];
                struct known_peer *old = known_find(f, p->public_key);
                struct known_peer k = {};

                memcpy(k.public_key, p->public_key, WG_KEY_LEN);
                k.keepalive = p->persistent_keepalive_interval;
                if (p->endpoint.addr.sa_family != AF_UNSPEC) {
                        k.endpoint = p->endpoint;
                        k.learned_ms = old && endpoint_same(&old->endpoint, &p->endpoint) ? old->learned_ms : now;
                } else if (old) {
                        k.endpoint = old->endpoint;
                        k.learned_ms = old->learned_ms;
                } else
                        continue;
                /* A takeover in progress has keepalives at 0 on purpose. */
                if (f->phase != PHASE_ACTIVE && old)
                        k.keepalive = old->keepalive;
                known[n++] = k;
        }
        qsort(known, n, sizeof(*known), known_cmp);
        changed = n != f->n_known;
        for (size_t i = 0; !changed && i < n; i++)
                changed = !known_equal(&known[i], &f->known[i]);
        free(f->known);
        f->known = known;
        f->n_known = n;
        if (changed) {
                r = store_save(f);
                if (r < 0)
                        log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "wireguard %s: cannot save %s: %m",
                                   f->config->interface, f->store_path);
        }
}

/*
 * A device this node does not serve has endpoints only when someone put
 * them there after hamgr last cleared them (wg-quick or wg set before
 * hamgr started, or since), or when hamgr died while serving it.
 * Remembered before they are cleared, so the next takeover restores them
 * and kicks. An endpoint the store already has keeps its time. Another one
 * dates from the peer's last handshake when it had one (what a crash
 * left: the other node may have seen the peer move since), else from now:
 * one just configured is the operator's newest word on where the peer is.
 * The newer of it and the known one wins.
 */
static void follower_note_device(struct wg_follower *f, const struct wg_device *dev) {
        _cleanup_(freep) struct known_peer *add = NULL;
        uint64_t now = wall_ms();
        size_t n_add = 0, changed = 0;
        int r;

        add = calloc(dev->n_peers ? dev->n_peers : 1, sizeof(*add));
        if (!add)
                return;
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];
                struct known_peer *old;
                uint64_t learned;

                if (p->endpoint.addr.sa_family == AF_UNSPEC)
                        continue;
                if (p->last_handshake_time_sec > 0)
                        learned = MIN(now, (uint64_t) p->last_handshake_time_sec * 1000 +
                                                   (uint64_t) p->last_handshake_time_nsec / 1000000);
                else
                        learned = now;
                old = known_find(f, p->public_key);
                if (old) {
                        if (!endpoint_same(&old->endpoint, &p->endpoint) && learned > old->learned_ms) {
                                old->endpoint = p->endpoint;
                                old->learned_ms = learned;
                                changed++;
                        }
                        continue;
                }
                memcpy(add[n_add].public_key, p->public_key, WG_KEY_LEN);
                add[n_add].endpoint = p->endpoint;
                add[n_add].keepalive = p->persistent_keepalive_interval;
                add[n_add].learned_ms = learned;
                n_add++;
        }
        r = known_add(f, add, n_add);
        if (r < 0)
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "wireguard %s: cannot remember the endpoints: %m",
                           f->config->interface);
        else
                changed += n_add;
        if (changed == 0)
                return;
        log_wg(f, LOG_INFO, "remembered %zu endpoint%s set on the device while this node did not serve it", changed,
               changed == 1 ? "" : "s");
        r = store_save(f);
        if (r < 0)
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "wireguard %s: cannot save %s: %m",
                           f->config->interface, f->store_path);
}

static int on_snapshot(sd_event_source *s, uint64_t usec, void *userdata) {
        struct wg_follower *f = userdata;

        if (f->phase == PHASE_ACTIVE)
                follower_snapshot(f);
        sd_event_source_set_time(s, usec + WG_SNAPSHOT_USEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* ---- is it WireGuard? ---------------------------------------------------- */

int wg_interface_verify(const struct hamgr_wireguard_config *w, char *why, size_t len) {
        char kind[WG_LINK_KIND_MAX] = "", sock[256];
        int r;

        r = wg_interface_check(w->backend, w->interface, kind, sizeof(kind));
        if (r == 0 || r == -ENODEV) {
                snprintf(why, len, "%s", r == 0 ? "a WireGuard interface" : "no such interface");
                return r;
        }
        if (r != -EMEDIUMTYPE)
                snprintf(why, len, "cannot tell whether '%s' is a WireGuard interface: %s", w->interface,
                         strerror(-r));
        else if (streq(kind, "tun") && wg_backend_resolve(w->backend, w->interface) != WG_BACKEND_UAPI)
                snprintf(why, len,
                         "'%s' is a TUN device, not a kernel WireGuard interface (backend %s; a userspace "
                         "WireGuard needs backend uapi or auto)",
                         w->interface, wg_backend_to_string(w->backend));
        else if (streq(kind, "tun") && wg_uapi_socket_path(w->interface, sock, sizeof(sock)) >= 0)
                snprintf(why, len,
                         "'%s' is a TUN device whose WireGuard UAPI socket %s does not answer, "
                         "not a WireGuard interface",
                         w->interface, sock);
        else if (!kind[0])
                snprintf(why, len,
                         "'%s' is not a WireGuard interface: it has no link kind (a physical or loopback device)",
                         w->interface);
        else
                snprintf(why, len, "'%s' is not a WireGuard interface: its link kind is '%s'", w->interface, kind);
        return r;
}

int wg_followers_check(const struct hamgr_config *c) {
        int ret = 0;

        for (size_t i = 0; i < c->n_wireguard; i++) {
                const struct hamgr_wireguard_config *w = &c->wireguard[i];
                char why[512];
                int r;

                r = wg_interface_verify(w, why, sizeof(why));
                if (r == -EMEDIUMTYPE) {
                        log_fields(LOG_ERR, r, w->follow, 0, NULL, NULL,
                                   "wireguard entry '%s' (line %d): %s. hamgr takes a followed interface down "
                                   "while this node is not master, so it refuses to manage it: fix the interface "
                                   "name in this entry (a WireGuard interface is one made by 'ip link add NAME "
                                   "type wireguard', wg-quick or wireguard-go)",
                                   w->interface, w->line, why);
                        ret = r;
                } else if (r < 0 && r != -ENODEV)
                        log_fields(LOG_WARNING, r, w->follow, 0, NULL, NULL,
                                   "wireguard entry '%s' (line %d): %s; its link is left alone until it can be "
                                   "verified", w->interface, w->line, why);
        }
        return ret;
}

/* ---- takeover ----------------------------------------------------------- */

static int follower_ifindex(struct wg_follower *f) {
        struct link_info li;

        if (link_monitor_get(f->daemon->links, f->config->interface, &li) < 0)
                return 0;
        return li.ifindex;
}

/* Only a link verified to be WireGuard is ever taken up or down, or gets
 * routes changed for it: an entry naming the uplink by mistake must not
 * cut the node off. Verified once per ifindex, so a link created again
 * under the name is looked at again; a refusal is logged once. */
static int follower_link_verified(struct wg_follower *f, int ifindex) {
        char why[512];
        int r;

        if (ifindex <= 0)
                return -ENODEV;
        if (ifindex == f->link_checked_ifindex)
                return 0;
        r = wg_interface_verify(f->config, why, sizeof(why));
        if (r == -EMEDIUMTYPE) {
                if (ifindex != f->link_refused_ifindex)
                        log_fields(LOG_ERR, r, f->config->follow, 0, NULL, NULL,
                                   "wireguard %s: not touching the link: %s", f->config->interface, why);
                f->link_refused_ifindex = ifindex;
        } else if (r < 0 && r != -ENODEV)
                /* Asked again next time: it may answer then. */
                log_fields(LOG_WARNING, r, f->config->follow, 0, NULL, NULL,
                           "wireguard %s: not touching the link for now: %s", f->config->interface, why);
        if (r < 0) {
                f->last_error = r;
                return r;
        }
        f->link_checked_ifindex = ifindex;
        return 0;
}

/* Returns -EMEDIUMTYPE (and the like) for a refused link, -ENODEV, or the
 * result of setting it. */
static int follower_set_link(struct wg_follower *f, bool up) {
        int ifindex = follower_ifindex(f), r;

        r = follower_link_verified(f, ifindex);
        if (r < 0)
                return r;
        return route_link_set_up(f->daemon->nl, ifindex, up);
}

/* The interface carrying the source address, for the route override. */
static int source_ifindex(struct wg_follower *f) {
        const struct ip_address *src = &f->config->source_address;
        struct hamgr_daemon *d = f->daemon;

        for (size_t i = 0; i < d->n_instances; i++) {
                const struct hamgr_vrrp_config *c = d->instances[i]->config;

                for (size_t k = 0; k < c->n_virtual_ips; k++)
                        if (ip_address_equal(&c->virtual_ips[k].address, src))
                                return d->instances[i]->ifindex;
        }
        return 0;
}

/* Apply one batch of the current phase: peers [work_pos, work_pos + batch). */
static int follower_apply_batch(struct wg_follower *f) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        size_t end = MIN(f->n_work, f->work_pos + WG_BATCH_PEERS);
        int r;

        dev = calloc(1, sizeof(*dev));
        if (!dev)
                return -ENOMEM;
        snprintf(dev->name, sizeof(dev->name), "%s", f->config->interface);
        for (size_t i = f->work_pos; i < end; i++) {
                const struct known_peer *k = &f->work[i];
                struct wg_peer *p;
                uint16_t keepalive;

                if (f->phase == PHASE_RESTORE_KEEPALIVE && k->keepalive != 0)
                        continue;
                p = wg_device_add_peer(dev);
                if (!p)
                        return -ENOMEM;
                memcpy(p->public_key, k->public_key, WG_KEY_LEN);
                /* Never bring back a peer removed meanwhile. */
                p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_UPDATE_ONLY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                switch (f->phase) {
                case PHASE_STAGE_ENDPOINTS:
                        p->flags |= WG_PEER_HAS_ENDPOINT;
                        p->endpoint = k->endpoint;
                        keepalive = 0;
                        break;
                case PHASE_KICK:
                        keepalive = k->keepalive ? k->keepalive : WG_KICK_KEEPALIVE;
                        break;
                default:
                        keepalive = 0;
                        break;
                }
                p->persistent_keepalive_interval = keepalive;
        }
        f->work_pos = end;
        if (dev->n_peers == 0)
                return 0;
        r = wg_set_device(f->config->backend, dev);
        return r;
}

static void follower_release(struct wg_follower *f, const char *why);

static void follower_finish_takeover(struct wg_follower *f) {
        uint64_t now = daemon_now(f->daemon);

        f->phase = PHASE_ACTIVE;
        f->takeover_usec = now - f->takeover_started_usec;
        f->last_kicked = f->n_work;
        f->takeovers++;
        free(f->work);
        f->work = NULL;
        f->n_work = f->work_pos = 0;
        f->work_source = sd_event_source_disable_unref(f->work_source);
        log_wg(f, LOG_NOTICE, "serving tunnels: %zu peer%s kicked into a handshake, %u route%s from %s, in %" PRIu64 " ms",
               f->last_kicked, f->last_kicked == 1 ? "" : "s", route_src_count(f->routes),
               route_src_count(f->routes) == 1 ? "" : "s",
               f->config->source_address.family ? "the virtual IP" : "the default source",
               f->takeover_usec / USEC_PER_MSEC);
}

static int on_work(sd_event_source *s, void *userdata) {
        struct wg_follower *f = userdata;
        int ifindex, r = 0;

        switch (f->phase) {
        case PHASE_STAGE_ENDPOINTS:
        case PHASE_KICK:
        case PHASE_RESTORE_KEEPALIVE:
                r = follower_apply_batch(f);
                if (r < 0)
                        break;
                if (f->work_pos < f->n_work)
                        return 0; /* more next iteration; VRRP goes first */
                f->work_pos = 0;
                f->phase++;
                if (f->phase == PHASE_ACTIVE) {
                        follower_finish_takeover(f);
                        return 0;
                }
                return 0;
        case PHASE_LINK_UP:
                ifindex = follower_ifindex(f);
                r = follower_link_verified(f, ifindex);
                if (r < 0)
                        break;
                if (f->config->source_address.family != AF_UNSPEC && !f->routes) {
                        int src_if = source_ifindex(f);
                        unsigned failed = 0;

                        if (src_if > 0) {
                                r = route_src_override(f->daemon->nl, src_if, &f->config->source_address,
                                                       &f->routes, &failed);
                                if (r < 0 || failed > 0)
                                        log_wg(f, LOG_WARNING, "could not make the virtual IP the source of %u route%s",
                                               failed, failed == 1 ? "" : "s");
                        }
                }
                r = follower_set_link(f, true);
                if (r < 0)
                        break;
                f->active_ifindex = ifindex;
                f->phase = PHASE_KICK;
                return 0;
        default:
                f->work_source = sd_event_source_disable_unref(f->work_source);
                return 0;
        }
        f->last_error = r;
        log_fields(LOG_ERR, r, f->config->follow, 0, NULL, NULL, "wireguard %s: takeover failed in phase %s: %m",
                   f->config->interface, phase_names[f->phase]);
        /* Serve what we can: the link up beats a half-done takeover. */
        f->phase = PHASE_ACTIVE;
        f->work_source = sd_event_source_disable_unref(f->work_source);
        (void) follower_set_link(f, true);
        return 0;
}

static void follower_takeover(struct wg_follower *f) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        int r;

        f->takeover_started_usec = daemon_now(f->daemon);
        f->last_error = 0;
        r = wg_get_device(f->config->backend, f->config->interface, &dev);
        if (r < 0) {
                f->last_error = r;
                log_fields(LOG_ERR, r, f->config->follow, 0, NULL, NULL,
                           "wireguard %s: cannot read the device for takeover: %m", f->config->interface);
                f->phase = PHASE_ACTIVE;
                return;
        }
        follower_note_device(f, dev);
        free(f->work);
        f->work = calloc(dev->n_peers ? dev->n_peers : 1, sizeof(*f->work));
        f->n_work = f->work_pos = 0;
        if (!f->work) {
                f->phase = PHASE_ACTIVE;
                return;
        }
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];
                const struct known_peer *k = known_find(f, p->public_key);
                struct known_peer w = {};

                memcpy(w.public_key, p->public_key, WG_KEY_LEN);
                if (k)
                        w.endpoint = k->endpoint;
                else if (p->endpoint.addr.sa_family != AF_UNSPEC)
                        w.endpoint = p->endpoint; /* only when it could not be remembered */
                else
                        continue; /* nowhere to send an initiation: the client will come to us */
                w.keepalive = p->persistent_keepalive_interval;
                /* A takeover cut short (crash) may have left 0: the store knows better. */
                if (w.keepalive == 0 && k)
                        w.keepalive = k->keepalive;
                f->work[f->n_work++] = w;
        }
        f->phase = PHASE_STAGE_ENDPOINTS;
        r = sd_event_add_defer(f->daemon->event, &f->work_source, on_work, f);
        if (r >= 0)
                r = sd_event_source_set_priority(f->work_source, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(f->work_source, SD_EVENT_ON);
        if (r < 0) {
                f->last_error = r;
                f->phase = PHASE_ACTIVE;
        }
        log_wg(f, LOG_INFO, "taking over: %zu of %zu peers have a known endpoint", f->n_work, dev->n_peers);
}

/*
 * Link down is not enough: wireguard-go keeps its UDP socket and timers
 * while its TUN is down and would, ~15 s later, send a handshake from the
 * node's own address, making clients roam away from the VIP. Removing and
 * re-adding every peer that has an endpoint drops the endpoint and the
 * session keys, so a passive node has nobody to send to. The peers keep
 * their keys, allowed IPs and keepalives.
 */
static int follower_strip_endpoints(struct wg_follower *f) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL, *removals = NULL, *readds = NULL;
        int r;

        r = wg_get_device(f->config->backend, f->config->interface, &dev);
        if (r < 0)
                return r;
        follower_note_device(f, dev);
        removals = calloc(1, sizeof(*removals));
        readds = calloc(1, sizeof(*readds));
        if (!removals || !readds)
                return -ENOMEM;
        snprintf(removals->name, sizeof(removals->name), "%s", f->config->interface);
        snprintf(readds->name, sizeof(readds->name), "%s", f->config->interface);
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];
                struct wg_peer *rm, *add;

                if (p->endpoint.addr.sa_family == AF_UNSPEC)
                        continue;
                rm = wg_device_add_peer(removals);
                add = wg_device_add_peer(readds);
                if (!rm || !add)
                        return -ENOMEM;
                memcpy(rm->public_key, p->public_key, WG_KEY_LEN);
                rm->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME;
                memcpy(add->public_key, p->public_key, WG_KEY_LEN);
                add->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS |
                             WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                add->persistent_keepalive_interval = p->persistent_keepalive_interval;
                if (!wg_key_is_zero(p->preshared_key)) {
                        memcpy(add->preshared_key, p->preshared_key, WG_KEY_LEN);
                        add->flags |= WG_PEER_HAS_PRESHARED_KEY;
                }
                for (size_t k = 0; k < p->n_allowedips; k++) {
                        r = wg_peer_add_allowedip(add, &p->allowedips[k]);
                        if (r < 0)
                                return r;
                }
        }
        if (removals->n_peers == 0)
                return 0;
        r = wg_set_device(f->config->backend, removals);
        if (r < 0)
                return r;
        return wg_set_device(f->config->backend, readds);
}

static void follower_release(struct wg_follower *f, const char *why) {
        int r;

        if (f->phase == PHASE_ACTIVE)
                follower_snapshot(f);
        f->work_source = sd_event_source_disable_unref(f->work_source);
        f->retake_timer = sd_event_source_disable_unref(f->retake_timer);
        f->active_ifindex = 0;
        free(f->work);
        f->work = NULL;
        f->n_work = f->work_pos = 0;
        r = follower_set_link(f, false);
        if (r < 0 && r != -ENODEV && f->link_checked_ifindex == follower_ifindex(f))
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "wireguard %s: cannot set the link down: %m",
                           f->config->interface);
        r = follower_strip_endpoints(f);
        if (r < 0 && r != -ENODEV)
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL,
                           "wireguard %s: cannot clear the peers' endpoints: %m", f->config->interface);
        route_src_restore(f->daemon->nl, f->routes);
        f->routes = NULL;
        if (f->phase != PHASE_PASSIVE)
                log_wg(f, LOG_NOTICE, "passive (%s): link down", why);
        f->phase = PHASE_PASSIVE;
}

/* ---- following ---------------------------------------------------------- */

static bool follow_is_master(struct hamgr_daemon *d, const char *name) {
        for (size_t i = 0; i < d->n_groups; i++) {
                const struct hamgr_group_rt *g = d->groups[i];

                if (!g->name || !streq(g->name, name))
                        continue;
                for (size_t m = 0; m < g->n_members; m++)
                        if (g->members[m]->fsm.state != VRRP_STATE_MASTER)
                                return false;
                return g->n_members > 0;
        }
        for (size_t i = 0; i < d->n_instances; i++)
                if (streq(d->instances[i]->config->name, name))
                        return d->instances[i]->fsm.state == VRRP_STATE_MASTER;
        return false;
}

static struct wg_follower *follower_free(struct wg_follower *f) {
        if (!f)
                return NULL;
        sd_event_source_disable_unref(f->work_source);
        sd_event_source_disable_unref(f->snapshot_timer);
        sd_event_source_disable_unref(f->retake_timer);
        free(f->work);
        free(f->known);
        free(f->store_path);
        free(f);
        return NULL;
}

static int follower_new(struct hamgr_daemon *d, struct hamgr_wireguard_config *config, struct wg_follower **ret) {
        struct wg_follower *f;
        int r;

        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->daemon = d;
        f->config = config;
        if (asprintf(&f->store_path, "%s/wireguard-%s.endpoints", d->config->state_dir, config->interface) < 0) {
                f->store_path = NULL;
                follower_free(f);
                return -ENOMEM;
        }
        (void) mkdir(d->config->state_dir, 0700);
        r = store_load(f);
        if (r < 0 && r != -EBADMSG)
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "wireguard %s: cannot read %s: %m", config->interface,
                           f->store_path);
        r = sd_event_add_time_relative(d->event, &f->snapshot_timer, CLOCK_MONOTONIC, WG_SNAPSHOT_USEC,
                                       USEC_PER_SEC / 10, on_snapshot, f);
        if (r < 0) {
                follower_free(f);
                return r;
        }
        /* Start passive whatever the link was: a node only serves tunnels
         * once VRRP made it master. Not PASSIVE yet, so release acts. */
        f->phase = PHASE_LINK_UP;
        follower_release(f, "starting");
        log_wg(f, LOG_INFO, "following %s, %zu known endpoint%s, backend %s", config->follow, f->n_known,
               f->n_known == 1 ? "" : "s", wg_backend_to_string(wg_backend_resolve(config->backend, config->interface)));
        *ret = f;
        return 0;
}

int wg_followers_start(struct hamgr_daemon *d) {
        struct hamgr_config *c = d->config;
        int r;

        /* Before any link is touched. */
        r = wg_followers_check(c);
        if (r < 0)
                return r;
        d->followers = calloc(c->n_wireguard ? c->n_wireguard : 1, sizeof(*d->followers));
        if (!d->followers)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_wireguard; i++) {
                r = follower_new(d, &c->wireguard[i], &d->followers[d->n_followers]);
                if (r < 0)
                        return r;
                d->n_followers++;
        }
        return 0;
}

int wg_followers_reload(struct hamgr_daemon *d) {
        struct hamgr_config *c = d->config;
        struct wg_follower **next;
        size_t n = 0;
        int r = 0;

        next = calloc(c->n_wireguard ? c->n_wireguard : 1, sizeof(*next));
        if (!next)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_wireguard; i++) {
                struct hamgr_wireguard_config *w = &c->wireguard[i];

                for (size_t k = 0; k < d->n_followers; k++) {
                        struct wg_follower *f = d->followers[k];

                        if (f && streq(f->config->interface, w->interface) && f->config->backend == w->backend &&
                            streq(f->config->follow, w->follow) &&
                            (f->config->source_address.family == w->source_address.family &&
                             (!w->source_address.family ||
                              ip_address_equal(&f->config->source_address, &w->source_address)))) {
                                f->config = w;
                                next[n++] = f;
                                d->followers[k] = NULL;
                                break;
                        }
                }
        }
        for (size_t k = 0; k < d->n_followers; k++)
                if (d->followers[k]) {
                        follower_release(d->followers[k], "removed by reload");
                        follower_free(d->followers[k]);
                }
        free(d->followers);
        d->followers = next;
        d->n_followers = n;
        for (size_t i = 0; i < c->n_wireguard; i++) {
                bool have = false;

                for (size_t k = 0; k < n; k++)
                        have |= next[k]->config == &c->wireguard[i];
                if (have)
                        continue;
                r = follower_new(d, &c->wireguard[i], &next[d->n_followers]);
                if (r < 0)
                        break;
                d->n_followers++;
        }
        wg_followers_update(d);
        return r;
}

void wg_followers_update(struct hamgr_daemon *d) {
        for (size_t i = 0; i < d->n_followers; i++) {
                struct wg_follower *f = d->followers[i];
                bool master = !d->stopping && follow_is_master(d, f->config->follow);

                if (master && f->phase == PHASE_PASSIVE)
                        follower_takeover(f);
                else if (!master && f->phase != PHASE_PASSIVE)
                        follower_release(f, d->stopping ? "stopping" : "no longer master");
        }
}

static int on_retake(sd_event_source *s, uint64_t usec, void *userdata) {
        struct wg_follower *f = userdata;

        f->retake_timer = sd_event_source_disable_unref(f->retake_timer);
        if (f->phase == PHASE_ACTIVE)
                follower_takeover(f);
        return 0;
}

void wg_followers_links_changed(struct hamgr_daemon *d) {
        for (size_t i = 0; i < d->n_followers; i++) {
                struct wg_follower *f = d->followers[i];
                struct link_info li;

                /* The interface of an active follower was re-created (a
                 * wireguard-go restart): it is down, without endpoints or
                 * sessions, and nobody else brings it up or kicks the
                 * clients. Take over again once it is configured. */
                if (f->phase == PHASE_ACTIVE && f->active_ifindex > 0 && !f->retake_timer &&
                    link_monitor_get(d->links, f->config->interface, &li) >= 0 && li.ifindex != f->active_ifindex) {
                        int r;

                        f->active_ifindex = li.ifindex;
                        r = sd_event_add_time_relative(d->event, &f->retake_timer, CLOCK_MONOTONIC, WG_RETAKE_USEC,
                                                       USEC_PER_SEC / 10, on_retake, f);
                        if (r < 0)
                                log_fields(LOG_WARNING, r, f->config->follow, 0, NULL, NULL,
                                           "wireguard %s: re-created while active, cannot schedule a new takeover: %m",
                                           f->config->interface);
                        else
                                log_wg(f, LOG_NOTICE, "interface re-created while this node is master, "
                                       "taking over again in %u ms", (unsigned) (WG_RETAKE_USEC / USEC_PER_MSEC));
                        continue;
                }

                /* A passive interface brought up by someone else (wg-quick,
                 * a restarted wireguard-go) would answer clients too. */
                if (f->phase == PHASE_PASSIVE && link_monitor_get(d->links, f->config->interface, &li) >= 0 &&
                    li.up_admin && li.ifindex != f->link_refused_ifindex) {
                        log_wg(f, LOG_NOTICE, "interface came up while this node is passive, taking it down");
                        f->phase = PHASE_LINK_UP;
                        follower_release(f, "interface came up while passive");
                }
        }
}

void wg_followers_rekick(struct hamgr_daemon *d, const char *instance, const char *group) {
        uint64_t now = daemon_now(d);
        int r;

        for (size_t i = 0; i < d->n_followers; i++) {
                struct wg_follower *f = d->followers[i];

                if (f->phase != PHASE_ACTIVE || now - f->takeover_started_usec < WG_REKICK_HOLDOFF_USEC)
                        continue;
                if (!streq(f->config->follow, instance) && !(group && streq(f->config->follow, group)))
                        continue;
                log_wg(f, LOG_NOTICE, "another master served meanwhile, kicking the peers into a handshake again");
                /* The device's endpoints are the freshest: into the store
                 * first, which the takeover prefers. Then the sessions go:
                 * with one still valid the kick sends a keepalive on it
                 * instead of a handshake, and the client, whose newest
                 * session is with the other node, would not answer on it. */
                follower_snapshot(f);
                r = follower_strip_endpoints(f);
                if (r < 0)
                        log_fields(LOG_WARNING, r, f->config->follow, 0, NULL, NULL,
                                   "wireguard %s: cannot reset the sessions: %m", f->config->interface);
                follower_takeover(f);
        }
}

void wg_followers_release_lost(struct hamgr_daemon *d) {
        for (size_t i = 0; i < d->n_followers; i++) {
                struct wg_follower *f = d->followers[i];

                if (f->phase != PHASE_PASSIVE && (d->stopping || !follow_is_master(d, f->config->follow)))
                        follower_release(f, d->stopping ? "stopping" : "no longer master");
        }
}

void wg_followers_stop(struct hamgr_daemon *d) {
        for (size_t i = 0; i < d->n_followers; i++) {
                follower_release(d->followers[i], "stopping");
                follower_free(d->followers[i]);
        }
        free(d->followers);
        d->followers = NULL;
        d->n_followers = 0;
}

void wg_follower_learn(struct hamgr_daemon *d, const char *ifname, const struct wg_device *dev,
                       const uint64_t *learned_ms) {
        for (size_t i = 0; i < d->n_followers; i++) {
                struct wg_follower *f = d->followers[i];
                _cleanup_(freep) struct known_peer *add = NULL;
                uint64_t now = wall_ms();
                size_t n_add = 0;
                bool changed = false;

                if (!streq(f->config->interface, ifname) || f->phase == PHASE_ACTIVE)
                        continue; /* the master knows better than what it replicated */
                add = calloc(dev->n_peers + 1, sizeof(*add));
                if (!add)
                        return;
                for (size_t k = 0; k < dev->n_peers; k++) {
                        const struct wg_peer *p = &dev->peers[k];
                        struct known_peer *old = known_find(f, p->public_key);
                        uint64_t learned = learned_ms ? learned_ms[k] : now;

                        if (p->endpoint.addr.sa_family == AF_UNSPEC)
                                continue;
                        if (old) {
                                /* The newer wins: an endpoint configured here
                                 * after the master last saw the peer elsewhere
                                 * stays. */
                                if (!endpoint_same(&old->endpoint, &p->endpoint) && learned > old->learned_ms) {
                                        old->endpoint = p->endpoint;
                                        old->learned_ms = learned;
                                        changed = true;
                                }
                                if (old->keepalive != p->persistent_keepalive_interval) {
                                        old->keepalive = p->persistent_keepalive_interval;
                                        changed = true;
                                }
                                continue;
                        }
                        memcpy(add[n_add].public_key, p->public_key, WG_KEY_LEN);
                        add[n_add].endpoint = p->endpoint;
                        add[n_add].keepalive = p->persistent_keepalive_interval;
                        add[n_add].learned_ms = learned;
                        n_add++;
                }
                if (known_add(f, add, n_add) < 0)
                        return;
                changed |= n_add > 0;
                if (changed && store_save(f) < 0)
                        log_wg(f, LOG_WARNING, "cannot save %s", f->store_path);
        }
}

bool wg_follower_busy(struct hamgr_daemon *d, const char *ifname) {
        for (size_t i = 0; i < d->n_followers; i++)
                if (streq(d->followers[i]->config->interface, ifname))
                        return d->followers[i]->phase != PHASE_PASSIVE && d->followers[i]->phase != PHASE_ACTIVE;
        return false;
}

bool wg_follower_active(struct hamgr_daemon *d, const char *ifname) {
        for (size_t i = 0; i < d->n_followers; i++)
                if (streq(d->followers[i]->config->interface, ifname))
                        return d->followers[i]->phase != PHASE_PASSIVE;
        return false;
}

bool wg_follower_link_expected_up(struct hamgr_daemon *d, const char *ifname) {
        for (size_t i = 0; i < d->n_followers; i++)
                if (streq(d->followers[i]->config->interface, ifname))
                        switch (d->followers[i]->phase) {
                        case PHASE_KICK:
                        case PHASE_RESTORE_KEEPALIVE:
                        case PHASE_ACTIVE:
                                return true;
                        default:
                                return false;
                        }
        return false;
}

void wg_followers_status_json(struct hamgr_daemon *d, struct buf *b) {
        char addr[INET6_ADDRSTRLEN];

        buf_printf(b, "[");
        for (size_t i = 0; i < d->n_followers; i++) {
                const struct wg_follower *f = d->followers[i];

                buf_printf(b, "%s{\"interface\":", i ? "," : "");
                buf_json_string(b, f->config->interface);
                buf_printf(b, ",\"backend\":\"%s\",\"follow\":",
                           wg_backend_to_string(wg_backend_resolve(f->config->backend, f->config->interface)));
                buf_json_string(b, f->config->follow);
                buf_printf(b, ",\"source_address\":");
                if (f->config->source_address.family)
                        buf_json_string(b, ip_address_to_string(&f->config->source_address, addr, sizeof(addr)));
                else
                        buf_printf(b, "null");
                buf_printf(b,
                           ",\"phase\":\"%s\",\"known_endpoints\":%zu,\"takeovers\":%" PRIu64
                           ",\"last_takeover_ms\":%" PRIu64 ",\"last_kicked\":%zu,\"source_routes\":%u,\"last_error\":%d}",
                           phase_names[f->phase], f->n_known, f->takeovers, f->takeover_usec / USEC_PER_MSEC,
                           f->last_kicked, route_src_count(f->routes), f->last_error);
        }
        buf_printf(b, "]");
}

void wg_followers_status_text(struct hamgr_daemon *d, struct buf *b) {
        for (size_t i = 0; i < d->n_followers; i++) {
                const struct wg_follower *f = d->followers[i];

                buf_printf(b, "wireguard %s: %s, follows %s, %zu known endpoint%s", f->config->interface,
                           phase_names[f->phase], f->config->follow, f->n_known, f->n_known == 1 ? "" : "s");
                if (f->takeovers > 0)
                        buf_printf(b, ", last takeover %zu peer%s in %" PRIu64 " ms", f->last_kicked,
                                   f->last_kicked == 1 ? "" : "s", f->takeover_usec / USEC_PER_MSEC);
                buf_printf(b, "\n");
        }
}
