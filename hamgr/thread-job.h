/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A function run in a thread of its own beside the event loop, and a
 * callback on the loop once it has returned: how hamgr keeps device reads
 * and writes, and state file saves, off the loop that sends VRRP adverts.
 * The thread signals an eventfd when the function returns; the loop joins
 * the thread before the callback runs, so whatever the function wrote is
 * the loop's again by then. One job, one thread: a job can be waited for
 * alone.
 */

#include <stdint.h>

#include <systemd/sd-event.h>

struct thread_job;

/* Runs in the job's thread. */
typedef void (*thread_job_work_t)(void *userdata);
/* Runs on the loop after WORK returned and its thread was joined. The job
 * is freed before: forget any pointer to it. */
typedef void (*thread_job_done_t)(void *userdata);

/* Start WORK(USERDATA) in a new thread; DONE(USERDATA) runs on E at
 * PRIORITY (an sd-event priority) once it returned. Returns 0 and the job
 * in *RET, or a negative errno with nothing started (*RET untouched). */
int thread_job_start(sd_event *e, int64_t priority, thread_job_work_t work, thread_job_done_t done, void *userdata,
                     struct thread_job **ret);

/* Wait for the job's WORK to return, then free the job; DONE does not
 * run. Accepts NULL; returns NULL. */
struct thread_job *thread_job_join_free(struct thread_job *j);
