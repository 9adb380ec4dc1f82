/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Sync groups: instances that move together (keepalived's vrrp_sync_group).
 * Pure layer over vrrp_fsm: it steps one member and derives the events the
 * others must see, so that the whole group is MASTER on one node.
 *
 * Rules:
 *  - going MASTER needs every member: a BACKUP member whose Master_Down
 *    timer fires (master gone, or a lower-priority master it preempts)
 *    "wants MASTER"; if another member is still a BACKUP that does not want
 *    it (it hears a master it accepts), the member stays BACKUP, waits a new
 *    Master_Down_Interval, and keeps wanting MASTER until it accepts an
 *    advert. When the last member's timer fires, it goes MASTER and takes
 *    every BACKUP member with it (FORCE_MASTER). Members in INIT or STOP do
 *    not hold the group back. So a peer alive on one link keeps the whole
 *    group BACKUP, and the group preempts only when every member would;
 *  - a member that becomes MASTER outside that rule (an address owner's
 *    startup or fault recovery, or a member reaching BACKUP from INIT, STOP
 *    or FAULT while another member is MASTER) makes every BACKUP member go
 *    MASTER at once;
 *  - a member that leaves MASTER for BACKUP by its own protocol makes every
 *    other MASTER member go BACKUP at once (FORCE_BACKUP);
 *  - a member's own fault puts every member in FAULT; the group leaves FAULT
 *    only when no member has a fault of its own left, and then every member
 *    gets FAULT_CLEAR;
 *  - a STARTUP while the group is faulted takes the member to FAULT instead.
 * Transitions caused by the group are not propagated again and report
 * VRRP_REASON_GROUP.
 */

#include <stddef.h>
#include <stdbool.h>

#include "fsm.h"

#define VRRP_GROUP_MAX_MEMBERS 64

struct vrrp_group {
        size_t n_members;
        struct vrrp_fsm *members[VRRP_GROUP_MAX_MEMBERS];
        bool own_fault[VRRP_GROUP_MAX_MEMBERS];
        bool wants_master[VRRP_GROUP_MAX_MEMBERS]; /* BACKUP held by the group after its Master_Down */
};

/* Initialise GROUP over N fsms (N <= VRRP_GROUP_MAX_MEMBERS). Returns 0 or -EINVAL. */
int vrrp_group_init(struct vrrp_group *group, struct vrrp_fsm *const *members, size_t n);

/*
 * Deliver EVENT to member IDX at NOW and propagate it to the rest of the
 * group. ret_actions must hold n_members entries; entry i receives the
 * actions for member i (zeroed for members left alone). When a member moves
 * twice in one call (FAULT -> BACKUP -> MASTER) its entry is the net result
 * (old_state FAULT, new_state MASTER). A member held in BACKUP gets no
 * actions; its fsm's Master_Down deadline moves, so callers re-read
 * vrrp_fsm_next_deadline() of every member. FAULT and FAULT_CLEAR events
 * delivered here are that member's own fault state. An IDX out of range
 * does nothing.
 */
void vrrp_group_step(struct vrrp_group *group, size_t idx, const struct vrrp_event *event,
                     uint64_t now, struct vrrp_actions *ret_actions);
