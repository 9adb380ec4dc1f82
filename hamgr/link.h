/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Link and address events from the kernel (libnl cache manager on the
 * sd-event loop). The daemon re-evaluates instances on every change. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct link_monitor;

struct link_info {
        int ifindex;
        bool up;              /* administratively up and carrier (IFF_UP and IFF_RUNNING) */
        bool up_admin;        /* IFF_UP alone */
        uint8_t mac[6];
};

typedef void (*link_change_handler_t)(void *userdata);

/* Start watching links and addresses; ON_CHANGE runs after each batch of
 * kernel notifications. Returns 0 or -errno. */
int link_monitor_new(sd_event *event, link_change_handler_t on_change, void *userdata,
                     struct link_monitor **ret);

/* Accepts NULL. */
struct link_monitor *link_monitor_free(struct link_monitor *m);

/* Current state of the interface called NAME. Returns 0 and *ret, or
 * -ENODEV if there is no such interface. */
int link_monitor_get(struct link_monitor *m, const char *name, struct link_info *ret);

/* Whether the interface called NAME is administratively up now, asked of
 * the kernel directly (SIOCGIFFLAGS), not of the cache, which lags behind
 * a change hamgr itself has just made. Returns 1, 0, or -errno (-ENODEV). */
int link_admin_up_now(const char *name);
