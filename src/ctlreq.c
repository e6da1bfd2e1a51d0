/* ctlreq.c: a control thread's request to a loop (ctlreq.h). */
#include "ctlreq.h"

#include "runtime.h"

#include <time.h>

int ac__ctlreq_target(ac_runtime_t *rt, int loop, int *target)
{
	ac__loop_t *self = ac__tls_loop;
	int state, t;

	if (self && self->rt != rt)
		return AC_ETHREAD;
	state = ac__rt_state(rt);
	if (state == AC__RT_NEW)
		return AC_ESTATE;
	if (state != AC__RT_RUNNING)
		return AC_ESHUTDOWN;
	if ((t = ac__loop_choice(rt, loop)) == AC_EINVAL)
		return AC_EINVAL;
	if (t < 0)
		t = self ? self->index : ac__loop_next(rt);
	if (self && t != self->index)
		return AC_ETHREAD;
	*target = t;
	return 0;
}

void ac__ctlreq_init(struct ac__ctlreq *r)
{
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->h = AC_HANDLE_NONE;
	r->err = 0;
	r->done = r->abandoned = false;
}

void ac__ctlreq_destroy(struct ac__ctlreq *r)
{
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
}

bool ac__ctlreq_answer(struct ac__ctlreq *r, int err, ac_handle_t h)
{
	pthread_mutex_lock(&r->mu);
	if (r->abandoned) {
		pthread_mutex_unlock(&r->mu);
		return false;
	}
	r->err = err;
	r->h = h;
	r->done = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return true;
}

int ac__ctlreq_wait(ac_runtime_t *rt, struct ac__ctlreq *r,
		    ac_handle_t *out, bool *abandoned)
{
	*abandoned = false;
	pthread_mutex_lock(&r->mu);
	while (!r->done) {
		struct timespec ts;

		if (ac__rt_state(rt) == AC__RT_STOPPED) {
			r->abandoned = true;
			pthread_mutex_unlock(&r->mu);
			*abandoned = true;
			*out = AC_HANDLE_NONE;
			return AC_ESHUTDOWN;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += AC__CTLREQ_POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	}
	pthread_mutex_unlock(&r->mu);
	*out = r->h;
	return r->err;
}
