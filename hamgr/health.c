/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Health checks on the event loop: each check runs every interval_ms, its
 * probe bounded by timeout_ms, and its results go through the rise/fall
 * core. A change of a check's status makes the daemon re-evaluate the
 * instances that track it (fault or priority).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "daemon.h"
#include "health.h"
#include "health/check.h"
#include "health/core.h"
#include "health/probe.h"
#include "json-util.h"
#include "link.h"
#include "log.h"
#include "strbuf.h"
#include "wg/wg.h"
#include "wg-io.h"
#include "wireguard.h"

struct check_rt {
        struct hamgr_daemon *daemon;
        const struct hamgr_check_config *config;
        struct health_core core;
        sd_event_source *timer;
        sd_event_source *io;
        sd_event_source *timeout;
        sd_event_source *child;
        int fd;
        pid_t pid;
        uint16_t id, seq;
        bool running;
        bool timed_out;                 /* the running probe hit timeout_ms */
        /* Why the last finished probe failed, or figures; kept while the
         * next probe runs, so that status shows it most of the time. */
        char detail[160];
        /* wireguard: figures from the last successful read */
        size_t peers, fresh_peers, peers_with_endpoint;
        struct wg_io *wg_io;            /* its read in flight, maybe past timeout_ms */
        uint64_t probes, failures;
};

static void check_finish(struct check_rt *c, bool ok) {
        struct hamgr_daemon *d = c->daemon;
        enum health_status before = c->core.status;
        bool changed;

        c->io = sd_event_source_disable_unref(c->io);
        c->timeout = sd_event_source_disable_unref(c->timeout);
        c->child = sd_event_source_disable_unref(c->child);
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        c->pid = 0;
        c->running = false;
        c->probes++;
        if (!ok)
                c->failures++;
        changed = health_core_update(&c->core, ok, daemon_now(d));
        if (!changed)
                return;
        log_fields(c->core.status == HEALTH_UP ? LOG_NOTICE : LOG_WARNING, 0, NULL, 0, NULL, NULL,
                   "check %s (%s): %s -> %s%s%s", c->config->name, health_check_type_to_string(c->config->type),
                   health_status_to_string(before), health_status_to_string(c->core.status),
                   c->detail[0] ? ": " : "", c->detail);
        daemon_checks_changed(d);
}

static int on_probe_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct check_rt *c = userdata;

        snprintf(c->detail, sizeof(c->detail), "no answer within %u ms", c->config->timeout_ms);
        c->timed_out = true;
        if (c->pid > 0)
                kill(-c->pid, SIGKILL); /* on_child reaps it and finishes */
        else
                check_finish(c, false);
        return 0;
}

static int on_icmp(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct check_rt *c = userdata;

        for (;;) {
                int r = health_icmp_receive(fd, &c->config->target, c->id, c->seq);

                if (r == -EAGAIN)
                        return 0;
                if (r < 0) {
                        snprintf(c->detail, sizeof(c->detail), "receive failed: %s", strerror(-r));
                        check_finish(c, false);
                        return 0;
                }
                if (r == 1) {
                        c->detail[0] = '\0';
                        check_finish(c, true);
                        return 0;
                }
        }
}

static int on_tcp(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct check_rt *c = userdata;
        int r = health_tcp_result(fd);

        if (r < 0)
                snprintf(c->detail, sizeof(c->detail), "connect failed: %s", strerror(-r));
        else
                c->detail[0] = '\0';
        check_finish(c, r >= 0);
        return 0;
}

static int on_exec_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        struct check_rt *c = userdata;
        bool ok = si->si_code == CLD_EXITED && si->si_status == 0;

        if (si->si_code == CLD_EXITED && si->si_status != 0)
                snprintf(c->detail, sizeof(c->detail), "%s exited with status %d", c->config->command, si->si_status);
        else if (si->si_code != CLD_EXITED && !c->timed_out)
                snprintf(c->detail, sizeof(c->detail), "%s killed by signal %d", c->config->command, si->si_status);
        else if (ok)
                c->detail[0] = '\0';
        c->child = sd_event_source_disable_unref(c->child);
        check_finish(c, ok);
        return 0;
}

static bool probe_link(struct check_rt *c) {
        struct link_info li;

        if (link_monitor_get(c->daemon->links, c->config->interface, &li) < 0) {
                snprintf(c->detail, sizeof(c->detail), "interface %s missing", c->config->interface);
                return false;
        }
        if (!li.up) {
                snprintf(c->detail, sizeof(c->detail), "interface %s down", c->config->interface);
                return false;
        }
        c->detail[0] = '\0';
        return true;
}

static enum wg_backend backend_for(struct hamgr_daemon *d, const char *ifname) {
        for (size_t i = 0; i < d->config->n_wireguard; i++)
                if (streq(d->config->wireguard[i].interface, ifname))
                        return d->config->wireguard[i].backend;
        return WG_BACKEND_AUTO;
}

static void on_wireguard_read(struct wg_io *io, struct wg_io_result *res, void *userdata) {
        struct check_rt *c = userdata;
        struct hamgr_daemon *d = c->daemon;
        const char *ifname = c->config->interface;
        const struct wg_device *dev = res->device;
        struct link_info li;
        struct timespec now;

        c->wg_io = NULL;
        if (!c->running)
                return; /* past timeout_ms: counted as a failure then */
        if (res->r < 0) {
                snprintf(c->detail, sizeof(c->detail), "the WireGuard backend does not answer for %s: %s", ifname,
                         strerror(-res->r));
                check_finish(c, false);
                return;
        }
        clock_gettime(CLOCK_REALTIME, &now);
        c->peers = dev->n_peers;
        c->fresh_peers = c->peers_with_endpoint = 0;
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];

                if (p->last_handshake_time_sec > 0 &&
                    now.tv_sec - p->last_handshake_time_sec < (int64_t) c->config->max_handshake_age_s)
                        c->fresh_peers++;
                if (p->endpoint.addr.sa_family != AF_UNSPEC)
                        c->peers_with_endpoint++;
        }
        if (link_monitor_get(d->links, ifname, &li) < 0) {
                snprintf(c->detail, sizeof(c->detail), "interface %s missing", ifname);
                check_finish(c, false);
                return;
        }
        if (wg_follower_link_expected_up(d, ifname) && !li.up) {
                snprintf(c->detail, sizeof(c->detail), "interface %s is down although this node serves it", ifname);
                check_finish(c, false);
                return;
        }
        snprintf(c->detail, sizeof(c->detail), "%zu peers, %zu with a handshake younger than %u s", c->peers,
                 c->fresh_peers, c->config->max_handshake_age_s);
        check_finish(c, true);
}

/* The interface exists; it is up where this node serves its tunnels; the
 * backend (the kernel or the userspace daemon) answers. Freshness figures
 * are reported, not judged: a quiet night is not a failure. The device is
 * read in a worker (wg-io.h): with thousands of peers that takes long
 * enough to hold up VRRP. Returns 1 when the probe finished at once, 0
 * when the read runs (on_wireguard_read() finishes it), or -errno. */
static int probe_wireguard(struct check_rt *c) {
        struct hamgr_daemon *d = c->daemon;
        const char *ifname = c->config->interface;
        struct link_info li;

        if (link_monitor_get(d->links, ifname, &li) < 0) {
                snprintf(c->detail, sizeof(c->detail), "interface %s missing", ifname);
                check_finish(c, false);
                return 1;
        }
        /* A takeover in progress talks to the backend in batches that must
         * come before anything but VRRP: a full dump (megabytes with
         * thousands of peers) would hold both up. The takeover's requests
         * answering is the proof of life meanwhile; a failed one ends it. */
        if (wg_follower_busy(d, ifname)) {
                check_finish(c, true);
                return 1;
        }
        return wg_io_read(d->event, backend_for(d, ifname), ifname, WG_IO_ENDPOINTS, NULL, on_wireguard_read, c,
                          &c->wg_io);
}

static int start_exec(struct check_rt *c) {
        pid_t pid = fork();
        int r;

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                sigset_t all;
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);

                setpgid(0, 0);
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                if (null >= 0) {
                        dup2(null, STDIN_FILENO);
                        dup2(null, STDOUT_FILENO);
                }
                execl(c->config->command, c->config->command, (char *) NULL);
                _exit(127);
        }
        setpgid(pid, pid);
        c->pid = pid;
        r = sd_event_add_child(c->daemon->event, &c->child, pid, WEXITED, on_exec_child, c);
        if (r < 0) {
                kill(-pid, SIGKILL);
                waitpid(pid, NULL, 0);
                c->pid = 0;
        }
        return r;
}

static int on_check_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct check_rt *c = userdata;
        const struct hamgr_check_config *cfg = c->config;
        int r = 0;

        sd_event_source_set_time(s, usec + (uint64_t) cfg->interval_ms * USEC_PER_MSEC);
        sd_event_source_set_enabled(s, SD_EVENT_ON);
        if (c->running || c->wg_io)
                return 0; /* the previous probe is still within its timeout, or its read runs on */
        c->timed_out = false;
        switch (cfg->type) {
        case HEALTH_CHECK_LINK:
                check_finish(c, probe_link(c));
                return 0;
        case HEALTH_CHECK_WIREGUARD:
                r = probe_wireguard(c);
                if (r > 0)
                        return 0;
                break;
        case HEALTH_CHECK_ICMP:
                c->seq++;
                r = health_icmp_send(&cfg->target, c->id, c->seq, &c->fd);
                if (r >= 0)
                        r = sd_event_add_io(c->daemon->event, &c->io, c->fd, EPOLLIN, on_icmp, c);
                break;
        case HEALTH_CHECK_TCP:
                r = health_tcp_connect(&cfg->target, cfg->port, &c->fd);
                if (r >= 0)
                        r = sd_event_add_io(c->daemon->event, &c->io, c->fd, EPOLLOUT, on_tcp, c);
                break;
        case HEALTH_CHECK_EXEC:
                r = start_exec(c);
                break;
        default:
                return 0;
        }
        if (r < 0) {
                snprintf(c->detail, sizeof(c->detail), "probe failed: %s", strerror(-r));
                check_finish(c, false);
                return 0;
        }
        c->running = true;
        r = sd_event_add_time_relative(c->daemon->event, &c->timeout, CLOCK_MONOTONIC,
                                       (uint64_t) cfg->timeout_ms * USEC_PER_MSEC, 1000, on_probe_timeout, c);
        if (r < 0)
                log_warning_errno(r, "check %s runs without a timeout: %m", cfg->name);
        return 0;
}

static struct check_rt *check_free(struct check_rt *c) {
        if (!c)
                return NULL;
        if (c->pid > 0) {
                kill(-c->pid, SIGKILL);
                waitpid(c->pid, NULL, 0);
        }
        wg_io_cancel(c->wg_io);
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timeout);
        sd_event_source_disable_unref(c->child);
        if (c->fd >= 0)
                close(c->fd);
        free(c);
        return NULL;
}

int health_monitor_start(struct hamgr_daemon *d) {
        const struct hamgr_config *config = d->config;
        int r;

        d->checks = calloc(config->n_checks ? config->n_checks : 1, sizeof(*d->checks));
        if (!d->checks)
                return -ENOMEM;
        for (size_t i = 0; i < config->n_checks; i++) {
                struct check_rt *c = calloc(1, sizeof(*c));

                if (!c)
                        return -ENOMEM;
                d->checks[d->n_checks++] = c;
                c->daemon = d;
                c->config = &config->checks[i];
                c->fd = -1;
                c->id = (uint16_t) ((getpid() << 4) ^ i);
                health_core_init(&c->core, c->config->rise, c->config->fall);
                /* First probe at once, so a failing check is known early. */
                r = sd_event_add_time_relative(d->event, &c->timer, CLOCK_MONOTONIC, 0, 1000, on_check_timer, c);
                if (r < 0)
                        return r;
        }
        return 0;
}

void health_monitor_stop(struct hamgr_daemon *d) {
        for (size_t i = 0; i < d->n_checks; i++)
                check_free(d->checks[i]);
        free(d->checks);
        d->checks = NULL;
        d->n_checks = 0;
}

enum health_status health_monitor_status(struct hamgr_daemon *d, const char *name) {
        for (size_t i = 0; i < d->n_checks; i++)
                if (streq(d->checks[i]->config->name, name))
                        return d->checks[i]->core.status;
        return HEALTH_UNKNOWN;
}

int health_monitor_status_json(struct hamgr_daemon *d, struct json_object **ret) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();
        bool ok = a != NULL;

        for (size_t i = 0; ok && i < d->n_checks; i++) {
                const struct check_rt *c = d->checks[i];
                json_object *o = json_object_new_object();

                json_add_string(o, "name", c->config->name, &ok);
                json_add_string(o, "type", health_check_type_to_string(c->config->type), &ok);
                json_add_string(o, "status", health_status_to_string(c->core.status), &ok);
                json_add_string(o, "detail", c->detail, &ok);
                json_add_u64(o, "probes", c->probes, &ok);
                json_add_u64(o, "failures", c->failures, &ok);
                if (c->config->type == HEALTH_CHECK_WIREGUARD) {
                        json_add_u64(o, "peers", c->peers, &ok);
                        json_add_u64(o, "fresh_peers", c->fresh_peers, &ok);
                        json_add_u64(o, "peers_with_endpoint", c->peers_with_endpoint, &ok);
                }
                json_push(a, o, &ok);
        }
        if (!ok)
                return -ENOMEM;
        *ret = TAKE_PTR(a);
        return 0;
}

int health_monitor_reload(struct hamgr_daemon *d) {
        struct saved {
                char *name;
                struct hamgr_check_config config;
                struct health_core core;
        } *saved;
        size_t n = d->n_checks;
        int r;

        /* A check that keeps its name and settings keeps its rise/fall
         * state, so a reload does not flap the instances that track it. */
        saved = calloc(n ? n : 1, sizeof(*saved));
        if (!saved)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                saved[i].name = strdup(d->checks[i]->config->name);
                saved[i].config = *d->checks[i]->config;
                saved[i].core = d->checks[i]->core;
        }
        health_monitor_stop(d);
        r = health_monitor_start(d);
        for (size_t i = 0; r >= 0 && i < d->n_checks; i++) {
                struct check_rt *c = d->checks[i];

                for (size_t k = 0; k < n; k++) {
                        const struct hamgr_check_config *o = &saved[k].config;

                        if (saved[k].name && streq(saved[k].name, c->config->name) && o->type == c->config->type &&
                            o->rise == c->config->rise && o->fall == c->config->fall) {
                                c->core = saved[k].core;
                                break;
                        }
                }
        }
        for (size_t i = 0; i < n; i++)
                free(saved[i].name);
        free(saved);
        return r;
}

void health_monitor_status_text(struct hamgr_daemon *d, struct buf *b) {
        for (size_t i = 0; i < d->n_checks; i++) {
                const struct check_rt *c = d->checks[i];

                buf_printf(b, "check %s (%s): %s%s%s\n", c->config->name, health_check_type_to_string(c->config->type),
                           health_status_to_string(c->core.status), c->detail[0] ? ", " : "", c->detail);
        }
}
