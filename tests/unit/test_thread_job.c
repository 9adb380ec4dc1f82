/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A function run beside the loop (hamgr/thread-job.c): it runs in another
 * thread, its callback on the loop's thread once it returned and with what
 * it wrote visible; a job the loop waits for itself never calls back; one
 * job's callback may start the next. */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "hamgr/thread-job.h"

struct probe {
        pthread_t loop_thread, work_thread;
        int worked, done;
        bool done_saw_work, done_on_loop;
        struct thread_job *job;
        sd_event *event;
        int again;                            /* jobs to start from the callback */
};

static void work(void *userdata) {
        struct probe *p = userdata;

        p->work_thread = pthread_self();
        usleep(10 * 1000);
        p->worked++;
}

static void done(void *userdata) {
        struct probe *p = userdata;

        p->job = NULL;
        p->done++;
        p->done_saw_work = p->worked == p->done;
        p->done_on_loop = pthread_equal(pthread_self(), p->loop_thread);
        if (p->again > 0) {
                p->again--;
                assert_int_equal(thread_job_start(p->event, SD_EVENT_PRIORITY_NORMAL, work, done, p, &p->job), 0);
        }
}

static void run_until_done(struct probe *p, int n) {
        for (int i = 0; i < 500 && p->done < n; i++)
                assert_true(sd_event_run(p->event, 10 * 1000) >= 0);
}

static void test_runs_beside_then_calls_back(void **state) {
        struct probe p = { .loop_thread = pthread_self() };

        (void) state;
        assert_int_equal(sd_event_new(&p.event), 0);
        assert_int_equal(thread_job_start(p.event, SD_EVENT_PRIORITY_IDLE, work, done, &p, &p.job), 0);
        assert_non_null(p.job);
        run_until_done(&p, 1);
        assert_int_equal(p.worked, 1);
        assert_int_equal(p.done, 1);
        assert_null(p.job);
        assert_true(p.done_saw_work);
        assert_true(p.done_on_loop);
        assert_false(pthread_equal(p.work_thread, p.loop_thread));
        sd_event_unref(p.event);
}

static void test_join_free_never_calls_back(void **state) {
        struct probe p = { .loop_thread = pthread_self() };

        (void) state;
        assert_int_equal(sd_event_new(&p.event), 0);
        assert_int_equal(thread_job_start(p.event, SD_EVENT_PRIORITY_NORMAL, work, done, &p, &p.job), 0);
        p.job = thread_job_join_free(p.job);
        assert_int_equal(p.worked, 1); /* joined: its work is done */
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(p.event, 10 * 1000) >= 0);
        assert_int_equal(p.done, 0);
        assert_null(thread_job_join_free(NULL));
        sd_event_unref(p.event);
}

static void test_callback_starts_the_next(void **state) {
        struct probe p = { .loop_thread = pthread_self(), .again = 2 };

        (void) state;
        assert_int_equal(sd_event_new(&p.event), 0);
        assert_int_equal(thread_job_start(p.event, SD_EVENT_PRIORITY_NORMAL, work, done, &p, &p.job), 0);
        run_until_done(&p, 3);
        assert_int_equal(p.worked, 3);
        assert_int_equal(p.done, 3);
        assert_true(p.done_saw_work);
        assert_null(p.job);
        assert_int_equal(thread_job_start(NULL, 0, work, done, &p, &p.job), -EINVAL);
        sd_event_unref(p.event);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_runs_beside_then_calls_back),
                cmocka_unit_test(test_join_free_never_calls_back),
                cmocka_unit_test(test_callback_starts_the_next),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
