/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Daemon logging: to the journal with structured fields when stderr is
 * connected to it (JOURNAL_STREAM) or forced, to stderr otherwise.
 * Only hamgr/ logs above debug; library modules return errors instead.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

#include "common/macro.h"

enum log_target {
        LOG_TARGET_AUTO,
        LOG_TARGET_STDERR,
        LOG_TARGET_JOURNAL,
        _LOG_TARGET_MAX,
};

/* Pick the target (AUTO: journal when JOURNAL_STREAM names our stderr) and
 * the maximum level (LOG_DEBUG shows everything). */
void log_setup(enum log_target target, int max_level);
void log_set_max_level(int level);

/*
 * Log one message. INSTANCE (may be NULL), VRID (<=0: none) and STATE (may
 * be NULL) become the INSTANCE=, VRID=, STATE= journal fields and a
 * "INSTANCE: " prefix on stderr. Extra "KEY=value" fields may be passed
 * NULL-terminated in EXTRA (may be NULL). Returns -ERR if ERR < 0 else 0,
 * so callers can `return log_error_errno(r, ...)`.
 */
int log_fields(int level, int err, const char *instance, int vrid, const char *state,
               const char *const *extra, const char *fmt, ...) _printf_(7, 8);

/* For logging macros that put a fixed prefix argument before the caller's
 * format: LOG_FIRST(fmt, args...) is fmt, LOG_REST(fmt, args...) is
 * ", args..." (nothing when there are none). */
#define LOG_FIRST(a, ...) a
#define LOG_REST(a, ...) , ##__VA_ARGS__

#define log_debug(...)   log_fields(LOG_DEBUG, 0, NULL, 0, NULL, NULL, __VA_ARGS__)
#define log_info(...)    log_fields(LOG_INFO, 0, NULL, 0, NULL, NULL, __VA_ARGS__)
#define log_notice(...)  log_fields(LOG_NOTICE, 0, NULL, 0, NULL, NULL, __VA_ARGS__)
#define log_warning(...) log_fields(LOG_WARNING, 0, NULL, 0, NULL, NULL, __VA_ARGS__)
#define log_error(...)   log_fields(LOG_ERR, 0, NULL, 0, NULL, NULL, __VA_ARGS__)
#define log_error_errno(err, ...)   log_fields(LOG_ERR, (err), NULL, 0, NULL, NULL, __VA_ARGS__)
#define log_warning_errno(err, ...) log_fields(LOG_WARNING, (err), NULL, 0, NULL, NULL, __VA_ARGS__)
