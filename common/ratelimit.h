/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A log rate limiter: at most one event per window, counting the ones it
 * holds back so the next line that does get through can say how many. Pure:
 * the caller passes the time (microseconds, any monotonic origin).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ratelimit {
        uint64_t interval_usec;  /* window length; set by the caller, 0 lets everything through */
        uint64_t last;           /* when the last event was let through */
        bool started;            /* an event has been let through */
        uint64_t suppressed;     /* events held back since then */
};

/*
 * An event happens at NOW. Returns true if it may be logged: the first event,
 * or the first one at least interval_usec after the last one let through.
 * Then *ret_suppressed (may be NULL) is set to the number of events held back
 * in between, and the count restarts. Returns false and counts the event
 * otherwise (ret_suppressed untouched). A clock that goes back counts as
 * inside the window.
 */
bool ratelimit_below(struct ratelimit *rl, uint64_t now, uint64_t *ret_suppressed);

/*
 * ratelimit_below() for a log line: when the event may be logged, MORE
 * (LEN bytes, at least 1) is set to the suffix every such line ends with,
 * " (N more since the last line)" when N were held back, else "", and true
 * is returned. False otherwise, MORE untouched.
 */
bool ratelimit_log(struct ratelimit *rl, uint64_t now, char *more, size_t len);
