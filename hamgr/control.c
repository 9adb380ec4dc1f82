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
#include "wg/kernel.h"
#include "wg/key.h"
#include "wg/wg.h"

#include <sodium.h>
#include "sync.h"
#include "wireguard.h"

/* A PEER ADD line carries the allowed IPs: room for a few thousand. */
#define CONTROL_MAX_REQUEST 65536
#define CONTROL_IO_TIMEOUT_MS 2000

struct control_server {
        struct hamgr_daemon *daemon;
        char *path;
        int fd;
        sd_event_source *io;
};

/* ---- status ------------------------------------------------------------- */

static uint64_t ms_since(struct hamgr_daemon *d, uint64_t usec) {
        uint64_t now = daemon_now(d);

        return usec && now > usec ? (now - usec) / USEC_PER_MSEC : 0;
}

static void status_instance_json(struct buf *b, struct hamgr_daemon *d, const struct hamgr_instance *inst) {
        const struct hamgr_vrrp_config *c = inst->config;
        const struct vrrp_fsm *f = &inst->fsm;
        char addr[INET6_ADDRSTRLEN];

        buf_printf(b, "{\"name\":");
        buf_json_string(b, c->name);
        buf_printf(b, ",\"interface\":");
        buf_json_string(b, c->interface);
        buf_printf(b, ",\"vrid\":%u,\"version\":%u,\"family\":\"%s\",\"state\":\"%s\",\"priority\":%u,\"effective_priority\":%u",
                   c->vrid, c->version, c->family == AF_INET ? "ipv4" : "ipv6", vrrp_state_to_string(f->state),
                   c->priority, f->config.priority);
        buf_printf(b, ",\"advert_interval_ms\":%u,\"master_adver_interval_ms\":%u,\"master_down_interval_ms\":%" PRIu64,
                   c->advert_interval_ms, f->master_adver_interval_cs * 10u,
                   vrrp_master_down_interval_usec(c->version, c->priority, f->master_adver_interval_cs) /
                           USEC_PER_MSEC);
        buf_printf(b, ",\"preempt\":%s,\"accept_mode\":%s,\"mode\":\"%s\"", c->preempt ? "true" : "false",
                   c->accept_mode ? "true" : "false",
                   c->n_unicast_peers ? "unicast" : "multicast");
        buf_printf(b, ",\"group\":");
        if (inst->group && inst->group->name)
                buf_json_string(b, inst->group->name);
        else
                buf_printf(b, "null");
        buf_printf(b, ",\"primary_address\":");
        if (inst->have_primary)
                buf_json_string(b, ip_address_to_string(&inst->primary, addr, sizeof(addr)));
        else
                buf_printf(b, "null");
        buf_printf(b, ",\"virtual_ips\":[");
        for (size_t i = 0; i < c->n_virtual_ips; i++) {
                buf_printf(b, "%s\"%s/%u\"", i ? "," : "",
                           ip_address_to_string(&c->virtual_ips[i].address, addr, sizeof(addr)),
                           c->virtual_ips[i].prefixlen);
        }
        buf_printf(b, "]");
        instance_routes_status_json(b, inst);
        buf_printf(b, ",\"faults\":[");
        for (unsigned i = 0, n = 0; i < _INSTANCE_FAULT_MAX; i++)
                if (inst->faults & (1u << i))
                        buf_printf(b, "%s\"%s\"", n++ ? "," : "", instance_fault_to_string(i));
        buf_printf(b, "],\"fault_detail\":");
        if (inst->faults)
                buf_json_string(b, inst->fault_detail);
        else
                buf_printf(b, "null");
        buf_printf(b, ",\"last_transition\":{\"from\":\"%s\",\"reason\":\"%s\",\"ago_ms\":%" PRIu64 "}",
                   vrrp_state_to_string(inst->last_from), vrrp_reason_to_string(inst->last_reason),
                   ms_since(d, inst->last_change_usec));
        buf_printf(b, ",\"last_master\":");
        if (inst->last_master.family)
                buf_json_string(b, ip_address_to_string(&inst->last_master, addr, sizeof(addr)));
        else
                buf_printf(b, "null");
        buf_printf(b, ",\"last_master_priority\":%u", inst->last_master_priority);
        buf_printf(b,
                   ",\"counters\":{\"adverts_sent\":%" PRIu64 ",\"adverts_received\":%" PRIu64
                   ",\"adverts_dropped\":%" PRIu64 ",\"packets_invalid\":%" PRIu64 ",\"send_errors\":%" PRIu64
                   ",\"transitions\":%" PRIu64 ",\"became_master\":%" PRIu64 "}",
                   inst->counters.adverts_sent, inst->counters.adverts_received, inst->counters.adverts_dropped,
                   inst->counters.packets_invalid, inst->counters.send_errors, inst->counters.transitions,
                   inst->counters.became_master);
        buf_printf(b, ",\"drops\":{");
        for (unsigned i = 0; i < _INSTANCE_DROP_MAX; i++)
                buf_printf(b, "%s\"%s\":%" PRIu64, i ? "," : "", instance_drop_to_string(i),
                           inst->counters.drops[i]);
        buf_printf(b, "}");
        buf_printf(b, ",\"last_invalid_reason\":");
        if (inst->last_invalid_reason)
                buf_json_string(b, inst->last_invalid_reason);
        else
                buf_printf(b, "null");
        buf_printf(b, "}");
}

static void status_json(struct buf *b, struct hamgr_daemon *d) {
        buf_printf(b, "{\"node\":");
        buf_json_string(b, d->config->node_name);
        buf_printf(b, ",\"version\":\"%s\",\"pid\":%d,\"uptime_ms\":%" PRIu64 ",\"instances\":[", HAMGR_VERSION,
                   (int) getpid(), ms_since(d, d->started_usec));
        for (size_t i = 0; i < d->n_instances; i++) {
                if (i)
                        buf_printf(b, ",");
                status_instance_json(b, d, d->instances[i]);
        }
        buf_printf(b, "],\"checks\":");
        health_monitor_status_json(d, b);
        buf_printf(b, ",\"wireguard\":");
        wg_followers_status_json(d, b);
        buf_printf(b, ",\"endpoints\":");
        endpoints_status_json(d, b);
        buf_printf(b, ",\"sync\":");
        sync_status_json(d, b);
        buf_printf(b, ",\"groups\":[");
        for (size_t i = 0, n = 0; i < d->n_groups; i++) {
                const struct hamgr_group_rt *g = d->groups[i];

                if (!g->name)
                        continue;
                buf_printf(b, "%s{\"name\":", n++ ? "," : "");
                buf_json_string(b, g->name);
                buf_printf(b, ",\"state\":\"%s\",\"instances\":[", vrrp_state_to_string(g->notified_state));
                for (size_t m = 0; m < g->n_members; m++) {
                        if (m)
                                buf_printf(b, ",");
                        buf_json_string(b, g->members[m]->config->name);
                }
                buf_printf(b, "]}");
        }
        buf_printf(b, "]}\n");
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

static void status_text(struct buf *b, struct hamgr_daemon *d) {
        char addr[INET6_ADDRSTRLEN];

        buf_printf(b, "node %s, hamgr %s, up %" PRIu64 " s\n", d->config->node_name, HAMGR_VERSION,
                   ms_since(d, d->started_usec) / 1000);
        buf_printf(b, "%-16s %-10s %4s %-7s %4s %-8s %s\n", "INSTANCE", "INTERFACE", "VRID", "STATE", "PRIO",
                   "SINCE", "LAST CHANGE");
        for (size_t i = 0; i < d->n_instances; i++) {
                const struct hamgr_instance *inst = d->instances[i];
                char since[32];

                snprintf(since, sizeof(since), "%" PRIu64 "s", ms_since(d, inst->last_change_usec) / 1000);
                buf_printf(b, "%-16s %-10s %4u %-7s %4u %-8s %s -> %s (%s)", inst->config->name,
                           inst->config->interface, inst->config->vrid, vrrp_state_to_string(inst->fsm.state),
                           inst->config->priority, since, vrrp_state_to_string(inst->last_from),
                           vrrp_state_to_string(inst->fsm.state), vrrp_reason_to_string(inst->last_reason));
                if (inst->faults)
                        buf_printf(b, ": %s", inst->fault_detail);
                else if (inst->fsm.state == VRRP_STATE_BACKUP && inst->last_master.family)
                        buf_printf(b, ", master %s priority %u",
                                   ip_address_to_string(&inst->last_master, addr, sizeof(addr)),
                                   inst->last_master_priority);
                buf_printf(b, "\n");
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
                status_json(&b, d);
        else
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

/* A parsed PEER ADD or PEER REMOVE: applied to the local device, then
 * polled at once so the change is versioned and pushed to the other nodes.
 * Takes REQ's allowed IPs. */
static char *peer_request(struct hamgr_daemon *d, struct control_request *req) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
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
        for (size_t i = 0; i < d->config->n_wireguard; i++)
                if (streq(d->config->wireguard[i].interface, req->ifname))
                        backend = d->config->wireguard[i].backend;
        dev = calloc(1, sizeof(*dev));
        if (!dev || !(p = wg_device_add_peer(dev)))
                return NULL;
        snprintf(dev->name, sizeof(dev->name), "%s", req->ifname);
        *p = req->peer;
        req->peer.allowedips = NULL;
        req->peer.n_allowedips = 0;
        r = wg_set_device(backend, dev);
        if (r < 0) {
                const char *why = wg_backend_resolve(backend, req->ifname) == WG_BACKEND_KERNEL ? wg_kernel_last_error() : "";

                return asprintf(&reply, "ERROR %s: %s%s%s%s\n", req->ifname, strerror(-r), why[0] ? " (" : "", why,
                                why[0] ? ")" : "") < 0 ?
                               NULL :
                               reply;
        }
        sync_poll_now(d);
        return strdup("OK\n");
}

static char *peers_render(struct hamgr_daemon *d) {
        struct buf b = {};

        sync_peers_json(d, &b);
        buf_printf(&b, "\n");
        if (b.failed) {
                free(b.s);
                return NULL;
        }
        return b.s;
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
                reply = peer_request(srv->daemon, &cr);
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
        if (reply)
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
