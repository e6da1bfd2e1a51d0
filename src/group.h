/* group.h: broadcast groups across loops (group.c). */
#ifndef AC_GROUP_H
#define AC_GROUP_H

#include "common.h"

#include "mailbox.h"

/* Finalize, after on_close: c leaves every group it is still in. */
void ac__groups_conn_closed(ac_conn_t *c);

/* PUBLISH and DISSOLVE messages. */
void ac__group_deliver_publish(ac__loop_t *loop, struct ac__msg *m);
void ac__group_settle_publish(ac__loop_t *loop, struct ac__msg *m);
/* Owner loop: writes the publishes ac__group_deliver_publish staged in
 * loop->fan (loop->fan.n > 0). */
void ac__group_fan_flush(ac__loop_t *loop);
void ac__group_deliver_dissolve(ac__loop_t *loop, struct ac__msg *m);

/* For bridges (bridge.c), any thread. */
struct ac__gbridge;
void ac__group_ref(ac_group_t *g);
void ac__group_unref(ac_group_t *g);
/* Members on every loop of this node (a snapshot). */
int64_t ac__group_total(ac_group_t *g);
ac_runtime_t *ac__group_runtime(ac_group_t *g);
/* Ties g to gb, once: 0, or AC_EEXIST if g has a tie. */
int ac__group_set_bridge(ac_group_t *g, struct ac__gbridge *gb);
/* ac_group_publish without the bridge: this node's members. */
int ac__group_publish_local(ac_group_t *g, ac_buf_t *b);

#endif /* AC_GROUP_H */
