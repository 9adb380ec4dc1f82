/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/macro.h"
#include "control.h"
#include "control-request.h"
#include "daemon.h"
#include "log.h"
#include "strbuf.h"
#include "endpoints.h"
#include "health.h"
#include "instance-routes.h"
#include "json-util.h"
#include "wg/kernel.h"
#include "wg/key.h"
#include "wg/wg.h"

#include <sodium.h>
#include "sync.h"
#include "wg-io.h"
#include "wireguard.h"

/* A PEER ADD line carries the allowed IPs: room for a few thousand. */
#define CONTROL_MAX_REQUEST 65536
#define CONTROL_IO_TIMEOUT_MS 2000

struct peer_edit;

struct control_server {
        struct hamgr_daemon *daemon;
        char *path;
        int fd;
        sd_event_source *io;
        struct peer_edit *edits;              /* being written; their clients wait */
};

/* A PEER ADD or REMOVE being written to the device beside the loop (the
 * daemon may be answering a read of 50,000 peers, or stalled, and VRRP
 * must not wait for it); the client waits on CONN for the reply. */
struct peer_edit {
        struct control_server *srv;
        struct peer_edit *next;
        int conn;
        char ifname[IFNAMSIZ];
        struct wg_peer peer;                  /* as requested; owns its allowed IPs */
        struct wg_io *io;
};

/* ---- status ------------------------------------------------------------- */

static uint64_t ms_since(struct hamgr_daemon *d, uint64_t usec) {
        uint64_t now = daemon_now(d);

        return usec && now > usec ? (now - usec) / USEC_PER_MSEC : 0;
}

static json_object *status_instance_json(struct hamgr_daemon *d, const struct hamgr_instance *inst) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        const struct hamgr_vrrp_config *c = inst->config;
        const struct vrrp_fsm *f = &inst->fsm;
        char addr[INET6_ADDRSTRLEN + 8];
        json_object *a, *t, *counters, *drops, *routes = NULL;
        bool ok = o != NULL;

        json_add_string(o, "name", c->name, &ok);
        json_add_string(o, "interface", c->interface, &ok);
        json_add_u64(o, "vrid", c->vrid, &ok);
        json_add_u64(o, "version", c->version, &ok);
        json_add_string(o, "family", c->family == AF_INET ? "ipv4" : "ipv6", &ok);
        json_add_string(o, "state", vrrp_state_to_string(f->state), &ok);
        json_add_u64(o, "priority", c->priority, &ok);
        json_add_u64(o, "effective_priority", f->config.priority, &ok);
        json_add_u64(o, "advert_interval_ms", c->advert_interval_ms, &ok);
        json_add_u64(o, "master_adver_interval_ms", f->master_adver_interval_cs * 10u, &ok);
        json_add_u64(o, "master_down_interval_ms",
                     vrrp_master_down_interval_usec(c->version, c->priority, f->master_adver_interval_cs) /
                             USEC_PER_MSEC,
                     &ok);
        json_add_bool(o, "preempt", c->preempt, &ok);
        json_add_bool(o, "accept_mode", c->accept_mode, &ok);
        json_add_string(o, "mode", c->n_unicast_peers ? "unicast" : "multicast", &ok);
        json_add_string(o, "group", inst->group ? inst->group->name : NULL, &ok);
        json_add_string(o, "primary_address",
                        inst->have_primary ? ip_address_to_string(&inst->primary, addr, sizeof(addr)) : NULL, &ok);
        a = json_object_new_array();
        json_add(o, "virtual_ips", a, &ok);
        for (size_t i = 0; ok && i < c->n_virtual_ips; i++) {
                size_t n;

                ip_address_to_string(&c->virtual_ips[i].address, addr, sizeof(addr));
                n = strlen(addr);
                snprintf(addr + n, sizeof(addr) - n, "/%u", c->virtual_ips[i].prefixlen);
                json_push_string(a, addr, &ok);
        }
        if (instance_routes_status_json(inst, &routes) < 0)
                ok = false;
        json_add(o, "virtual_routes", routes, &ok);
        a = json_object_new_array();
        json_add(o, "faults", a, &ok);
        for (unsigned i = 0; ok && i < _INSTANCE_FAULT_MAX; i++)
                if (inst->faults & (1u << i))
                        json_push_string(a, instance_fault_to_string(i), &ok);
        json_add_string(o, "fault_detail", inst->faults ? inst->fault_detail : NULL, &ok);
        t = json_object_new_object();
        json_add_string(t, "from", vrrp_state_to_string(inst->last_from), &ok);
        json_add_string(t, "reason", vrrp_reason_to_string(inst->last_reason), &ok);
        json_add_u64(t, "ago_ms", ms_since(d, inst->last_change_usec), &ok);
        json_add(o, "last_transition", t, &ok);
        json_add_string(o, "last_master",
                        inst->last_master.family ? ip_address_to_string(&inst->last_master, addr, sizeof(addr)) : NULL,
                        &ok);
        json_add_u64(o, "last_master_priority", inst->last_master_priority, &ok);
        counters = json_object_new_object();
        json_add_u64(counters, "adverts_sent", inst->counters.adverts_sent, &ok);
        json_add_u64(counters, "adverts_received", inst->counters.adverts_received, &ok);
        json_add_u64(counters, "adverts_dropped", inst->counters.adverts_dropped, &ok);
        json_add_u64(counters, "packets_invalid", inst->counters.packets_invalid, &ok);
        json_add_u64(counters, "send_errors", inst->counters.send_errors, &ok);
        json_add_u64(counters, "transitions", inst->counters.transitions, &ok);
        json_add_u64(counters, "became_master", inst->counters.became_master, &ok);
        json_add(o, "counters", counters, &ok);
        drops = json_object_new_object();
        for (unsigned i = 0; i < _INSTANCE_DROP_MAX; i++)
                json_add_u64(drops, instance_drop_to_string(i), inst->counters.drops[i], &ok);
        json_add(o, "drops", drops, &ok);
        json_add_string(o, "last_invalid_reason", inst->last_invalid_reason, &ok);
        return ok ? TAKE_PTR(o) : NULL;
}

/* A section of the status from its module's builder: KEY with what BUILD
 * made (NULL: null). */
#define STATUS_SECTION(o, key, build, d, ok)                    \
        do {                                                    \
                json_object *_v = NULL;                         \
                if (build((d), &_v) < 0)                        \
                        *(ok) = false;                          \
                else if (_v)                                    \
                        json_add((o), (key), _v, (ok));         \
                else                                            \
                        json_add_null((o), (key), (ok));        \
        } while (0)

static char *status_json(struct hamgr_daemon *d) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *a;
        bool ok = o != NULL;

        json_add_string(o, "node", d->config->node_name, &ok);
        json_add_string(o, "version", HAMGR_VERSION, &ok);
        json_add_i64(o, "pid", getpid(), &ok);
        json_add_u64(o, "uptime_ms", ms_since(d, d->started_usec), &ok);
        a = json_object_new_array();
        json_add(o, "instances", a, &ok);
        for (size_t i = 0; ok && i < d->n_instances; i++)
                json_push(a, status_instance_json(d, d->instances[i]), &ok);
        STATUS_SECTION(o, "checks", health_monitor_status_json, d, &ok);
        STATUS_SECTION(o, "wireguard", wg_followers_status_json, d, &ok);
        STATUS_SECTION(o, "endpoints", endpoints_status_json, d, &ok);
        STATUS_SECTION(o, "sync", sync_status_json, d, &ok);
        a = json_object_new_array();
        json_add(o, "groups", a, &ok);
        for (size_t i = 0; ok && i < d->n_groups; i++) {
                const struct hamgr_group_rt *g = d->groups[i];
                json_object *go, *members;

                if (!g->name)
                        continue;
                go = json_object_new_object();
                json_add_string(go, "name", g->name, &ok);
                json_add_string(go, "state", vrrp_state_to_string(g->notified_state), &ok);
                members = json_object_new_array();
                json_add(go, "instances", members, &ok);
                for (size_t m = 0; ok && m < g->n_members; m++)
                        json_push_string(members, g->members[m]->config->name, &ok);
                json_push(a, go, &ok);
        }
        return ok ? json_render(o) : NULL;
}

/* One line, only when a misconfiguration has shown: adverts dropped by cause. */
static void status_drops_text(struct buf *b, const struct hamgr_instance *inst) {
        bool any = false;

        for (unsigned i = 0; i < _INSTANCE_DROP_MAX; i++) {
                if (inst->counters.drops[i] == 0)
                        continue;
                buf_printf(b, "%s %s %" PRIu64, any ? "," : "  dropped adverts:", instance_drop_to_string(i),
                           inst->counters.drops[i]);
                any = true;
        }
        if (any)
                buf_printf(b, " (see the log)\n");
}

/* The virtual IPs are on this node exactly while it is MASTER. */
static void status_vips_text(struct buf *b, const struct hamgr_instance *inst) {
        const struct hamgr_vrrp_config *c = inst->config;
        bool held = inst->fsm.state == VRRP_STATE_MASTER;
        char addr[INET6_ADDRSTRLEN];

        buf_printf(b, "  virtual IPs %s:", held ? "held" : "not held");
        for (size_t i = 0; i < c->n_virtual_ips; i++)
                buf_printf(b, " %s/%u", ip_address_to_string(&c->virtual_ips[i].address, addr, sizeof(addr)),
                           c->virtual_ips[i].prefixlen);
        buf_printf(b, "\n");
}

static void status_text(struct buf *b, struct hamgr_daemon *d) {
        char addr[INET6_ADDRSTRLEN];

        buf_printf(b, "node %s, hamgr %s, up %" PRIu64 " s\n", d->config->node_name, HAMGR_VERSION,
                   ms_since(d, d->started_usec) / 1000);
        buf_printf(b, "%-16s %-10s %4s %-7s %4s %4s %-8s %s\n", "INSTANCE", "INTERFACE", "VRID", "STATE", "PRIO",
                   "EFF", "SINCE", "LAST CHANGE");
        for (size_t i = 0; i < d->n_instances; i++) {
                const struct hamgr_instance *inst = d->instances[i];
                char since[32];

                snprintf(since, sizeof(since), "%" PRIu64 "s", ms_since(d, inst->last_change_usec) / 1000);
                buf_printf(b, "%-16s %-10s %4u %-7s %4u %4u %-8s %s -> %s (%s)", inst->config->name,
                           inst->config->interface, inst->config->vrid, vrrp_state_to_string(inst->fsm.state),
                           inst->config->priority, inst->fsm.config.priority, since,
                           vrrp_state_to_string(inst->last_from),
                           vrrp_state_to_string(inst->fsm.state), vrrp_reason_to_string(inst->last_reason));
                if (inst->faults)
                        buf_printf(b, ": %s", inst->fault_detail);
                else if (inst->fsm.state == VRRP_STATE_BACKUP && inst->last_master.family)
                        buf_printf(b, ", master %s priority %u",
                                   ip_address_to_string(&inst->last_master, addr, sizeof(addr)),
                                   inst->last_master_priority);
                buf_printf(b, "\n");
                status_vips_text(b, inst);
                status_drops_text(b, inst);
        }
        for (size_t i = 0; i < d->n_groups; i++) {
                const struct hamgr_group_rt *g = d->groups[i];

                if (!g->name)
                        continue;
                buf_printf(b, "group %s:", g->name);
                for (size_t m = 0; m < g->n_members; m++)
                        buf_printf(b, " %s", g->members[m]->config->name);
                buf_printf(b, "\n");
        }
        health_monitor_status_text(d, b);
        wg_followers_status_text(d, b);
        endpoints_status_text(d, b);
        sync_status_text(d, b);
}

char *status_render(struct hamgr_daemon *d, bool json) {
        struct buf b = {};

        if (json)
                return status_json(d);
        status_text(&b, d);
        if (b.failed) {
                free(b.s);
                return NULL;
        }
        return b.s;
}

/* ---- server ------------------------------------------------------------- */

static int read_request(int fd, char *buf, size_t size) {
        size_t len = 0;

        while (len < size - 1) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t n;

                if (poll(&p, 1, CONTROL_IO_TIMEOUT_MS) <= 0)
                        return -ETIMEDOUT;
                n = read(fd, buf + len, size - 1 - len);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (memchr(buf, '\n', len))
                        break;
        }
        buf[len] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
        return 0;
}

static void write_all(int fd, const char *s, size_t len) {
        while (len > 0) {
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                ssize_t n;

                if (poll(&p, 1, CONTROL_IO_TIMEOUT_MS) <= 0)
                        return;
                n = write(fd, s, len);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return;
                }
                s += n;
                len -= (size_t) n;
        }
}

static bool replicated_interface(struct hamgr_daemon *d, const char *ifname) {
        for (size_t i = 0; i < d->config->n_wireguard; i++)
                if (streq(d->config->wireguard[i].interface, ifname))
                        return true;
        return false;
}

/* Cancels (joins) its write; accepts NULL; returns NULL. */
static struct peer_edit *peer_edit_free(struct peer_edit *e) {
        if (!e)
                return NULL;
        e->io = wg_io_cancel(e->io);
        if (e->conn >= 0)
                close(e->conn);
        free(e->peer.allowedips);
        sodium_memzero(e, sizeof(*e));
        free(e);
        return NULL;
}

static void peer_edit_unlink(struct peer_edit *e) {
        for (struct peer_edit **pp = &e->srv->edits; *pp; pp = &(*pp)->next)
                if (*pp == e) {
                        *pp = e->next;
                        return;
                }
}

/* The device answered: version and push the edit (sync_local_peer()),
 * then reply. */
static void on_peer_written(struct wg_io *io, struct wg_io_result *res, void *userdata) {
        struct peer_edit *e = userdata;
        struct hamgr_daemon *d = e->srv->daemon;
        char *reply = NULL;

        e->io = NULL; /* wg-io frees it when this returns */
        if (res->r < 0) {
                const char *why = res->kernel_error;

                if (asprintf(&reply, "ERROR %s: %s%s%s%s\n", e->ifname, strerror(-res->r), why[0] ? " (" : "", why,
                             why[0] ? ")" : "") < 0)
                        reply = NULL;
        } else {
                sync_local_peer(d, e->ifname, &e->peer);
                reply = strdup("OK\n");
        }
        sync_local_write_end(d, e->ifname, e->peer.public_key);
        if (reply)
                write_all(e->conn, reply, strlen(reply));
        free(reply);
        peer_edit_unlink(e);
        peer_edit_free(e);
}

/* A parsed PEER ADD or PEER REMOVE: written to the local device beside
 * the loop, then versioned (sync_local_peer()) and pushed to the other
 * nodes, then answered. Returns the reply when the request ends here (a
 * refusal), or NULL with *CONN taken when the write started (NULL with
 * *CONN left: out of memory). Takes REQ's allowed IPs. */
static char *peer_request(struct control_server *srv, struct control_request *req, int *conn) {
        struct hamgr_daemon *d = srv->daemon;
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        struct peer_edit *e;
        char *reply = NULL;
        struct wg_peer *p;
        enum wg_backend backend = WG_BACKEND_AUTO;
        int r;

        if (sync_bootstrapping(d))
                return strdup("ERROR replication is waiting for the other node's state (see hamgr status); "
                              "an edit now could be undone: try again then\n");
        if (!replicated_interface(d, req->ifname))
                return asprintf(&reply, "ERROR %s is not in the wireguard section of the configuration\n",
                                req->ifname) < 0 ? NULL : reply;
        if (sync_device_busy(d, req->ifname))
                return asprintf(&reply, "ERROR replication is writing changes from the other node to %s; an edit now "
                                "could be undone: try again in a moment\n", req->ifname) < 0 ? NULL : reply;
        for (size_t i = 0; i < d->config->n_wireguard; i++)
                if (streq(d->config->wireguard[i].interface, req->ifname))
                        backend = d->config->wireguard[i].backend;
        e = calloc(1, sizeof(*e));
        dev = calloc(1, sizeof(*dev));
        if (!e || !dev || !(p = wg_device_add_peer(dev))) {
                free(e);
                return NULL;
        }
        snprintf(dev->name, sizeof(dev->name), "%s", req->ifname);
        *p = req->peer;
        p->allowedips = NULL;
        p->n_allowedips = 0;
        for (size_t k = 0; k < req->peer.n_allowedips; k++)
                if (wg_peer_add_allowedip(p, &req->peer.allowedips[k]) < 0) {
                        free(e);
                        return NULL;
                }
        e->srv = srv;
        e->conn = -1;
        snprintf(e->ifname, sizeof(e->ifname), "%s", req->ifname);
        e->peer = req->peer;
        req->peer.allowedips = NULL;
        req->peer.n_allowedips = 0;
        sync_local_write_begin(d, req->ifname, e->peer.public_key);
        r = wg_io_write(d->event, backend, TAKE_PTR(dev), on_peer_written, e, &e->io);
        if (r < 0) {
                sync_local_write_end(d, req->ifname, e->peer.public_key);
                peer_edit_free(e);
                return asprintf(&reply, "ERROR %s: %s\n", req->ifname, strerror(-r)) < 0 ? NULL : reply;
        }
        e->conn = *conn;
        *conn = -1;
        e->next = srv->edits;
        srv->edits = e;
        return NULL;
}

static char *peers_render(struct hamgr_daemon *d) {
        _cleanup_(json_object_putp) json_object *peers = NULL;

        if (sync_peers_json(d, &peers) < 0)
                return NULL;
        return json_render(peers);
}

static int on_connection(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct control_server *srv = userdata;
        _cleanup_(closep) int conn = -1;
        _cleanup_(freep) char *req = NULL;
        struct control_request cr = {};
        const char *reason = NULL;
        char *reply = NULL;
        int r;

        conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (conn < 0)
                return 0;
        /* Requests are one short line; a silent client is dropped after the
         * timeout rather than holding the loop. */
        req = malloc(CONTROL_MAX_REQUEST);
        if (!req || read_request(conn, req, CONTROL_MAX_REQUEST) < 0)
                return 0;
        r = control_request_parse(req, strlen(req), &cr, &reason);
        sodium_memzero(req, CONTROL_MAX_REQUEST); /* may hold a preshared key */
        if (r == -EBADMSG) {
                _cleanup_(freep) char *err = NULL;

                if (asprintf(&err, "ERROR %s\n", reason) >= 0)
                        write_all(conn, err, strlen(err));
                return 0;
        }
        if (r < 0)
                return 0;
        switch (cr.type) {
        case CONTROL_REQUEST_PEER_ADD:
        case CONTROL_REQUEST_PEER_REMOVE:
                reply = peer_request(srv, &cr, &conn);
                break;
        case CONTROL_REQUEST_PEERS_JSON:
                reply = peers_render(srv->daemon);
                break;
        case CONTROL_REQUEST_STATUS:
        case CONTROL_REQUEST_STATUS_JSON:
                reply = status_render(srv->daemon, cr.type == CONTROL_REQUEST_STATUS_JSON);
                break;
        default:
                break;
        }
        control_request_done(&cr);
        if (reply && conn >= 0)
                write_all(conn, reply, strlen(reply));
        free(reply);
        return 0;
}

static int mkdir_parents(const char *path) {
        char *copy = strdup(path), *dir;
        int r = 0;

        if (!copy)
                return -ENOMEM;
        dir = dirname(copy);
        for (char *p = dir + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                                r = -errno;
                        *p = '/';
                }
        if (r >= 0 && mkdir(dir, 0755) < 0 && errno != EEXIST)
                r = -errno;
        free(copy);
        return r;
}

int control_server_new(struct hamgr_daemon *d, const char *path, struct control_server **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct control_server *s;
        mode_t old_umask;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->daemon = d;
        s->fd = -1;
        s->path = strdup(path);
        if (!s->path) {
                r = -ENOMEM;
                goto fail;
        }
        r = mkdir_parents(path);
        if (r < 0)
                goto fail;
        s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s->fd < 0) {
                r = -errno;
                goto fail;
        }
        (void) unlink(path); /* a stale socket from a crashed run */
        /* bind() creates the node as 0777 & ~umask: this leaves 0600. */
        old_umask = umask(0177);
        r = bind(s->fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old_umask);
        if (r < 0 || listen(s->fd, 16) < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(d->event, &s->io, s->fd, EPOLLIN, on_connection, s);
        if (r < 0)
                goto fail;
        *ret = s;
        return 0;
fail:
        control_server_free(s);
        return r;
}

struct control_server *control_server_free(struct control_server *s) {
        if (!s)
                return NULL;
        /* Their clients get no reply: the connection closes. */
        while (s->edits) {
                struct peer_edit *e = s->edits;

                s->edits = e->next;
                peer_edit_free(e);
        }
        sd_event_source_disable_unref(s->io);
        if (s->fd >= 0) {
                close(s->fd);
                unlink(s->path);
        }
        free(s->path);
        free(s);
        return NULL;
}

/* ---- client ------------------------------------------------------------- */

int control_request(const char *path, const char *request, char **ret_reply) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_(closep) int fd = -1;
        struct buf b = {};
        char chunk[4096];
        ssize_t n;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        write_all(fd, request, strlen(request));
        write_all(fd, "\n", 1);
        shutdown(fd, SHUT_WR);
        buf_printf(&b, "%s", "");
        while ((n = read(fd, chunk, sizeof(chunk))) > 0)
                buf_printf(&b, "%.*s", (int) n, chunk);
        if (n < 0 || b.failed) {
                int r = n < 0 ? -errno : -ENOMEM;
                free(b.s);
                return r;
        }
        *ret_reply = b.s;
        return 0;
}
