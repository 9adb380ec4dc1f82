/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Health check types and the pure evaluation of their results. Probes that
 * need the network (ICMP echo, TCP connect) are thin helpers in probe.h;
 * the daemon schedules them on its event loop and feeds the outcome into a
 * health_core (rise/fall).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum health_check_type {
        HEALTH_CHECK_WIREGUARD,   /* interface exists, up on a master, backend answers */
        HEALTH_CHECK_LINK,        /* interface exists and has carrier */
        HEALTH_CHECK_ICMP,        /* echo reply within the timeout */
        HEALTH_CHECK_TCP,         /* connect() completes within the timeout */
        HEALTH_CHECK_EXEC,        /* program exits 0 within the timeout */
        _HEALTH_CHECK_TYPE_MAX,
};

const char *health_check_type_to_string(enum health_check_type t);
/* Returns the type, or -EINVAL for an unknown name. */
int health_check_type_from_string(const char *s);
