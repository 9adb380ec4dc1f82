/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The pure rise/fall core of a health check, and the priority adjustment
 * that tracked checks apply to a VRRP instance.
 *
 * A check reports one boolean result per probe; health_core_update() turns
 * that stream into a debounced status the way keepalived and haproxy do:
 * `rise` consecutive successes are needed to be UP, `fall` consecutive
 * failures to be DOWN, and any contrary result restarts the count. A check
 * starts UNKNOWN and leaves it in whichever direction first completes its
 * run. Time is supplied by the caller and only recorded; nothing here reads
 * a clock.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum health_status {
        HEALTH_UNKNOWN,   /* no decision yet: neither a full rise nor a full fall run seen */
        HEALTH_UP,
        HEALTH_DOWN,
        _HEALTH_STATUS_MAX,
};

/* "unknown", "up", "down"; NULL for an out-of-range value. */
const char *health_status_to_string(enum health_status s);

struct health_core {
        unsigned rise, fall;             /* thresholds, each >= 1 */
        enum health_status status;
        unsigned consecutive_ok;         /* current run of successes (saturates) */
        unsigned consecutive_fail;       /* current run of failures (saturates) */
        uint64_t last_change_usec;       /* `now` of the last status change; 0 after init */
};

/* Reset H to UNKNOWN with no history. RISE and FALL must be >= 1; 0 is
 * taken as 1 (one result decides). */
void health_core_init(struct health_core *h, unsigned rise, unsigned fall);

/* Feed one probe result observed at NOW (microseconds, caller's clock).
 * An ok result extends the success run and ends any failure run, and vice
 * versa. The status becomes UP when the success run reaches `rise` and
 * DOWN when the failure run reaches `fall`; reaching the threshold again
 * while already in that status changes nothing. Returns true when the status
 * changed (and then last_change_usec = NOW), false otherwise. */
bool health_core_update(struct health_core *h, bool ok, uint64_t now);

/* One tracked check as seen by a VRRP instance. */
struct health_weight {
        int weight;
        enum health_status status;
};

/* VRRP priority after applying tracked checks, keepalived semantics:
 *   weight > 0: adds weight while the check is UP;
 *   weight < 0: subtracts |weight| while the check is DOWN;
 *   weight == 0, or status UNKNOWN: no effect. (A zero-weight check that
 *   should put the instance into FAULT is the caller's business.)
 * The result is clamped to 1..254, so checks can neither release mastership
 * (priority 0) nor claim address ownership (255). A BASE_PRIORITY of 255 is
 * an address owner and is returned unchanged whatever the checks say.
 * CHECKS may be NULL when N is 0. */
int health_priority_adjust(int base_priority, const struct health_weight *checks, size_t n);
