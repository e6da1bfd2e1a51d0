/* drain.h: graceful drain of a runtime (drain.c). */
#ifndef AC_DRAIN_H
#define AC_DRAIN_H

#include "common.h"

#include "loop.h"

/* Outermost leave of a draining loop that has no connection left. */
void ac__drain_loop_empty(ac__loop_t *loop);
/* The stopping thread, once the loops are joined: a drain still waiting
 * is over (every connection closed); done runs if it has not. */
void ac__drain_stopped(ac_runtime_t *rt);

#endif /* AC_DRAIN_H */
