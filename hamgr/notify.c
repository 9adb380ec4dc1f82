/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macro.h"
#include "log.h"
#include "notify.h"

static const char *const notify_kind_names[_NOTIFY_KIND_MAX] = {
        [NOTIFY_KIND_INSTANCE] = "INSTANCE",
        [NOTIFY_KIND_GROUP] = "GROUP",
};

const char *notify_kind_to_string(enum notify_kind k) {
        return ENUM_NAME(notify_kind_names, k);
}

#define NOTIFY_MAX_ARGS 5
#define NOTIFY_MAX_ENV  8

struct notify_job {
        struct notify_job *next;
        char *argv[NOTIFY_MAX_ARGS + 1];
        char *envp[NOTIFY_MAX_ENV + 1];
        uint64_t timeout_usec;
};

/* One queue per standalone instance, and one per group shared by the group
 * and its members: the jobs of a queue run strictly in order, so a group's
 * notification follows those of the member transitions that caused it. */
struct notify_queue {
        struct notify_queue *next;
        struct notifier *notifier;
        char *name;                     /* queue key: "instance/NAME" or "group/NAME" */
        struct notify_job *head, *tail;
        pid_t pid;                      /* running job, 0 if none */
        sd_event_source *child;
        sd_event_source *timeout;
};

struct notifier {
        sd_event *event;
        struct notify_queue *queues;
        void (*on_idle)(void *userdata);
        void *userdata;
};

static struct notify_job *job_free(struct notify_job *j) {
        if (!j)
                return NULL;
        for (size_t i = 0; j->argv[i]; i++)
                free(j->argv[i]);
        for (size_t i = 0; j->envp[i]; i++)
                free(j->envp[i]);
        free(j);
        return NULL;
}

static void queue_start_next(struct notify_queue *q);

static void queue_job_done(struct notify_queue *q) {
        struct notify_job *j = q->head;

        q->child = sd_event_source_disable_unref(q->child);
        q->timeout = sd_event_source_disable_unref(q->timeout);
        q->pid = 0;
        q->head = j->next;
        if (!q->head)
                q->tail = NULL;
        job_free(j);
        queue_start_next(q);
        if (notifier_idle(q->notifier) && q->notifier->on_idle)
                q->notifier->on_idle(q->notifier->userdata);
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        struct notify_queue *q = userdata;
        const char *script = q->head->argv[0];

        if (si->si_code == CLD_EXITED && si->si_status == 0)
                log_debug("notify %s for %s exited 0", script, q->name);
        else if (si->si_code == CLD_EXITED)
                log_fields(LOG_WARNING, 0, q->name, 0, NULL, NULL, "notify script %s exited with status %d",
                           script, si->si_status);
        else
                log_fields(LOG_WARNING, 0, q->name, 0, NULL, NULL, "notify script %s killed by signal %s",
                           script, strsignal(si->si_status));
        queue_job_done(q);
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct notify_queue *q = userdata;

        log_fields(LOG_WARNING, 0, q->name, 0, NULL, NULL,
                   "notify script %s did not finish within %" PRIu64 " ms, killing it", q->head->argv[0],
                   q->head->timeout_usec / USEC_PER_MSEC);
        /* The script runs in its own process group: take its children too.
         * on_child then reaps it and moves the queue on. */
        kill(-q->pid, SIGKILL);
        return 0;
}

static void queue_start_next(struct notify_queue *q) {
        struct notify_job *j;
        pid_t pid;
        int r;

        while ((j = q->head)) {
                pid = fork();
                if (pid < 0) {
                        log_error_errno(-errno, "cannot fork for notify script %s: %m", j->argv[0]);
                        goto drop;
                }
                if (pid == 0) {
                        sigset_t all;
                        int null;

                        /* Own process group, so a timeout kills the whole script. */
                        setpgid(0, 0);
                        sigemptyset(&all);
                        sigprocmask(SIG_SETMASK, &all, NULL);
                        null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                        if (null >= 0)
                                dup2(null, STDIN_FILENO);
                        /* The daemon's environment plus ours: scripts written for
                         * keepalived expect to find their usual variables. */
                        unsetenv("HAMGR_INSTANCE");
                        unsetenv("HAMGR_GROUP");
                        for (size_t i = 0; j->envp[i]; i++)
                                putenv(j->envp[i]);
                        if (!getenv("PATH"))
                                setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
                        execv(j->argv[0], j->argv);
                        fprintf(stderr, "hamgr: cannot run notify script %s: %m\n", j->argv[0]);
                        _exit(127);
                }
                setpgid(pid, pid); /* also from the parent: no race with the timeout */
                q->pid = pid;
                r = sd_event_add_child(q->notifier->event, &q->child, pid, WEXITED, on_child, q);
                if (r < 0) {
                        log_error_errno(r, "cannot watch notify script %s: %m", j->argv[0]);
                        kill(-pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        q->pid = 0;
                        goto drop;
                }
                r = sd_event_add_time_relative(q->notifier->event, &q->timeout, CLOCK_MONOTONIC, j->timeout_usec,
                                               0, on_timeout, q);
                if (r < 0)
                        log_warning_errno(r, "notify script %s runs without a timeout: %m", j->argv[0]);
                return;
        drop:
                q->head = j->next;
                if (!q->head)
                        q->tail = NULL;
                job_free(j);
        }
}

static struct notify_queue *queue_get(struct notifier *n, const char *name) {
        struct notify_queue *q;

        for (q = n->queues; q; q = q->next)
                if (streq(q->name, name))
                        return q;
        q = calloc(1, sizeof(*q));
        if (!q)
                return NULL;
        q->name = strdup(name);
        if (!q->name) {
                free(q);
                return NULL;
        }
        q->notifier = n;
        q->next = n->queues;
        n->queues = q;
        return q;
}

static int job_new(const char *script, bool with_args, const char *node, enum notify_kind kind, const char *name,
                   enum vrrp_state prev, enum vrrp_state state, int priority, uint64_t timeout_usec,
                   struct notify_job **ret) {
        struct notify_job *j;
        char prio[16];
        size_t e = 0;
        int ok = 1;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        snprintf(prio, sizeof(prio), "%d", priority);
        j->argv[0] = strdup(script);
        ok &= !!j->argv[0];
        if (with_args) {
                j->argv[1] = strdup(notify_kind_to_string(kind));
                j->argv[2] = strdup(name);
                j->argv[3] = strdup(vrrp_state_to_string(state));
                j->argv[4] = strdup(prio);
                for (size_t i = 1; i <= 4; i++)
                        ok &= !!j->argv[i];
        }
        ok &= asprintf(&j->envp[e++], "%s=%s", kind == NOTIFY_KIND_GROUP ? "HAMGR_GROUP" : "HAMGR_INSTANCE", name) >= 0;
        ok &= asprintf(&j->envp[e++], "HAMGR_STATE=%s", vrrp_state_to_string(state)) >= 0;
        ok &= asprintf(&j->envp[e++], "HAMGR_PREV_STATE=%s", vrrp_state_to_string(prev)) >= 0;
        ok &= asprintf(&j->envp[e++], "HAMGR_PRIORITY=%d", priority) >= 0;
        ok &= asprintf(&j->envp[e++], "HAMGR_NODE=%s", node ? node : "") >= 0;
        j->timeout_usec = timeout_usec;
        if (!ok) {
                job_free(j);
                return -ENOMEM;
        }
        *ret = j;
        return 0;
}

static void queue_push(struct notify_queue *q, struct notify_job *j) {
        if (q->tail)
                q->tail->next = j;
        else
                q->head = j;
        q->tail = j;
        if (q->pid == 0 && q->head == j)
                queue_start_next(q);
}

int notifier_transition(struct notifier *n, const struct hamgr_notify_config *config, const char *node,
                        const char *queue, enum notify_kind kind, const char *name, enum vrrp_state prev,
                        enum vrrp_state state, int priority) {
        const char *state_script;
        struct notify_queue *q;
        struct notify_job *j;
        uint64_t timeout = (uint64_t) config->timeout_ms * USEC_PER_MSEC;
        int r;

        switch (state) {
        case VRRP_STATE_MASTER:
                state_script = config->master;
                break;
        case VRRP_STATE_BACKUP:
                state_script = config->backup;
                break;
        case VRRP_STATE_FAULT:
                state_script = config->fault;
                break;
        case VRRP_STATE_STOP:
                state_script = config->stop;
                break;
        default:
                return 0;
        }
        if (!config->script && !state_script)
                return 0;

        q = queue_get(n, queue);
        if (!q)
                return -ENOMEM;
        if (config->script) {
                r = job_new(config->script, true, node, kind, name, prev, state, priority, timeout, &j);
                if (r < 0)
                        return r;
                queue_push(q, j);
        }
        if (state_script) {
                r = job_new(state_script, true, node, kind, name, prev, state, priority, timeout, &j);
                if (r < 0)
                        return r;
                queue_push(q, j);
        }
        return 0;
}

bool notifier_idle(const struct notifier *n) {
        for (const struct notify_queue *q = n->queues; q; q = q->next)
                if (q->head)
                        return false;
        return true;
}

int notifier_new(sd_event *event, void (*on_idle)(void *userdata), void *userdata, struct notifier **ret) {
        struct notifier *n;

        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->event = sd_event_ref(event);
        n->on_idle = on_idle;
        n->userdata = userdata;
        *ret = n;
        return 0;
}

struct notifier *notifier_free(struct notifier *n) {
        struct notify_queue *q, *qn;

        if (!n)
                return NULL;
        for (q = n->queues; q; q = qn) {
                qn = q->next;
                if (q->pid > 0) {
                        kill(-q->pid, SIGKILL);
                        waitpid(q->pid, NULL, 0);
                }
                sd_event_source_disable_unref(q->child);
                sd_event_source_disable_unref(q->timeout);
                while (q->head) {
                        struct notify_job *j = q->head;
                        q->head = j->next;
                        job_free(j);
                }
                free(q->name);
                free(q);
        }
        sd_event_unref(n->event);
        free(n);
        return NULL;
}
