/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>

#include "group.h"

int vrrp_group_init(struct vrrp_group *group, struct vrrp_fsm *const *members, size_t n) {
        if (!group || !members || n == 0 || n > VRRP_GROUP_MAX_MEMBERS)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!members[i])
                        return -EINVAL;

        *group = (struct vrrp_group) { .n_members = n };
        for (size_t i = 0; i < n; i++)
                group->members[i] = members[i];
        return 0;
}

static bool group_faulted(const struct vrrp_group *group) {
        for (size_t i = 0; i < group->n_members; i++)
                if (group->own_fault[i])
                        return true;
        return false;
}

/* Fold a second step's actions into ACC. A member moves at most twice per
 * call and only forwards (INIT/STOP/FAULT -> BACKUP -> MASTER), so nothing
 * installed by the first step is undone by the second. */
static void actions_merge(struct vrrp_actions *acc, const struct vrrp_actions *a) {
        if (a->send_advert) {
                acc->send_advert = true;
                acc->advert_priority = a->advert_priority;
        }
        acc->add_vips |= a->add_vips;
        acc->remove_vips |= a->remove_vips;
        acc->announce |= a->announce;
        if (a->state_changed) {
                if (!acc->state_changed)
                        acc->old_state = a->old_state;
                acc->state_changed = true;
                acc->new_state = a->new_state;
                acc->reason = a->reason;
        }
}

static void step_merge(struct vrrp_group *group, size_t i, enum vrrp_event_type type, uint64_t now,
                       struct vrrp_actions *ret_actions) {
        struct vrrp_event ev = { .type = type };
        struct vrrp_actions a;

        vrrp_fsm_step(group->members[i], &ev, now, &a);
        actions_merge(&ret_actions[i], &a);
}

/* Every member goes FAULT; all but OWN do so because of the group. */
static void fault_all(struct vrrp_group *group, size_t own, uint64_t now,
                      struct vrrp_actions *ret_actions) {
        for (size_t i = 0; i < group->n_members; i++) {
                step_merge(group, i, VRRP_EVENT_FAULT, now, ret_actions);
                if (i != own && ret_actions[i].state_changed)
                        ret_actions[i].reason = VRRP_REASON_GROUP;
        }
}

/* Would the group go MASTER if member IDX did? Every other member must be
 * MASTER already, or a BACKUP whose own Master_Down has fired, or not
 * running at all (INIT, STOP: it follows the group when it starts). */
static bool others_want_master(const struct vrrp_group *group, size_t idx) {
        for (size_t i = 0; i < group->n_members; i++) {
                enum vrrp_state s = group->members[i]->state;

                if (i == idx || s == VRRP_STATE_MASTER || s == VRRP_STATE_INIT || s == VRRP_STATE_STOP)
                        continue;
                if (s == VRRP_STATE_BACKUP && group->wants_master[i])
                        continue;
                return false;
        }
        return true;
}

/* Hold member IDX in BACKUP: undo the step that took it to MASTER and wait
 * another Master_Down_Interval, as the fsm would after an advert. Nothing
 * was done yet, so nothing is reported. */
static void hold_backup(struct vrrp_group *group, size_t idx, const struct vrrp_fsm *saved, uint64_t now,
                        struct vrrp_actions *ret_actions) {
        struct vrrp_fsm *fsm = group->members[idx];
        uint16_t interval = fsm->config.version == 2 ? fsm->config.advert_interval_cs : saved->master_adver_interval_cs;

        *fsm = *saved;
        fsm->master_down_deadline = now + vrrp_master_down_interval_usec(fsm->config.version, fsm->config.priority,
                                                                        interval);
        ret_actions[idx] = (struct vrrp_actions) {};
}

/* Step member IDX with a protocol event. Returns false when the member was
 * held in BACKUP and there is nothing to propagate. */
static bool step_protocol(struct vrrp_group *group, size_t idx, const struct vrrp_event *event, uint64_t now,
                          struct vrrp_actions *ret_actions) {
        struct vrrp_fsm *fsm = group->members[idx];
        const struct vrrp_fsm saved = *fsm;
        const struct vrrp_actions *a = &ret_actions[idx];

        vrrp_fsm_step(fsm, event, now, &ret_actions[idx]);
        if (saved.state != VRRP_STATE_BACKUP)
                return true;

        if (a->state_changed && a->new_state == VRRP_STATE_MASTER && a->reason != VRRP_REASON_GROUP) {
                group->wants_master[idx] = true;
                if (others_want_master(group, idx))
                        return true;
                hold_backup(group, idx, &saved, now, ret_actions);
                return false;
        }
        /* An advert that restarted Master_Down is a master this member
         * accepts: it no longer wants the group to move. A lower one it is
         * preempting, or a release (priority 0), changes nothing. */
        if (event->type == VRRP_EVENT_ADVERT && fsm->state == VRRP_STATE_BACKUP && event->priority != 0 &&
            !fsm->preempting)
                group->wants_master[idx] = false;
        return true;
}

static bool any_in_state(const struct vrrp_group *group, enum vrrp_state state) {
        for (size_t i = 0; i < group->n_members; i++)
                if (group->members[i]->state == state)
                        return true;
        return false;
}

/* Derive the group's reaction from the members' own transitions in RET_ACTIONS. */
static void propagate(struct vrrp_group *group, uint64_t now, struct vrrp_actions *ret_actions) {
        bool went_master = false, went_backup = false, joined = false;

        for (size_t i = 0; i < group->n_members; i++) {
                const struct vrrp_actions *a = &ret_actions[i];

                if (!a->state_changed || a->reason == VRRP_REASON_GROUP)
                        continue;
                if (a->new_state == VRRP_STATE_MASTER)
                        went_master = true;
                else if (a->new_state == VRRP_STATE_BACKUP && a->old_state == VRRP_STATE_MASTER)
                        went_backup = true;
                else if (a->new_state == VRRP_STATE_BACKUP)
                        joined = true;
        }

        if (went_master || (joined && any_in_state(group, VRRP_STATE_MASTER))) {
                for (size_t i = 0; i < group->n_members; i++)
                        if (group->members[i]->state == VRRP_STATE_BACKUP)
                                step_merge(group, i, VRRP_EVENT_FORCE_MASTER, now, ret_actions);
        } else if (went_backup) {
                for (size_t i = 0; i < group->n_members; i++)
                        if (group->members[i]->state == VRRP_STATE_MASTER)
                                step_merge(group, i, VRRP_EVENT_FORCE_BACKUP, now, ret_actions);
        }
}

static void group_step(struct vrrp_group *group, size_t idx, const struct vrrp_event *event, uint64_t now,
                       struct vrrp_actions *ret_actions) {
        switch (event->type) {
        case VRRP_EVENT_FAULT:
                group->own_fault[idx] = true;
                fault_all(group, idx, now, ret_actions);
                return;

        case VRRP_EVENT_FAULT_CLEAR:
                group->own_fault[idx] = false;
                if (group_faulted(group))
                        return;
                for (size_t i = 0; i < group->n_members; i++)
                        step_merge(group, i, VRRP_EVENT_FAULT_CLEAR, now, ret_actions);
                break;

        case VRRP_EVENT_STARTUP:
                vrrp_fsm_step(group->members[idx], event, now, &ret_actions[idx]);
                if (group_faulted(group) && ret_actions[idx].state_changed) {
                        const struct vrrp_event fault = { .type = VRRP_EVENT_FAULT };
                        struct vrrp_actions a;

                        /* The member never ran: from INIT or STOP nothing was
                         * installed or sent, so report a bare move to FAULT. */
                        vrrp_fsm_step(group->members[idx], &fault, now, &a);
                        ret_actions[idx] = (struct vrrp_actions) {
                                .state_changed = true,
                                .old_state = ret_actions[idx].old_state,
                                .new_state = group->members[idx]->state,
                                .reason = VRRP_REASON_GROUP,
                        };
                        return;
                }
                break;

        default:
                if (!step_protocol(group, idx, event, now, ret_actions))
                        return;
                break;
        }

        propagate(group, now, ret_actions);
}

void vrrp_group_step(struct vrrp_group *group, size_t idx, const struct vrrp_event *event,
                     uint64_t now, struct vrrp_actions *ret_actions) {
        for (size_t i = 0; i < group->n_members; i++)
                ret_actions[i] = (struct vrrp_actions) {};
        if (idx >= group->n_members)
                return;

        group_step(group, idx, event, now, ret_actions);
        /* A member that moved starts afresh: wanting MASTER only means
         * something while it waits in BACKUP. */
        for (size_t i = 0; i < group->n_members; i++)
                if (ret_actions[i].state_changed)
                        group->wants_master[i] = false;
}
