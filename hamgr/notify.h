/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Notify scripts, keepalived-compatible. Unlike keepalived, the scripts for
 * one instance (or one group and its members) run in order, one at a time, each bounded by the
 * configured timeout; the protocol never waits for them.
 */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "vrrp/fsm.h"

struct notifier;

enum notify_kind {
        NOTIFY_KIND_INSTANCE,
        NOTIFY_KIND_GROUP,
        _NOTIFY_KIND_MAX,
};

const char *notify_kind_to_string(enum notify_kind k);

/* ON_IDLE (may be NULL) runs whenever the last queued script has finished. */
int notifier_new(sd_event *event, void (*on_idle)(void *userdata), void *userdata, struct notifier **ret);

/* Kills running scripts' process groups. Accepts NULL. */
struct notifier *notifier_free(struct notifier *n);

/*
 * Queue the scripts for a transition of NAME to STATE on the queue named
 * QUEUE (scripts of one queue run one at a time, in order; the daemon uses
 * one queue per standalone instance and one per group with its members): the generic script
 * and then the per-state script, both with arguments `KIND NAME STATE
 * PRIORITY`. Both get HAMGR_INSTANCE (or HAMGR_GROUP), HAMGR_STATE,
 * HAMGR_PREV_STATE, HAMGR_PRIORITY and HAMGR_NODE on top of the daemon's
 * environment. States other than
 * MASTER, BACKUP, FAULT, STOP are not notified. Returns 0 or -errno.
 */
int notifier_transition(struct notifier *n, const struct hamgr_notify_config *config, const char *node,
                        const char *queue, enum notify_kind kind, const char *name, enum vrrp_state prev,
                        enum vrrp_state state, int priority);

/* True when nothing is queued or running. */
bool notifier_idle(const struct notifier *n);
