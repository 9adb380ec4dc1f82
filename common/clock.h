/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdint.h>
#include <time.h>

#include "common/macro.h"

/* CLOCK_MONOTONIC read now, in microseconds. For hamgr/ only (the pure
 * cores take time as a parameter): durations inside one handler, work in
 * worker threads, and inputs whose time matters more than the event
 * loop's cached wake-up time. */
static inline uint64_t clock_monotonic_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}
