/* pool.h: per-loop pools of outbound connections (pool.c). */
#ifndef AC_POOL_H
#define AC_POOL_H

#include "common.h"

/* begin_stop: waiters fail with AC_ESHUTDOWN; every connection closes. */
void ac__pools_loop_stop(ac__loop_t *loop);
/* ac_runtime_free: pools the user never freed. */
void ac__pools_runtime_free(ac_runtime_t *rt);

#endif /* AC_POOL_H */
