/* bridge.h: private; what groups, mailboxes and the runtime share with
 * bridges (bridge.c). */
#ifndef AC_BRIDGE_H
#define AC_BRIDGE_H

#include "common.h"

#include "mailbox.h"

struct ac__gbridge; /* a group's tie to a bridge */

/* Any thread: g's member count went 0 -> 1 or 1 -> 0 on this node; the
 * home loop looks again whether the node should be subscribed. */
void ac__bridge_group_changed(struct ac__gbridge *gb);
/* Any thread: b was published to the tie's group here; send it to the
 * other nodes. Never fails (a publish that cannot go is counted). */
void ac__bridge_group_publish(struct ac__gbridge *gb, ac_buf_t *b);
/* ac_group_free: the tie ends (the home loop detaches the group). */
void ac__bridge_group_free(struct ac__gbridge *gb);
/* The group's memory goes: its reference to the tie goes with it. */
void ac__bridge_group_release(struct ac__gbridge *gb);

/* BRIDGE messages: a publish for the home loop (a.p the channel, b the
 * payload). */
void ac__bridge_deliver(ac__loop_t *loop, struct ac__msg *m);
void ac__bridge_settle(ac__loop_t *loop, struct ac__msg *m);

/* ac_runtime_free: bridges the user never freed. */
void ac__bridges_runtime_free(ac_runtime_t *rt);

#endif /* AC_BRIDGE_H */
