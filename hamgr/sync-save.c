/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One thread per save, as wg-io: saves come at most as often as changes,
 * and a thread that owns its buffers can be waited for alone. The worker
 * touches only its job (the plain image, a copy of the key, the result),
 * then writes the eventfd; the loop reads the result after joining it.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <sodium.h>

#include "common/macro.h"
#include "sync-file.h"
#include "sync-save.h"

struct save_job {
        uint8_t key[REPLICA_STORE_KEY_LEN];
        uint8_t *plain;                       /* replica_encode(): wiped */
        size_t len;
        const char *dir;                      /* the saver's, which outlives the job */
        uint64_t gen;
        int done_fd;
        int r;                                /* the worker's until joined */
};

struct sync_saver {
        sd_event *event;
        char *dir;
        uint8_t key[REPLICA_STORE_KEY_LEN];
        const struct replica *replica;
        sync_saver_cb_t cb;
        void *userdata;
        uint64_t requested, done;
        struct save_job *job;                 /* in flight */
        pthread_t worker;
        sd_event_source *done_source;
};

static int save_image(const uint8_t key[static REPLICA_STORE_KEY_LEN], const char *dir, const uint8_t *plain,
                      size_t len) {
        _cleanup_(freep) uint8_t *img = NULL;
        size_t img_len;
        int r;

        r = replica_store_seal(key, plain, len, &img, &img_len);
        if (r < 0)
                return r;
        return replica_store_write(dir, img, img_len);
}

static void *save_worker(void *userdata) {
        struct save_job *job = userdata;
        uint64_t one = 1;

        job->r = save_image(job->key, job->dir, job->plain, job->len);
        if (write(job->done_fd, &one, sizeof(one)) < 0) {
                /* Cannot happen (a counter far from overflow); the loop
                 * still joins. */
        }
        return NULL;
}

static void job_free(struct save_job *job) {
        if (!job)
                return;
        if (job->plain) {
                sodium_memzero(job->plain, job->len);
                free(job->plain);
        }
        sodium_memzero(job->key, sizeof(job->key));
        if (job->done_fd >= 0)
                close(job->done_fd);
        free(job);
}

/* Join the job in flight and drop its source; returns it (the caller's to
 * free). */
static struct save_job *job_join(struct sync_saver *sv) {
        struct save_job *job = TAKE_PTR(sv->job);

        if (!job)
                return NULL;
        (void) pthread_join(sv->worker, NULL);
        sv->done_source = sd_event_source_disable_unref(sv->done_source);
        return job;
}

/* A save ended: report it; the 12 MB of a large one go back to the system
 * (glibc keeps them once it raised its mmap threshold). */
static void save_ended(struct sync_saver *sv, uint64_t gen, int r) {
        sv->done = gen;
        malloc_trim(0);
        sv->cb(gen, r, sv->userdata);
}

static int save_on_loop(struct sync_saver *sv) {
        uint64_t gen = sv->requested;
        int r = replica_store_save(sv->dir, sv->key, sv->replica);

        save_ended(sv, gen, r);
        return r;
}

static void save_start(struct sync_saver *sv);

static int on_save_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct sync_saver *sv = userdata;
        struct save_job *job;
        uint64_t v, gen;
        int r;

        if (read(fd, &v, sizeof(v)) < 0)
                return 0; /* spurious: the worker has not written yet */
        job = job_join(sv);
        gen = job->gen;
        r = job->r;
        job_free(job);
        save_ended(sv, gen, r);
        if (sv->requested > sv->done && !sv->job)
                save_start(sv);
        return 0;
}

/* Encode the state now and write it in a worker; on the loop if no
 * worker can be started. */
static void save_start(struct sync_saver *sv) {
        struct save_job *job = calloc(1, sizeof(*job));
        int r;

        if (!job)
                goto on_loop;
        job->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (job->done_fd < 0)
                goto on_loop;
        if (replica_encode(sv->replica, &job->plain, &job->len) < 0)
                goto on_loop;
        memcpy(job->key, sv->key, sizeof(job->key));
        job->dir = sv->dir;
        job->gen = sv->requested;
        r = sd_event_add_io(sv->event, &sv->done_source, job->done_fd, EPOLLIN, on_save_done, sv);
        if (r < 0)
                goto on_loop;
        if (pthread_create(&sv->worker, NULL, save_worker, job) != 0) {
                sv->done_source = sd_event_source_disable_unref(sv->done_source);
                goto on_loop;
        }
        sv->job = job;
        return;
on_loop:
        job_free(job);
        (void) save_on_loop(sv);
}

int sync_saver_new(sd_event *e, const char *dir, const uint8_t key[static REPLICA_STORE_KEY_LEN],
                   const struct replica *replica, sync_saver_cb_t cb, void *userdata, struct sync_saver **ret) {
        struct sync_saver *sv;

        if (!e || !dir || !replica || !cb || !ret)
                return -EINVAL;
        sv = calloc(1, sizeof(*sv));
        if (!sv)
                return -ENOMEM;
        sv->dir = strdup(dir);
        if (!sv->dir) {
                free(sv);
                return -ENOMEM;
        }
        sv->event = e;
        memcpy(sv->key, key, sizeof(sv->key));
        sv->replica = replica;
        sv->cb = cb;
        sv->userdata = userdata;
        *ret = sv;
        return 0;
}

uint64_t sync_saver_request(struct sync_saver *sv) {
        uint64_t gen = ++sv->requested;

        if (!sv->job)
                save_start(sv);
        return gen;
}

uint64_t sync_saver_done(const struct sync_saver *sv) {
        return sv->done;
}

uint64_t sync_saver_requested(const struct sync_saver *sv) {
        return sv->requested;
}

int sync_saver_flush(struct sync_saver *sv) {
        struct save_job *job = job_join(sv);

        if (job) {
                uint64_t gen = job->gen;
                int r = job->r;

                job_free(job);
                save_ended(sv, gen, r);
        }
        sv->requested++;
        return save_on_loop(sv);
}

struct sync_saver *sync_saver_free(struct sync_saver *sv) {
        if (!sv)
                return NULL;
        job_free(job_join(sv));
        sodium_memzero(sv->key, sizeof(sv->key));
        free(sv->dir);
        free(sv);
        return NULL;
}
