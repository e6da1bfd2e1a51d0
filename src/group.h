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
void ac__group_deliver_dissolve(ac__loop_t *loop, struct ac__msg *m);

#endif /* AC_GROUP_H */
