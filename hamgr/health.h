/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Health checks on the daemon's event loop (see health/ for the pure core
 * and the probes). */

#include "health/core.h"

struct hamgr_daemon;
struct buf;
struct check_rt;

/* Start every configured check; the first probe runs at once. Returns 0 or -errno. */
int health_monitor_start(struct hamgr_daemon *d);

/* Stop and free all checks (running probes are killed). */
void health_monitor_stop(struct hamgr_daemon *d);

/* Status of the check called NAME; HEALTH_UNKNOWN before its first
 * rise/fall decision or for an unknown name. */
enum health_status health_monitor_status(struct hamgr_daemon *d, const char *name);

struct json_object;

/* The checks' status as a new JSON array in *ret. Returns 0 or -ENOMEM. */
int health_monitor_status_json(struct hamgr_daemon *d, struct json_object **ret);

/* Restart the checks from the daemon's (new) configuration; checks whose
 * name, type, rise and fall are unchanged keep their status. Call while
 * the old configuration is still allocated. Returns 0 or -errno. */
int health_monitor_reload(struct hamgr_daemon *d);

/* Append one line per check for the text status. */
void health_monitor_status_text(struct hamgr_daemon *d, struct buf *b);
