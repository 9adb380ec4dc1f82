/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "log.h"

static enum log_target log_target = LOG_TARGET_STDERR;
static int log_max_level = LOG_INFO;

static const char *const log_level_names[] = {
        [LOG_EMERG] = "emerg",   [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
        [LOG_ERR] = "error",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",     [LOG_DEBUG] = "debug",
};

/* JOURNAL_STREAM is "DEV:INO" of the stream systemd connected to stderr;
 * only when it still matches fd 2 are we really talking to the journal. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == dev && st.st_ino == ino;
}

void log_setup(enum log_target target, int max_level) {
        if (target == LOG_TARGET_AUTO)
                target = stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
        log_target = target;
        log_max_level = max_level;
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_fields(int level, int err, const char *instance, int vrid, const char *state,
               const char *const *extra, const char *fmt, ...) {
        char message[2048];
        va_list ap;
        int saved_errno = errno;

        if (level > log_max_level)
                return err < 0 ? err : 0;

        if (err < 0)
                errno = -err; /* lets %m in FMT print the error */
        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);

        if (log_target == LOG_TARGET_JOURNAL) {
                struct iovec iov[16];
                char buf[8][256];
                size_t n = 0, b = 0;

#define ADD_FIELD(...)                                                          \
                do {                                                            \
                        int _l = snprintf(buf[b], sizeof(buf[b]), __VA_ARGS__); \
                        if (_l < 0)                                             \
                                break;                                          \
                        iov[n++] = (struct iovec) { buf[b], strnlen(buf[b], sizeof(buf[b]) - 1) }; \
                        b++;                                                    \
                } while (0)

                ADD_FIELD("PRIORITY=%d", level);
                ADD_FIELD("SYSLOG_IDENTIFIER=hamgr");
                if (instance)
                        ADD_FIELD("INSTANCE=%s", instance);
                if (vrid > 0)
                        ADD_FIELD("VRID=%d", vrid);
                if (state)
                        ADD_FIELD("STATE=%s", state);
                if (err < 0)
                        ADD_FIELD("ERRNO=%d", -err);
#undef ADD_FIELD
                for (size_t i = 0; extra && extra[i] && n < ELEMENTSOF(iov) - 1; i++)
                        iov[n++] = (struct iovec) { (void *) extra[i], strlen(extra[i]) };
                /* MESSAGE last; iov entries must not contain the separator. */
                char msgfield[sizeof(message) + 8];
                snprintf(msgfield, sizeof(msgfield), "MESSAGE=%s", message);
                iov[n++] = (struct iovec) { msgfield, strlen(msgfield) };
                sd_journal_sendv(iov, (int) n);
        } else {
                const char *lvl = ENUM_NAME(log_level_names, level);
                if (instance)
                        fprintf(stderr, "hamgr: %s: %s: %s\n", lvl ? lvl : "?", instance, message);
                else
                        fprintf(stderr, "hamgr: %s: %s\n", lvl ? lvl : "?", message);
        }
        errno = saved_errno;
        return err < 0 ? err : 0;
}
