/* wait.h: waiting for another thread without a lock. */
#ifndef AC_WAIT_H
#define AC_WAIT_H

#include <sched.h>

#include <ck_backoff.h>

/* One step of a wait for another thread: exponential back-off spins
 * (ck_backoff) while the wait is short, then yields the CPU. *state
 * starts at 0. */
static inline void ac__backoff_wait(unsigned *state)
{
	if (*state < (1u << 12)) {
		if (!*state)
			*state = CK_BACKOFF_INITIALIZER;
		ck_backoff_eb(state);
	} else {
		sched_yield();
	}
}

#endif /* AC_WAIT_H */
