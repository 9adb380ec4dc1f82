/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The VRRP state machine (RFC 9568 section 6, RFC 5798, RFC 3768 for v2).
 *
 * Pure: vrrp_fsm_step(fsm, event, now) mutates the fsm and returns the
 * actions the caller must perform. Time is CLOCK_BOOTTIME-like microseconds
 * supplied by the caller; the fsm never reads a clock. Timers are absolute
 * deadlines in the fsm (0 = not armed); the caller arms one wake-up at
 * vrrp_fsm_next_deadline() and feeds VRRP_EVENT_TIMER when it fires. The
 * fsm ignores a TIMER event whose deadline has not been reached, so a caller
 * may deliver spurious ones.
 */

#include <stdbool.h>
#include <stdint.h>

#include "common/ipaddr.h"

enum vrrp_state {
        VRRP_STATE_INIT,
        VRRP_STATE_BACKUP,
        VRRP_STATE_MASTER,
        VRRP_STATE_FAULT,
        VRRP_STATE_STOP,
        _VRRP_STATE_MAX,
};

enum vrrp_event_type {
        VRRP_EVENT_STARTUP,       /* leave INIT (or STOP) */
        VRRP_EVENT_SHUTDOWN,      /* go to STOP; a master releases with priority 0 */
        VRRP_EVENT_ADVERT,        /* a valid advertisement for our vrid arrived */
        VRRP_EVENT_TIMER,         /* a deadline may have passed */
        VRRP_EVENT_FAULT,         /* the instance cannot work (link down, tracked down, group member faulted) */
        VRRP_EVENT_FAULT_CLEAR,   /* all fault causes are gone */
        VRRP_EVENT_FORCE_MASTER,  /* the group went MASTER */
        VRRP_EVENT_FORCE_BACKUP,  /* the group went BACKUP */
        _VRRP_EVENT_MAX,
};

/* Why a transition happened; printed in the one log line per transition. */
enum vrrp_reason {
        VRRP_REASON_NONE,
        VRRP_REASON_STARTUP,              /* INIT -> BACKUP */
        VRRP_REASON_ADDRESS_OWNER,        /* priority 255 goes straight to MASTER */
        VRRP_REASON_MASTER_DOWN,          /* Master_Down timer expired */
        VRRP_REASON_PREEMPT,              /* lower-priority master seen; we took over */
        VRRP_REASON_HIGHER_PRIORITY,      /* master saw a higher priority advert */
        VRRP_REASON_TIE_BREAK,            /* equal priority, higher primary address won */
        VRRP_REASON_SHUTDOWN,
        VRRP_REASON_FAULT,
        VRRP_REASON_FAULT_CLEARED,
        VRRP_REASON_GROUP,                /* followed the group */
        _VRRP_REASON_MAX,
};

const char *vrrp_state_to_string(enum vrrp_state s);
const char *vrrp_event_type_to_string(enum vrrp_event_type t);
const char *vrrp_reason_to_string(enum vrrp_reason r);

struct vrrp_fsm_config {
        uint8_t version;            /* 2 or 3 */
        uint8_t priority;           /* 1..255; 255 = address owner */
        uint16_t advert_interval_cs;/* configured Advertisement_Interval, centiseconds */
        bool preempt;               /* an address owner (255) preempts regardless (RFC 5798 6.1) */
        uint64_t preempt_delay_usec;/* hold off preemption this long after first seeing a lower-priority master */
        struct ip_address primary;  /* our primary address, for the tie-break */
};

struct vrrp_fsm {
        struct vrrp_fsm_config config;
        enum vrrp_state state;
        uint16_t master_adver_interval_cs; /* learned from the master (v3); configured value for v2 */
        uint64_t adver_deadline;           /* MASTER: next advertisement; 0 = not armed */
        uint64_t master_down_deadline;     /* BACKUP: Master_Down timer; 0 = not armed */
        uint64_t preempt_allowed_at;       /* BACKUP: 0 = no lower-priority master seen yet */
        bool preempting;                   /* BACKUP: discarding a lower-priority master's adverts,
                                            * so Master_Down expiring means preemption */
        /* MASTER: rate limits for answering another master that loses to us
         * (not deadlines: nothing is armed for them). 0 = allowed now. */
        uint64_t reply_allowed_at;         /* next immediate advert in reply */
        uint64_t reannounce_allowed_at;    /* next re-announce (GARP/NA burst) */
};

struct vrrp_event {
        enum vrrp_event_type type;
        /* VRRP_EVENT_ADVERT only: */
        uint8_t priority;
        uint16_t max_adver_int_cs;         /* v3: learned by a backup; 0 keeps the previous value */
        struct ip_address src;             /* sender's primary address, for the tie-break */
};

struct vrrp_actions {
        bool send_advert;           /* send one advertisement now ... */
        uint8_t advert_priority;    /* ... with this priority (0 when releasing; our own when
                                     * a MASTER answers a losing master or yields) */
        bool add_vips;              /* install virtual addresses */
        bool remove_vips;           /* remove virtual addresses */
        bool announce;              /* gratuitous ARP / unsolicited NA burst; without
                                     * state_changed it is a re-announce by a MASTER that
                                     * heard a losing master (the caller extends it to the
                                     * instance's sync group) */
        bool state_changed;
        enum vrrp_state old_state;
        enum vrrp_state new_state;
        enum vrrp_reason reason;
};

/* Initialise FSM in INIT with CONFIG; no timers armed. */
void vrrp_fsm_init(struct vrrp_fsm *fsm, const struct vrrp_fsm_config *config);

/* Replace the configuration of a running fsm (priority, interval, preempt...)
 * without a state change. A master takes the new interval at its next
 * advertisement; a backup recomputes Master_Down from the next advert. A
 * backup raised to 255 does not jump to MASTER here: it takes over through
 * the usual preemption on its next event. */
void vrrp_fsm_reconfigure(struct vrrp_fsm *fsm, const struct vrrp_fsm_config *config);

/* Apply EVENT at time NOW (usec). *ret is always fully written (zeroed when
 * nothing is to be done); old_state, new_state and reason are only set when
 * state_changed is true. */
void vrrp_fsm_step(struct vrrp_fsm *fsm, const struct vrrp_event *event, uint64_t now,
                   struct vrrp_actions *ret);

/*
 * The re-announce window for ADVERT_INTERVAL_CS: max(1 s, the interval).
 *
 * A MASTER that hears an advert it wins against (a lower priority, or an
 * equal one from a lower address) answers at once, because the sender is
 * a second master (a healed partition, a thawed node) whose MAC neighbours
 * may hold for the virtual IPs: send_advert so it yields now rather than
 * at our next advert, and announce so neighbours move back to us.
 * Rate limits, so that a peer flooding such adverts cannot make us flood:
 * the reply advert at most once per Advertisement_Interval (at worst
 * doubling our advert rate; it restarts the advert timer), the re-announce
 * at most once per this window. Inside both windows the advert is ignored
 * as before; inside the re-announce window only, just the advert goes out.
 * The other side: a MASTER that yields to a higher priority (or loses the
 * tie-break) sends one last advert with its own priority as it goes
 * BACKUP (send_advert with the state change; not in RFC 9568), so that
 * the winner hears a losing master even when its advert arrived first.
 */
uint64_t vrrp_reannounce_interval_usec(uint16_t advert_interval_cs);

/* Earliest armed deadline, or 0 if none. */
uint64_t vrrp_fsm_next_deadline(const struct vrrp_fsm *fsm);

/* RFC timers in microseconds, for the fsm, tests and status output.
 * Skew_Time: v3 ((256 - priority) * Master_Adver_Interval) / 256;
 *            v2 (256 - priority) / 256 seconds.
 * Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time. */
uint64_t vrrp_skew_time_usec(uint8_t version, uint8_t priority, uint16_t master_adver_interval_cs);
uint64_t vrrp_master_down_interval_usec(uint8_t version, uint8_t priority, uint16_t master_adver_interval_cs);
