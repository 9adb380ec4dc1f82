/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "common/clock.h"
#include "common/macro.h"
#include "control.h"
#include "daemon.h"
#include "link.h"
#include "log.h"
#include "notify.h"
#include "vrrp/address.h"
#include "endpoints.h"
#include "health.h"
#include "sync.h"
#include "wireguard.h"

/* How long a shutdown may wait for STOP notify scripts before exiting anyway. */
#define STOP_GRACE_USEC (30 * USEC_PER_SEC)

uint64_t daemon_now(struct hamgr_daemon *d) {
        uint64_t now = 0;

        sd_event_now(d->event, CLOCK_MONOTONIC, &now);
        return MAX(now, d->clock_floor_usec);
}

uint64_t daemon_now_fresh(struct hamgr_daemon *d) {
        d->clock_floor_usec = MAX(d->clock_floor_usec, clock_monotonic_usec());
        return daemon_now(d);
}

static struct hamgr_group_rt *group_rt_free(struct hamgr_group_rt *g) {
        if (!g)
                return NULL;
        free(g->name);
        free(g);
        return NULL;
}

static void daemon_free_runtime(struct hamgr_instance **instances, size_t n_instances, struct hamgr_group_rt **groups,
                                size_t n_groups) {
        for (size_t i = 0; i < n_instances; i++)
                instance_free(instances[i]);
        free(instances);
        for (size_t i = 0; i < n_groups; i++)
                group_rt_free(groups[i]);
        free(groups);
}

/* Build one group per configured group, plus one per standalone instance. */
static int daemon_build_groups(struct hamgr_config *config, struct hamgr_instance **instances, size_t n_instances,
                               struct hamgr_group_rt ***ret, size_t *ret_n) {
        struct hamgr_group_rt **groups;
        size_t n = 0;

        groups = calloc(config->n_groups + n_instances, sizeof(*groups));
        if (!groups)
                return -ENOMEM;
        for (size_t i = 0; i < n_instances; i++)
                instances[i]->group = NULL;

        for (size_t gi = 0; gi < config->n_groups; gi++) {
                const struct hamgr_group_config *gc = &config->groups[gi];
                struct hamgr_group_rt *g = calloc(1, sizeof(*g));
                struct vrrp_fsm *fsms[VRRP_GROUP_MAX_MEMBERS];

                if (!g)
                        goto oom;
                groups[n++] = g;
                g->name = strdup(gc->name);
                if (!g->name)
                        goto oom;
                g->notified_state = VRRP_STATE_INIT;
                for (size_t m = 0; m < gc->n_instances && g->n_members < VRRP_GROUP_MAX_MEMBERS; m++)
                        for (size_t i = 0; i < n_instances; i++)
                                if (streq(instances[i]->config->name, gc->instances[m])) {
                                        instances[i]->group = g;
                                        instances[i]->group_index = g->n_members;
                                        fsms[g->n_members] = &instances[i]->fsm;
                                        g->members[g->n_members++] = instances[i];
                                }
                vrrp_group_init(&g->group, fsms, g->n_members);
        }
        for (size_t i = 0; i < n_instances; i++) {
                struct hamgr_group_rt *g;
                struct vrrp_fsm *fsm = &instances[i]->fsm;

                if (instances[i]->group)
                        continue;
                g = calloc(1, sizeof(*g));
                if (!g)
                        goto oom;
                groups[n++] = g;
                g->members[0] = instances[i];
                g->n_members = 1;
                instances[i]->group = g;
                instances[i]->group_index = 0;
                vrrp_group_init(&g->group, &fsm, 1);
        }
        /* Group fault bookkeeping follows the members' current fault state. */
        for (size_t k = 0; k < n; k++)
                for (size_t m = 0; m < groups[k]->n_members; m++)
                        groups[k]->group.own_fault[m] = groups[k]->members[m]->fault_reported;
        *ret = groups;
        *ret_n = n;
        return 0;
oom:
        for (size_t k = 0; k < n; k++)
                group_rt_free(groups[k]);
        free(groups);
        return -ENOMEM;
}

void daemon_update_status(struct hamgr_daemon *d) {
        char status[512];
        size_t off = 0;

        off += snprintf(status + off, sizeof(status) - off, "%zu instance%s:", d->n_instances,
                        d->n_instances == 1 ? "" : "s");
        for (size_t i = 0; i < d->n_instances && off < sizeof(status); i++)
                off += snprintf(status + off, sizeof(status) - off, " %s=%s", d->instances[i]->config->name,
                                vrrp_state_to_string(d->instances[i]->fsm.state));
        sd_notifyf(false, "STATUS=%s", status);
}

void daemon_checks_changed(struct hamgr_daemon *d) {
        if (d->stopping)
                return;
        for (size_t i = 0; i < d->n_instances; i++)
                if (d->instances[i]->started)
                        instance_evaluate(d->instances[i]);
}

static void on_links_changed(void *userdata) {
        struct hamgr_daemon *d = userdata;

        if (d->stopping)
                return;
        for (size_t i = 0; i < d->n_instances; i++)
                instance_evaluate(d->instances[i]);
        wg_followers_links_changed(d);
}

void daemon_maybe_exit(struct hamgr_daemon *d) {
        if (d->stopping && notifier_idle(d->notifier))
                sd_event_exit(d->event, 0);
}

static void on_notifier_idle(void *userdata) {
        daemon_maybe_exit(userdata);
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct hamgr_daemon *d = userdata;

        log_warning("notify scripts still running at shutdown, exiting without them");
        return sd_event_exit(d->event, 0);
}

static void daemon_shutdown_instances(struct hamgr_instance **instances, size_t n) {
        struct vrrp_event ev = { .type = VRRP_EVENT_SHUTDOWN };

        for (size_t i = 0; i < n; i++)
                if (instances[i]->fsm.state != VRRP_STATE_STOP)
                        instance_dispatch(instances[i], &ev);
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct hamgr_daemon *d = userdata;

        if (d->stopping)
                return 0;
        log_info("received %s, releasing and stopping", strsignal((int) si->ssi_signo));
        sd_notify(false, "STOPPING=1");
        daemon_shutdown_instances(d->instances, d->n_instances);
        d->stopping = true;
        sd_event_add_time_relative(d->event, &d->stop_timeout, CLOCK_MONOTONIC, STOP_GRACE_USEC, 0,
                                   on_stop_timeout, d);
        daemon_maybe_exit(d);
        return 0;
}

static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct hamgr_daemon *d = userdata;
        int r;

        if (d->stopping)
                return 0;
        sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, daemon_now(d));
        r = daemon_reload(d);
        if (r < 0)
                log_error_errno(r, "reload of %s failed, keeping the running configuration", d->config_path);
        sd_notify(false, "READY=1");
        daemon_update_status(d);
        return 0;
}

static int load_config(const char *path, struct hamgr_config **ret) {
        struct hamgr_config_errors errors = {};
        int r;

        r = hamgr_config_load(path, ret, &errors);
        for (size_t i = 0; i < errors.n; i++) {
                if (errors.items[i].line > 0)
                        log_error("%s:%d: %s", path, errors.items[i].line, errors.items[i].message);
                else
                        log_error("%s: %s", path, errors.items[i].message);
        }
        hamgr_config_errors_clear(&errors);
        return r;
}

/* Fill *ret with one instance per configured instance: an instance of
 * REUSE whose protocol identity is unchanged (marked in ret_reused, REUSE
 * itself untouched), or a new one. Nothing is reconfigured here, so a
 * failure leaves the running instances as they were. */
static int create_instances(struct hamgr_daemon *d, struct hamgr_config *config, struct hamgr_instance *const *reuse,
                            size_t n_reuse, struct hamgr_instance ***ret, bool **ret_reused, size_t *ret_n) {
        _cleanup_(freep) struct hamgr_instance **instances = NULL;
        _cleanup_(freep) bool *reused = NULL, *taken = NULL;
        size_t n = config->n_vrrp;
        int r;

        instances = calloc(n ? n : 1, sizeof(*instances));
        reused = calloc(n ? n : 1, sizeof(*reused));
        taken = calloc(n_reuse ? n_reuse : 1, sizeof(*taken));
        if (!instances || !reused || !taken)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct hamgr_vrrp_config *c = &config->vrrp[i];

                for (size_t k = 0; k < n_reuse && !instances[i]; k++)
                        if (!taken[k] && instance_config_compatible(reuse[k]->config, c)) {
                                instances[i] = reuse[k];
                                taken[k] = reused[i] = true;
                        }
                if (instances[i])
                        continue;
                r = instance_new(d, c, &instances[i]);
                if (r < 0) {
                        for (size_t k = 0; k < i; k++)
                                if (!reused[k])
                                        instance_free(instances[k]);
                        return r;
                }
        }
        *ret = TAKE_PTR(instances);
        *ret_reused = TAKE_PTR(reused);
        *ret_n = n;
        return 0;
}

static void start_new_instances(struct hamgr_daemon *d) {
        for (size_t i = 0; i < d->n_instances; i++)
                if (!d->instances[i]->started)
                        instance_remove_stale_vips(d->instances[i]);
        for (size_t i = 0; i < d->n_instances; i++)
                instance_evaluate(d->instances[i]);
}

int daemon_reload(struct hamgr_daemon *d) {
        struct hamgr_config *config = NULL;
        struct hamgr_instance **instances = NULL, **leaving = NULL;
        _cleanup_(freep) bool *reused = NULL;
        struct hamgr_group_rt **groups = NULL, **solo = NULL;
        size_t n_instances = 0, n_groups = 0, n_leaving = 0, n_solo = 0;
        struct hamgr_config empty = {};
        int r;

        log_info("reloading %s", d->config_path);
        r = load_config(d->config_path, &config);
        if (r < 0)
                return r;
        /* As at startup: nothing changes when an entry names a link that is not WireGuard. */
        r = wg_followers_check(config);
        if (r < 0)
                goto fail;
        r = create_instances(d, config, d->instances, d->n_instances, &instances, &reused, &n_instances);
        if (r < 0)
                goto fail;
        leaving = calloc(d->n_instances ? d->n_instances : 1, sizeof(*leaving));
        if (!leaving) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t k = 0; k < d->n_instances; k++) {
                bool kept = false;

                for (size_t i = 0; i < n_instances; i++)
                        kept |= instances[i] == d->instances[k];
                if (!kept)
                        leaving[n_leaving++] = d->instances[k];
        }
        /* Each leaving instance stops on its own, not as part of a group. */
        r = daemon_build_groups(&empty, leaving, n_leaving, &solo, &n_solo);
        if (r < 0)
                goto fail;
        r = daemon_build_groups(config, instances, n_instances, &groups, &n_groups);
        if (r < 0)
                goto fail;

        /* Nothing can fail from here on. Removed or changed instances release
         * their addresses before new ones claim them; unchanged instances
         * keep their state and take the new settings in place. */
        for (size_t k = 0; k < n_leaving; k++)
                log_fields(LOG_NOTICE, 0, leaving[k]->config->name, leaving[k]->config->vrid, NULL, NULL,
                           "removed or changed by reload, stopping");
        daemon_shutdown_instances(leaving, n_leaving);
        daemon_free_runtime(leaving, n_leaving, solo, n_solo);
        for (size_t i = 0; i < n_instances; i++)
                if (reused[i])
                        instance_reconfigure(instances[i], &config->vrrp[i]);
        free(d->instances);
        for (size_t k = 0; k < d->n_groups; k++)
                group_rt_free(d->groups[k]);
        free(d->groups);
        {
                struct hamgr_config *old_config = d->config;

                d->config = config;
                d->instances = instances;
                d->n_instances = n_instances;
                d->groups = groups;
                d->n_groups = n_groups;
                /* These compare against the old settings they still point to. */
                r = health_monitor_reload(d);
                if (r < 0)
                        log_error_errno(r, "cannot restart the health checks: %m");
                r = wg_followers_reload(d);
                if (r < 0)
                        log_error_errno(r, "cannot follow the new WireGuard settings: %m");
                r = endpoints_reload(d);
                if (r < 0)
                        log_error_errno(r, "cannot restart the endpoint watchers: %m");
                r = sync_reload(d);
                if (r < 0)
                        log_error_errno(r, "cannot restart replication: %m");
                hamgr_config_free(old_config);
        }
        start_new_instances(d);
        log_info("reloaded: %zu instance%s", n_instances, n_instances == 1 ? "" : "s");
        return 0;
fail:
        /* Leave the running instances exactly as they were; rebuilding the
         * old groups restores the members' group pointers. */
        if (solo || groups) {
                for (size_t k = 0; k < d->n_groups; k++)
                        group_rt_free(d->groups[k]);
                free(d->groups);
                d->groups = NULL;
                d->n_groups = 0;
                (void) daemon_build_groups(d->config, d->instances, d->n_instances, &d->groups, &d->n_groups);
        }
        for (size_t k = 0; k < n_solo; k++)
                group_rt_free(solo[k]);
        free(solo);
        for (size_t k = 0; k < n_groups; k++)
                group_rt_free(groups[k]);
        free(groups);
        for (size_t i = 0; i < n_instances; i++)
                if (!reused[i])
                        instance_free(instances[i]);
        free(instances);
        free(leaving);
        hamgr_config_free(config);
        return r;
}

int daemon_new(const char *config_path, struct hamgr_daemon **ret) {
        struct hamgr_daemon *d;
        sigset_t mask;
        int r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->config_path = strdup(config_path);
        if (!d->config_path) {
                r = -ENOMEM;
                goto fail;
        }
        r = load_config(config_path, &d->config);
        if (r < 0)
                goto fail;

        /* Signals and SIGCHLD (for notify scripts) are handled on the loop. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&d->event);
        if (r < 0)
                goto fail;
        r = sd_event_add_signal(d->event, NULL, SIGTERM, on_terminate, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, NULL, SIGINT, on_terminate, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, NULL, SIGHUP, on_reload, d);
        if (r < 0)
                goto fail;
        /* Sends WATCHDOG=1 when systemd asks for it (WATCHDOG_USEC): on any
         * loop iteration once a quarter of the period has passed, and wakes
         * up for it between half and three quarters of the period. */
        r = sd_event_set_watchdog(d->event, true);
        if (r < 0)
                log_warning_errno(r, "cannot enable the watchdog: %m");

        r = vrrp_address_socket_open(&d->nl);
        if (r < 0) {
                log_error_errno(r, "cannot open a netlink socket: %m");
                goto fail;
        }
        r = link_monitor_new(d->event, on_links_changed, d, &d->links);
        if (r < 0)
                goto fail;
        r = notifier_new(d->event, on_notifier_idle, d, &d->notifier);
        if (r < 0)
                goto fail;
        r = control_server_new(d, d->config->control_socket, &d->control);
        if (r < 0) {
                log_error_errno(r, "cannot listen on %s: %m", d->config->control_socket);
                goto fail;
        }
        {
                _cleanup_(freep) bool *reused = NULL;

                r = create_instances(d, d->config, NULL, 0, &d->instances, &reused, &d->n_instances);
                if (r < 0)
                        goto fail;
        }
        r = daemon_build_groups(d->config, d->instances, d->n_instances, &d->groups, &d->n_groups);
        if (r < 0)
                goto fail;
        *ret = d;
        return 0;
fail:
        daemon_free(d);
        return r;
}

struct hamgr_daemon *daemon_free(struct hamgr_daemon *d) {
        if (!d)
                return NULL;
        sync_stop(d);
        endpoints_stop(d);
        wg_followers_stop(d);
        health_monitor_stop(d);
        daemon_free_runtime(d->instances, d->n_instances, d->groups, d->n_groups);
        control_server_free(d->control);
        notifier_free(d->notifier);
        link_monitor_free(d->links);
        vrrp_address_socket_close(d->nl);
        sd_event_source_disable_unref(d->stop_timeout);
        sd_event_unref(d->event);
        hamgr_config_free(d->config);
        free(d->config_path);
        free(d);
        return NULL;
}

int daemon_run(struct hamgr_daemon *d) {
        int r;

        d->started_usec = daemon_now(d);
        log_info("hamgr %s starting: node %s, %zu instance%s, control socket %s", HAMGR_VERSION,
                 d->config->node_name, d->n_instances, d->n_instances == 1 ? "" : "s", d->config->control_socket);
        r = health_monitor_start(d);
        if (r < 0)
                return log_error_errno(r, "cannot start the health checks: %m");
        r = wg_followers_start(d);
        if (r < 0)
                return log_error_errno(r, "cannot set up the WireGuard interfaces: %m");
        r = endpoints_start(d);
        if (r < 0)
                return log_error_errno(r, "cannot start the endpoint watchers: %m");
        r = sync_start(d);
        if (r < 0)
                return log_error_errno(r, "cannot start replication: %m");
        start_new_instances(d);
        sd_notify(false, "READY=1");
        daemon_update_status(d);
        r = sd_event_loop(d->event);
        if (r < 0)
                return log_error_errno(r, "event loop failed: %m");
        log_info("stopped");
        return 0;
}
