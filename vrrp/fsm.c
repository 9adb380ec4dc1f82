/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <string.h>

#include "common/macro.h"
#include "fsm.h"

#define USEC_PER_CSEC UINT64_C(10000)

static const char *const state_table[_VRRP_STATE_MAX] = {
        [VRRP_STATE_INIT] = "INIT",
        [VRRP_STATE_BACKUP] = "BACKUP",
        [VRRP_STATE_MASTER] = "MASTER",
        [VRRP_STATE_FAULT] = "FAULT",
        [VRRP_STATE_STOP] = "STOP",
};

static const char *const event_table[_VRRP_EVENT_MAX] = {
        [VRRP_EVENT_STARTUP] = "startup",
        [VRRP_EVENT_SHUTDOWN] = "shutdown",
        [VRRP_EVENT_ADVERT] = "advert",
        [VRRP_EVENT_TIMER] = "timer",
        [VRRP_EVENT_FAULT] = "fault",
        [VRRP_EVENT_FAULT_CLEAR] = "fault-clear",
        [VRRP_EVENT_FORCE_MASTER] = "force-master",
        [VRRP_EVENT_FORCE_BACKUP] = "force-backup",
};

static const char *const reason_table[_VRRP_REASON_MAX] = {
        [VRRP_REASON_NONE] = "none",
        [VRRP_REASON_STARTUP] = "startup",
        [VRRP_REASON_ADDRESS_OWNER] = "address-owner",
        [VRRP_REASON_MASTER_DOWN] = "master-down",
        [VRRP_REASON_PREEMPT] = "preempt",
        [VRRP_REASON_HIGHER_PRIORITY] = "higher-priority",
        [VRRP_REASON_TIE_BREAK] = "tie-break",
        [VRRP_REASON_SHUTDOWN] = "shutdown",
        [VRRP_REASON_FAULT] = "fault",
        [VRRP_REASON_FAULT_CLEARED] = "fault-cleared",
        [VRRP_REASON_GROUP] = "group",
};

const char *vrrp_state_to_string(enum vrrp_state s) {
        return ENUM_NAME(state_table, s);
}

const char *vrrp_event_type_to_string(enum vrrp_event_type t) {
        return ENUM_NAME(event_table, t);
}

const char *vrrp_reason_to_string(enum vrrp_reason r) {
        return ENUM_NAME(reason_table, r);
}

uint64_t vrrp_skew_time_usec(uint8_t version, uint8_t priority, uint16_t master_adver_interval_cs) {
        uint64_t base;

        /* v2 fixes the skew in seconds; v3 scales it with the interval so that
         * sub-second intervals still order backups by priority. Work in usec
         * so a short interval does not truncate the skew to zero. */
        if (version == 2)
                base = USEC_PER_SEC;
        else
                base = master_adver_interval_cs * USEC_PER_CSEC;

        return (256 - (uint64_t) priority) * base / 256;
}

uint64_t vrrp_reannounce_interval_usec(uint16_t advert_interval_cs) {
        uint64_t interval = advert_interval_cs * USEC_PER_CSEC;

        /* One second at least: with 10 ms adverts, a burst per advert of a
         * misbehaving peer would still be a flood. */
        return MAX(interval, USEC_PER_SEC);
}

uint64_t vrrp_master_down_interval_usec(uint8_t version, uint8_t priority, uint16_t master_adver_interval_cs) {
        return 3 * (master_adver_interval_cs * USEC_PER_CSEC) +
                vrrp_skew_time_usec(version, priority, master_adver_interval_cs);
}

/* v2 has no interval in the advert worth learning: Master_Adver_Interval
 * is always our own configured one. */
static uint16_t master_adver_interval(const struct vrrp_fsm *fsm) {
        if (fsm->config.version == 2)
                return fsm->config.advert_interval_cs;
        return fsm->master_adver_interval_cs;
}

static uint64_t master_down_interval(const struct vrrp_fsm *fsm) {
        return vrrp_master_down_interval_usec(fsm->config.version, fsm->config.priority,
                                              master_adver_interval(fsm));
}

static uint64_t skew_time(const struct vrrp_fsm *fsm) {
        return vrrp_skew_time_usec(fsm->config.version, fsm->config.priority,
                                   master_adver_interval(fsm));
}

static uint64_t adver_interval(const struct vrrp_fsm *fsm) {
        return fsm->config.advert_interval_cs * USEC_PER_CSEC;
}

static void learn_interval(struct vrrp_fsm *fsm, const struct vrrp_event *event) {
        if (fsm->config.version == 3 && event->max_adver_int_cs > 0)
                fsm->master_adver_interval_cs = event->max_adver_int_cs;
}

static void clear_timers(struct vrrp_fsm *fsm) {
        fsm->adver_deadline = 0;
        fsm->master_down_deadline = 0;
        fsm->preempt_allowed_at = 0;
        fsm->preempting = false;
}

static void set_state(struct vrrp_fsm *fsm, enum vrrp_state state, enum vrrp_reason reason,
                      struct vrrp_actions *ret) {
        ret->state_changed = true;
        ret->old_state = fsm->state;
        ret->new_state = state;
        ret->reason = reason;
        fsm->state = state;
}

static void send_advert(struct vrrp_actions *ret, uint8_t priority) {
        ret->send_advert = true;
        ret->advert_priority = priority;
}

static void become_master(struct vrrp_fsm *fsm, uint64_t now, enum vrrp_reason reason,
                          struct vrrp_actions *ret) {
        clear_timers(fsm);
        /* Not seeded with this transition's burst: a second master may
         * announce after us, and its adverts must be answered however soon. */
        fsm->reply_allowed_at = 0;
        fsm->reannounce_allowed_at = 0;
        fsm->master_adver_interval_cs = fsm->config.advert_interval_cs;
        fsm->adver_deadline = now + adver_interval(fsm);
        send_advert(ret, fsm->config.priority);
        ret->add_vips = true;
        ret->announce = true;
        set_state(fsm, VRRP_STATE_MASTER, reason, ret);
}

/* Callers learn the master's interval first, if there is one to learn. */
static void become_backup(struct vrrp_fsm *fsm, uint64_t now, enum vrrp_reason reason,
                          struct vrrp_actions *ret) {
        if (fsm->state == VRRP_STATE_MASTER)
                ret->remove_vips = true;
        clear_timers(fsm);
        fsm->master_down_deadline = now + master_down_interval(fsm);
        set_state(fsm, VRRP_STATE_BACKUP, reason, ret);
}

/* Give up MASTER at once: priority 0 lets the backup take over after
 * Skew_Time instead of Master_Down_Interval. */
static void release(struct vrrp_fsm *fsm, struct vrrp_actions *ret) {
        if (fsm->state != VRRP_STATE_MASTER)
                return;
        send_advert(ret, 0);
        ret->remove_vips = true;
}

static void startup(struct vrrp_fsm *fsm, uint64_t now, enum vrrp_reason owner_reason,
                    enum vrrp_reason backup_reason, struct vrrp_actions *ret) {
        if (fsm->config.priority == 255) {
                become_master(fsm, now, owner_reason, ret);
                return;
        }
        fsm->master_adver_interval_cs = fsm->config.advert_interval_cs;
        become_backup(fsm, now, backup_reason, ret);
}

typedef void (*fsm_handler)(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                            struct vrrp_actions *ret);

static void on_startup(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                       struct vrrp_actions *ret) {
        startup(fsm, now, VRRP_REASON_ADDRESS_OWNER, VRRP_REASON_STARTUP, ret);
}

static void on_fault_clear(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                           struct vrrp_actions *ret) {
        startup(fsm, now, VRRP_REASON_FAULT_CLEARED, VRRP_REASON_FAULT_CLEARED, ret);
}

static void on_shutdown(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                        struct vrrp_actions *ret) {
        release(fsm, ret);
        clear_timers(fsm);
        set_state(fsm, VRRP_STATE_STOP, VRRP_REASON_SHUTDOWN, ret);
}

static void on_fault(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                     struct vrrp_actions *ret) {
        release(fsm, ret);
        clear_timers(fsm);
        set_state(fsm, VRRP_STATE_FAULT, VRRP_REASON_FAULT, ret);
}

static void backup_accept(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now) {
        learn_interval(fsm, event);
        fsm->master_down_deadline = now + master_down_interval(fsm);
}

static void backup_advert(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                          struct vrrp_actions *ret) {
        bool preempt = fsm->config.preempt || fsm->config.priority == 255;

        if (event->priority == 0) {
                /* The master released; the skew alone orders the backups. */
                fsm->master_down_deadline = now + skew_time(fsm);
                fsm->preempting = false;
                return;
        }

        if (!preempt || event->priority >= fsm->config.priority) {
                backup_accept(fsm, event, now);
                fsm->preempt_allowed_at = 0;
                fsm->preempting = false;
                return;
        }

        /* A lower-priority master: let Master_Down expire to take over, unless
         * the preempt delay still asks us to tolerate it. */
        if (fsm->preempt_allowed_at == 0) {
                fsm->preempt_allowed_at = now + fsm->config.preempt_delay_usec;
                if (fsm->preempt_allowed_at == 0)
                        fsm->preempt_allowed_at = 1; /* 0 means "not seen" */
        }
        if (fsm->config.preempt_delay_usec > 0 && now < fsm->preempt_allowed_at) {
                backup_accept(fsm, event, now);
                return;
        }
        fsm->preempting = true;
}

static void backup_timer(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                         struct vrrp_actions *ret) {
        if (fsm->master_down_deadline == 0 || now < fsm->master_down_deadline)
                return;
        become_master(fsm, now, fsm->preempting ? VRRP_REASON_PREEMPT : VRRP_REASON_MASTER_DOWN, ret);
}

static void backup_force_master(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                                struct vrrp_actions *ret) {
        become_master(fsm, now, VRRP_REASON_GROUP, ret);
}

/* Another master that loses to us: see vrrp_reannounce_interval_usec(). */
static void master_reassert(struct vrrp_fsm *fsm, uint64_t now, struct vrrp_actions *ret) {
        if (now >= fsm->reply_allowed_at) {
                send_advert(ret, fsm->config.priority);
                fsm->adver_deadline = now + adver_interval(fsm);
                fsm->reply_allowed_at = now + adver_interval(fsm);
        }
        if (now >= fsm->reannounce_allowed_at) {
                ret->announce = true;
                fsm->reannounce_allowed_at = now + vrrp_reannounce_interval_usec(fsm->config.advert_interval_cs);
        }
}

static void master_advert(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                          struct vrrp_actions *ret) {
        enum vrrp_reason reason;

        if (event->priority == 0) {
                /* Another router released: assert ourselves before its backups take over. */
                send_advert(ret, fsm->config.priority);
                fsm->adver_deadline = now + adver_interval(fsm);
                return;
        }

        if (event->priority > fsm->config.priority)
                reason = VRRP_REASON_HIGHER_PRIORITY;
        else if (event->priority == fsm->config.priority &&
                 ip_address_compare(&event->src, &fsm->config.primary) > 0)
                reason = VRRP_REASON_TIE_BREAK;
        else {
                master_reassert(fsm, now, ret);
                return;
        }

        /* become_backup() takes the interval from the fsm, so learn it first. */
        learn_interval(fsm, event);
        become_backup(fsm, now, reason, ret);
        /* One last advert with our priority, which RFC 9568 6.4.3 does not
         * send: after a split heals, the winner's advert may reach us
         * before any of ours reached it, and then the winner would never
         * learn that neighbours may hold our MAC. This advert loses to it,
         * so it re-announces (master_reassert()). */
        send_advert(ret, fsm->config.priority);
}

static void master_timer(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                         struct vrrp_actions *ret) {
        if (fsm->adver_deadline == 0 || now < fsm->adver_deadline)
                return;
        send_advert(ret, fsm->config.priority);
        fsm->adver_deadline = now + adver_interval(fsm);
}

static void master_force_backup(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                                struct vrrp_actions *ret) {
        /* No priority 0: the peer's other group members are not all master
         * yet, so just go quiet and let them take over in Master_Down. */
        become_backup(fsm, now, VRRP_REASON_GROUP, ret);
}

/* (state, event) -> handler; a missing entry means the event is ignored. */
static const fsm_handler fsm_table[_VRRP_STATE_MAX][_VRRP_EVENT_MAX] = {
        [VRRP_STATE_INIT] = {
                [VRRP_EVENT_STARTUP] = on_startup,
                [VRRP_EVENT_SHUTDOWN] = on_shutdown,
                [VRRP_EVENT_FAULT] = on_fault,
        },
        [VRRP_STATE_BACKUP] = {
                [VRRP_EVENT_SHUTDOWN] = on_shutdown,
                [VRRP_EVENT_ADVERT] = backup_advert,
                [VRRP_EVENT_TIMER] = backup_timer,
                [VRRP_EVENT_FAULT] = on_fault,
                [VRRP_EVENT_FORCE_MASTER] = backup_force_master,
        },
        [VRRP_STATE_MASTER] = {
                [VRRP_EVENT_SHUTDOWN] = on_shutdown,
                [VRRP_EVENT_ADVERT] = master_advert,
                [VRRP_EVENT_TIMER] = master_timer,
                [VRRP_EVENT_FAULT] = on_fault,
                [VRRP_EVENT_FORCE_BACKUP] = master_force_backup,
        },
        [VRRP_STATE_FAULT] = {
                [VRRP_EVENT_SHUTDOWN] = on_shutdown,
                [VRRP_EVENT_FAULT_CLEAR] = on_fault_clear,
        },
        [VRRP_STATE_STOP] = {
                [VRRP_EVENT_STARTUP] = on_startup,
        },
};

void vrrp_fsm_init(struct vrrp_fsm *fsm, const struct vrrp_fsm_config *config) {
        *fsm = (struct vrrp_fsm) {
                .config = *config,
                .state = VRRP_STATE_INIT,
                .master_adver_interval_cs = config->advert_interval_cs,
        };
}

void vrrp_fsm_reconfigure(struct vrrp_fsm *fsm, const struct vrrp_fsm_config *config) {
        fsm->config = *config;
        if (fsm->config.version == 2 || fsm->state != VRRP_STATE_BACKUP)
                fsm->master_adver_interval_cs = config->advert_interval_cs;
}

void vrrp_fsm_step(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                   struct vrrp_actions *ret) {
        fsm_handler h = NULL;

        *ret = (struct vrrp_actions) {};
        if ((unsigned) fsm->state < _VRRP_STATE_MAX && (unsigned) event->type < _VRRP_EVENT_MAX)
                h = fsm_table[fsm->state][event->type];
        if (h)
                h(fsm, event, now, ret);
}

uint64_t vrrp_fsm_next_deadline(const struct vrrp_fsm *fsm) {
        uint64_t a = fsm->adver_deadline, b = fsm->master_down_deadline;

        if (a == 0 || (b != 0 && b < a))
                return b;
        return a;
}
