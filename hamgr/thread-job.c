/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "thread-job.h"

struct thread_job {
        /* Set before the thread starts, then read-only for both sides. */
        thread_job_work_t work;
        thread_job_done_t done;
        void *userdata;
        int done_fd;
        /* The loop's. */
        pthread_t thread;
        sd_event_source *done_source;
};

static void job_free(struct thread_job *j) {
        sd_event_source_disable_unref(j->done_source);
        if (j->done_fd >= 0)
                close(j->done_fd);
        free(j);
}

static void *job_thread(void *userdata) {
        struct thread_job *j = userdata;
        uint64_t one = 1;

        j->work(j->userdata);
        if (write(j->done_fd, &one, sizeof(one)) < 0) {
                /* Cannot happen (a counter far from overflow); a
                 * thread_job_join_free() still collects the job. */
        }
        return NULL;
}

static int on_job_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct thread_job *j = userdata;
        thread_job_done_t done = j->done;
        void *data = j->userdata;
        uint64_t v;

        if (read(fd, &v, sizeof(v)) < 0)
                return 0; /* spurious: the thread has not written yet */
        (void) pthread_join(j->thread, NULL);
        job_free(j);
        done(data);
        return 0;
}

int thread_job_start(sd_event *e, int64_t priority, thread_job_work_t work, thread_job_done_t done, void *userdata,
                     struct thread_job **ret) {
        struct thread_job *j;
        int r;

        if (!e || !work || !done || !ret)
                return -EINVAL;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        *j = (struct thread_job) { .work = work, .done = done, .userdata = userdata, .done_fd = -1 };
        j->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->done_fd < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(e, &j->done_source, j->done_fd, EPOLLIN, on_job_done, j);
        if (r >= 0)
                r = sd_event_source_set_priority(j->done_source, priority);
        if (r < 0)
                goto fail;
        r = -pthread_create(&j->thread, NULL, job_thread, j);
        if (r < 0)
                goto fail;
        *ret = j;
        return 0;
fail:
        job_free(j);
        return r;
}

struct thread_job *thread_job_join_free(struct thread_job *j) {
        if (!j)
                return NULL;
        (void) pthread_join(j->thread, NULL);
        job_free(j);
        return NULL;
}
