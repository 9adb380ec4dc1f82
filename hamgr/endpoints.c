/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Spoke side: keep one peer pointed at a gateway that answers. A peer is
 * healthy while it had a handshake, or received anything, within
 * stale_after_s; otherwise it moves to the next candidate endpoint. An idle
 * peer is asked for a handshake halfway to stale, since gateways do not
 * answer keepalives. Moving (and asking) removes and re-adds the peer, so
 * the old session is dropped and a fresh handshake starts at once. Names
 * are resolved at each move, asynchronously, so a slow resolver never holds
 * the event loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "daemon.h"
#include "endpoints.h"
#include "health/probe.h"
#include "json-util.h"
#include "log.h"
#include "strbuf.h"
#include "sync.h"
#include "wg/key.h"
#include "wg/wg.h"

#define ENDPOINT_POLL_USEC      USEC_PER_SEC
#define ENDPOINT_KICK_KEEPALIVE 25
#define RESOLVE_POLL_USEC       (50 * USEC_PER_MSEC)
#define RESOLVE_TIMEOUT_USEC    (5 * USEC_PER_SEC)

struct endpoint_rt {
        struct hamgr_daemon *daemon;
        const struct hamgr_endpoint_config *config;
        sd_event_source *timer;
        size_t current;                 /* index into candidates */
        union wg_endpoint endpoint;     /* what the peer was last given */
        uint64_t last_rx_bytes;
        uint64_t last_progress_usec;    /* last handshake or rx growth we saw */
        uint64_t switched_usec;
        uint64_t kicked_usec;           /* last handshake asked of the current endpoint */
        uint64_t rotations;
        bool peer_missing_logged;

        /* A name lookup in flight, for candidate `resolving`. */
        struct gaicb gai;
        struct gaicb *gai_list[1];
        struct addrinfo gai_hints;
        char *gai_host, *gai_port;
        bool resolving;
        size_t resolving_index;
        uint64_t resolve_started_usec;
        bool probing_first;             /* the lookup is for the prefer_first probe */

        int probe_fd;                   /* ICMP echo to the first candidate */
        sd_event_source *probe_io;
        uint16_t probe_seq;
        struct ip_address first_address;
        bool first_answered;
};

#define log_ep(e, level, ...) \
        log_fields((level), 0, NULL, 0, NULL, NULL, "endpoint %s: " LOG_FIRST(__VA_ARGS__), \
                   (e)->config->interface LOG_REST(__VA_ARGS__))

/* "host:port" or "[v6]:port" -> host, port (malloc'd). */
static int split_candidate(const char *s, char **ret_host, char **ret_port) {
        const char *colon;
        char *host, *port;

        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                host = strndup(s + 1, (size_t) (close - s - 1));
                port = strdup(close + 2);
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                host = strndup(s, (size_t) (colon - s));
                port = strdup(colon + 1);
        }
        if (!host || !port) {
                free(host);
                free(port);
                return -ENOMEM;
        }
        *ret_host = host;
        *ret_port = port;
        return 0;
}

static void resolve_cancel(struct endpoint_rt *e) {
        if (!e->resolving)
                return;
        if (gai_cancel(&e->gai) == EAI_NOTCANCELED) {
                /* glibc still owns the request; wait it out so the buffers stay valid. */
                const struct gaicb *l[1] = { &e->gai };
                gai_suspend(l, 1, NULL);
        }
        if (e->gai.ar_result)
                freeaddrinfo(e->gai.ar_result);
        e->gai.ar_result = NULL;
        free(e->gai_host);
        free(e->gai_port);
        e->gai_host = e->gai_port = NULL;
        e->resolving = false;
}

static int resolve_start(struct endpoint_rt *e, size_t index) {
        int r;

        resolve_cancel(e);
        r = split_candidate(e->config->candidates[index], &e->gai_host, &e->gai_port);
        if (r < 0)
                return r;
        e->gai_hints = (struct addrinfo) { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM };
        e->gai = (struct gaicb) { .ar_name = e->gai_host, .ar_service = e->gai_port, .ar_request = &e->gai_hints };
        e->gai_list[0] = &e->gai;
        r = getaddrinfo_a(GAI_NOWAIT, e->gai_list, 1, NULL);
        if (r != 0) {
                free(e->gai_host);
                free(e->gai_port);
                e->gai_host = e->gai_port = NULL;
                return -EAGAIN;
        }
        e->resolving = true;
        e->resolving_index = index;
        e->resolve_started_usec = daemon_now(e->daemon);
        return 0;
}

/* Returns 1 with *ret when the lookup finished well, 0 while in progress,
 * or -errno when it failed (then nothing is in flight any more). */
static int resolve_poll(struct endpoint_rt *e, union wg_endpoint *ret) {
        int g = gai_error(&e->gai);

        if (g == EAI_INPROGRESS) {
                if (daemon_now(e->daemon) - e->resolve_started_usec < RESOLVE_TIMEOUT_USEC)
                        return 0;
                log_ep(e, LOG_WARNING, "resolving %s timed out", e->config->candidates[e->resolving_index]);
                resolve_cancel(e);
                return -ETIMEDOUT;
        }
        if (g != 0 || !e->gai.ar_result) {
                log_ep(e, LOG_WARNING, "cannot resolve %s: %s", e->config->candidates[e->resolving_index],
                       gai_strerror(g));
                resolve_cancel(e);
                return -EHOSTUNREACH;
        }
        memset(ret, 0, sizeof(*ret));
        memcpy(ret, e->gai.ar_result->ai_addr, MIN((size_t) e->gai.ar_result->ai_addrlen, sizeof(*ret)));
        resolve_cancel(e);
        return 1;
}

/* ---- moving the peer ---------------------------------------------------- */

/* The spoke's own backend setting, else that of a wireguard entry for the
 * same interface, else AUTO. */
static enum wg_backend ep_backend(const struct endpoint_rt *e) {
        const struct hamgr_config *c = e->daemon->config;

        if (e->config->backend != WG_BACKEND_AUTO)
                return e->config->backend;
        for (size_t i = 0; i < c->n_wireguard; i++)
                if (streq(c->wireguard[i].interface, e->config->interface))
                        return c->wireguard[i].backend;
        return WG_BACKEND_AUTO;
}

static int peer_move(struct endpoint_rt *e, const union wg_endpoint *to) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL, *change = NULL;
        const struct hamgr_endpoint_config *c = e->config;
        struct wg_peer *cur, *p;
        int r;

        r = wg_get_device(ep_backend(e), c->interface, &dev);
        if (r < 0)
                return r;
        wg_device_sort(dev);
        cur = wg_device_find_peer(dev, c->peer);
        if (!cur)
                return -ENOENT;

        change = calloc(1, sizeof(*change));
        if (!change)
                return -ENOMEM;
        snprintf(change->name, sizeof(change->name), "%s", c->interface);
        /* Removing drops the session, so the re-added peer must handshake
         * with the new endpoint instead of sending on stale keys. The
         * removal and the re-creation go in one request (wg.h): a crash
         * between them would lose the peer. */
        p = wg_device_add_peer(change);
        if (!p)
                return -ENOMEM;
        memcpy(p->public_key, c->peer, WG_KEY_LEN);
        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME;
        p = wg_device_add_peer(change);
        if (!p)
                return -ENOMEM;
        memcpy(p->public_key, c->peer, WG_KEY_LEN);
        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_ENDPOINT | WG_PEER_REPLACE_ALLOWEDIPS |
                   WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        p->endpoint = *to;
        if (!wg_key_is_zero(cur->preshared_key)) {
                memcpy(p->preshared_key, cur->preshared_key, WG_KEY_LEN);
                p->flags |= WG_PEER_HAS_PRESHARED_KEY;
        }
        /* A new peer with a keepalive sends one at once: that is the kick. */
        p->persistent_keepalive_interval =
                cur->persistent_keepalive_interval ? cur->persistent_keepalive_interval : ENDPOINT_KICK_KEEPALIVE;
        p->allowedips = cur->allowedips;
        p->n_allowedips = cur->n_allowedips;
        sync_device_written(e->daemon, c->interface);
        r = wg_set_device(ep_backend(e), change);
        p->allowedips = NULL; /* borrowed from dev */
        p->n_allowedips = 0;
        if (r < 0)
                return r;
        if (cur->persistent_keepalive_interval == 0) {
                /* One entry (the removal must not run again), same key. */
                change->n_peers = 1;
                p = &change->peers[0];
                p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_UPDATE_ONLY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                p->persistent_keepalive_interval = 0;
                r = wg_set_device(ep_backend(e), change);
        }
        return r;
}

static void rotate_to(struct endpoint_rt *e, size_t index, const union wg_endpoint *to, const char *why) {
        char a[80], b[80];
        int r;

        r = peer_move(e, to);
        if (r < 0) {
                log_fields(LOG_ERR, r, NULL, 0, NULL, NULL, "endpoint %s: cannot move the peer to %s: %m",
                           e->config->interface, e->config->candidates[index]);
                return;
        }
        log_ep(e, LOG_NOTICE, "peer moved from %s to %s (%s, %s)",
               e->endpoint.addr.sa_family ? wg_endpoint_to_string(&e->endpoint, a, sizeof(a)) : "none",
               wg_endpoint_to_string(to, b, sizeof(b)), e->config->candidates[index], why);
        e->current = index;
        e->endpoint = *to;
        e->last_rx_bytes = 0; /* a re-added peer counts from zero */
        e->rotations++;
        e->switched_usec = e->last_progress_usec = daemon_now(e->daemon);
        e->first_answered = false;
}

/* ---- the prefer_first probe --------------------------------------------- */

static void probe_stop(struct endpoint_rt *e) {
        e->probe_io = sd_event_source_disable_unref(e->probe_io);
        if (e->probe_fd >= 0)
                close(e->probe_fd);
        e->probe_fd = -1;
}

static int on_probe(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct endpoint_rt *e = userdata;
        uint16_t id = (uint16_t) (getpid() ^ 0x5a5a);

        for (;;) {
                int r = health_icmp_receive(fd, &e->first_address, id, e->probe_seq);
                if (r == -EAGAIN)
                        return 0;
                if (r < 0) {
                        probe_stop(e);
                        return 0;
                }
                if (r == 1) {
                        e->first_answered = true;
                        probe_stop(e);
                        return 0;
                }
        }
}

static void probe_first(struct endpoint_rt *e, const union wg_endpoint *first) {
        uint16_t id = (uint16_t) (getpid() ^ 0x5a5a);

        probe_stop(e);
        memset(&e->first_address, 0, sizeof(e->first_address));
        e->first_address.family = first->addr.sa_family;
        if (first->addr.sa_family == AF_INET)
                e->first_address.addr.in = first->addr4.sin_addr;
        else if (first->addr.sa_family == AF_INET6)
                e->first_address.addr.in6 = first->addr6.sin6_addr;
        else
                return;
        e->probe_seq++;
        if (health_icmp_send(&e->first_address, id, e->probe_seq, &e->probe_fd) < 0)
                return;
        if (sd_event_add_io(e->daemon->event, &e->probe_io, e->probe_fd, EPOLLIN, on_probe, e) < 0)
                probe_stop(e);
}

/* ---- the poll ----------------------------------------------------------- */

static bool endpoint_equal(const union wg_endpoint *a, const union wg_endpoint *b) {
        if (a->addr.sa_family != b->addr.sa_family)
                return false;
        if (a->addr.sa_family == AF_INET)
                return a->addr4.sin_port == b->addr4.sin_port &&
                       a->addr4.sin_addr.s_addr == b->addr4.sin_addr.s_addr;
        if (a->addr.sa_family == AF_INET6)
                return a->addr6.sin6_port == b->addr6.sin6_port &&
                       memcmp(&a->addr6.sin6_addr, &b->addr6.sin6_addr, sizeof(a->addr6.sin6_addr)) == 0;
        return a->addr.sa_family == AF_UNSPEC;
}

/* Index of the numeric candidate equal to EP, or FALLBACK (names are not
 * resolved here: that would block the loop). */
static size_t candidate_of(const struct hamgr_endpoint_config *c, const union wg_endpoint *ep, size_t fallback) {
        for (size_t i = 0; i < c->n_candidates; i++) {
                union wg_endpoint cand;

                if (wg_endpoint_parse(c->candidates[i], &cand) >= 0 && endpoint_equal(&cand, ep))
                        return i;
        }
        return fallback;
}

static void endpoint_poll(struct endpoint_rt *e) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        const struct hamgr_endpoint_config *c = e->config;
        uint64_t now = daemon_now(e->daemon), stale = (uint64_t) c->stale_after_s * USEC_PER_SEC;
        struct timespec wall;
        struct wg_peer *p;
        union wg_endpoint to;
        int r;

        if (e->resolving) {
                r = resolve_poll(e, &to);
                if (r == 0)
                        return;
                if (r > 0 && e->probing_first) {
                        e->probing_first = false;
                        if (e->first_answered)
                                rotate_to(e, 0, &to, "the first candidate answers again");
                        else
                                probe_first(e, &to);
                } else if (r > 0)
                        rotate_to(e, e->resolving_index, &to, "handshake stale");
                else if (!e->probing_first)
                        /* Try the one after next time round. */
                        e->current = e->resolving_index;
                e->probing_first = false;
                return;
        }

        r = wg_get_device(ep_backend(e), c->interface, &dev);
        if (r < 0)
                return;
        wg_device_sort(dev);
        p = wg_device_find_peer(dev, c->peer);
        if (!p) {
                if (!e->peer_missing_logged)
                        log_ep(e, LOG_WARNING, "the peer is not configured on the interface");
                e->peer_missing_logged = true;
                return;
        }
        e->peer_missing_logged = false;
        if (!endpoint_equal(&p->endpoint, &e->endpoint)) {
                char a[80];

                /* First sight: a restarted daemon may find the peer on a
                 * fallback, and traffic before our start is no progress.
                 * Later: WireGuard roamed to where an authenticated packet
                 * came from (another gateway with the same key). */
                if (e->endpoint.addr.sa_family == AF_UNSPEC)
                        e->last_rx_bytes = p->rx_bytes;
                else
                        log_ep(e, LOG_INFO, "peer roamed to %s",
                               wg_endpoint_to_string(&p->endpoint, a, sizeof(a)));
                e->endpoint = p->endpoint;
                e->current = candidate_of(c, &p->endpoint, e->current);
        }
        clock_gettime(CLOCK_REALTIME, &wall);
        if (p->rx_bytes != e->last_rx_bytes ||
            (p->last_handshake_time_sec > 0 && wall.tv_sec - p->last_handshake_time_sec < (int64_t) c->stale_after_s))
                e->last_progress_usec = now;
        e->last_rx_bytes = p->rx_bytes;

        if (now - e->last_progress_usec >= stale && now - e->switched_usec >= stale) {
                size_t next = (e->current + 1) % c->n_candidates;

                e->probing_first = false;
                if (resolve_start(e, next) < 0)
                        e->current = next;
                return;
        }
        /* A gateway does not answer keepalives, so an idle tunnel shows no
         * progress although it works. Halfway to stale, once per quiet
         * spell, ask the current endpoint for a new handshake: a live
         * gateway answers within a round trip, a dead one lets it go stale. */
        if (now - e->last_progress_usec >= stale / 2 && e->kicked_usec <= e->last_progress_usec &&
            p->endpoint.addr.sa_family != AF_UNSPEC) {
                e->kicked_usec = now;
                r = peer_move(e, &p->endpoint);
                if (r < 0) {
                        log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL,
                                   "endpoint %s: cannot ask for a handshake: %m", c->interface);
                        return;
                }
                e->last_rx_bytes = 0; /* a re-added peer counts from zero */
                log_ep(e, LOG_DEBUG, "quiet for %" PRIu64 " ms, asked for a handshake",
                       (now - e->last_progress_usec) / USEC_PER_MSEC);
                return;
        }
        /* On a fallback candidate with prefer_first: look for the first one
         * answering ICMP, without disturbing the working tunnel. */
        if (c->prefer_first && e->current != 0 && now - e->switched_usec >= stale) {
                e->probing_first = true;
                if (resolve_start(e, 0) < 0)
                        e->probing_first = false;
        }
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct endpoint_rt *e = userdata;

        endpoint_poll(e);
        sd_event_source_set_time(s, usec + (e->resolving ? RESOLVE_POLL_USEC : ENDPOINT_POLL_USEC));
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

int endpoints_start(struct hamgr_daemon *d) {
        const struct hamgr_config *config = d->config;
        int r;

        d->endpoints = calloc(config->n_endpoints ? config->n_endpoints : 1, sizeof(*d->endpoints));
        if (!d->endpoints)
                return -ENOMEM;
        for (size_t i = 0; i < config->n_endpoints; i++) {
                struct endpoint_rt *e = calloc(1, sizeof(*e));

                if (!e)
                        return -ENOMEM;
                d->endpoints[d->n_endpoints++] = e;
                e->daemon = d;
                e->config = &config->endpoints[i];
                e->probe_fd = -1;
                e->last_progress_usec = e->switched_usec = daemon_now(d);
                r = sd_event_add_time_relative(d->event, &e->timer, CLOCK_MONOTONIC, ENDPOINT_POLL_USEC, 1000,
                                               on_timer, e);
                if (r < 0)
                        return r;
                log_ep(e, LOG_INFO, "watching a peer, %zu candidate%s, stale after %u s", e->config->n_candidates,
                       e->config->n_candidates == 1 ? "" : "s", e->config->stale_after_s);
        }
        return 0;
}

void endpoints_stop(struct hamgr_daemon *d) {
        for (size_t i = 0; i < d->n_endpoints; i++) {
                struct endpoint_rt *e = d->endpoints[i];

                resolve_cancel(e);
                probe_stop(e);
                sd_event_source_disable_unref(e->timer);
                free(e);
        }
        free(d->endpoints);
        d->endpoints = NULL;
        d->n_endpoints = 0;
}

int endpoints_status_json(struct hamgr_daemon *d, struct json_object **ret) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();
        char key[WG_KEY_B64_LEN], ep[80];
        bool ok = a != NULL;

        for (size_t i = 0; ok && i < d->n_endpoints; i++) {
                const struct endpoint_rt *e = d->endpoints[i];
                json_object *o = json_object_new_object();

                wg_key_to_base64(key, e->config->peer);
                json_add_string(o, "interface", e->config->interface, &ok);
                json_add_string(o, "peer", key, &ok);
                json_add_string(o, "candidate", e->config->candidates[e->current], &ok);
                json_add_u64(o, "candidate_index", e->current, &ok);
                json_add_string(o, "endpoint",
                                e->endpoint.addr.sa_family ? wg_endpoint_to_string(&e->endpoint, ep, sizeof(ep)) : NULL,
                                &ok);
                json_add_u64(o, "rotations", e->rotations, &ok);
                json_add_u64(o, "since_progress_ms", (daemon_now(d) - e->last_progress_usec) / USEC_PER_MSEC, &ok);
                json_push(a, o, &ok);
        }
        if (!ok)
                return -ENOMEM;
        *ret = TAKE_PTR(a);
        return 0;
}

int endpoints_reload(struct hamgr_daemon *d) {
        endpoints_stop(d);
        return endpoints_start(d);
}

void endpoints_status_text(struct hamgr_daemon *d, struct buf *b) {
        for (size_t i = 0; i < d->n_endpoints; i++) {
                const struct endpoint_rt *e = d->endpoints[i];

                buf_printf(b, "endpoint %s: candidate %zu of %zu (%s), %" PRIu64 " move%s\n", e->config->interface,
                           e->current + 1, e->config->n_candidates, e->config->candidates[e->current], e->rotations,
                           e->rotations == 1 ? "" : "s");
        }
}
