/*
 * runtime.c: the runtime's life: new, start, stop, free.
 *
 * State moves NEW -> RUNNING -> STOPPING -> STOPPED under rt->lock; loops
 * and producers read it with acquire loads. Producers are refused only once
 * the state is STOPPED; anything that slips in around that moment is
 * settled on the stopping thread (ac__loop_settle), and again by
 * ac_runtime_free, so nothing accepted is ever lost or leaked.
 */
#include "runtime.h"
#include "bridge.h"
#include "drain.h"
#include "alloc.h"
#include "listener.h"
#include "loop.h"
#include "pool.h"
#include "reclaim.h"
#include "timer.h"
#include "watch.h"
#include "work.h"

#include <stdio.h>

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>


static uint64_t next_rt_id = 1;

/* The runtime whose stop or free this thread is running. Those run user
 * callbacks (posted functions settled after the loops exit, watches fired
 * with AC_ESHUTDOWN, pool callbacks), and a callback that stopped or
 * freed the same runtime again would free it under its own caller. */
static __thread ac_runtime_t *tls_stopping;

void ac__log(ac_runtime_t *rt, int level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info"};
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rt->log)
		rt->log(level, msg, rt->log_arg);
	else
		fprintf(stderr, "actorconn: %s: %s\n",
			names[level >= 0 && level <= 2 ? level : 0], msg);
}

/*
 * The default number of loops: one for each CPU this process may run on
 * (its affinity mask, so taskset and cgroup cpusets count), less one, and
 * at least one. The core left over is for the caller's own threads, the
 * kernel's network work and whatever shares the machine. Measured on two
 * cores with the client on the same machine (README, Performance), two
 * loops and a client on two cores lost to one loop everywhere: PING p99
 * 3.2 ms against 0.7 ms at one request in flight, 1.4M against 1.7M
 * requests/s at 16, and more CPU per fan-out delivery. A program that has
 * the machine to itself sets ac_config_t.loops.
 */
static int default_loops(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	else
		n = sysconf(_SC_NPROCESSORS_ONLN);
	n -= 1;
	return n < 1 ? 1 : n > AC__MAX_LOOPS ? AC__MAX_LOOPS : (int)n;
}

static unsigned round_pow2(unsigned v)
{
	unsigned p = 2;

	while (p < v)
		p <<= 1;
	return p;
}

static void runtime_destroy(ac_runtime_t *rt);

/* Refuses a configuration that cannot work, saying why (there is no
 * runtime yet to log through: cfg's own hook, or stderr). */
static bool config_ok(const ac_config_t *cfg)
{
	ac_runtime_t tmp = {.log = cfg->log, .log_arg = cfg->log_arg};

	if (!ac__reserved_zero(cfg->reserved, sizeof(cfg->reserved))) {
		ac__log(&tmp, AC_LOG_ERROR, "ac_config_t: %s", AC__RESERVED_MSG);
		return false;
	}
	if (cfg->loops < 0 || cfg->loops > AC__MAX_LOOPS) {
		ac__log(&tmp, AC_LOG_ERROR, "loops is %d; it must be 0 (one per CPU) to %d",
			cfg->loops, AC__MAX_LOOPS);
		return false;
	}
	if (cfg->mailbox_capacity > AC_MAILBOX_MAX) {
		ac__log(&tmp, AC_LOG_ERROR,
			"mailbox_capacity %u is above the maximum, %u messages per ring",
			cfg->mailbox_capacity, AC_MAILBOX_MAX);
		return false;
	}
	if (cfg->work_threads < 0 || cfg->work_threads > AC_WORK_THREADS_MAX) {
		ac__log(&tmp, AC_LOG_ERROR,
			"work_threads is %d; it must be 0 (the default, %d) to %d",
			cfg->work_threads, AC__DEFAULT_WORK_THREADS,
			AC_WORK_THREADS_MAX);
		return false;
	}
	if (cfg->work_capacity > AC_WORK_MAX) {
		ac__log(&tmp, AC_LOG_ERROR,
			"work_capacity %u is above the maximum, %u work items",
			cfg->work_capacity, AC_WORK_MAX);
		return false;
	}
	if (cfg->fanout_wait_us > AC_FANOUT_WAIT_MAX) {
		ac__log(&tmp, AC_LOG_ERROR,
			"fanout_wait_us %u is above the maximum, %u us",
			cfg->fanout_wait_us, AC_FANOUT_WAIT_MAX);
		return false;
	}
	return true;
}

AC_EXPORT ac_runtime_t *ac_runtime_new(const ac_config_t *cfg)
{
	ac_config_t def = {0};
	ac_runtime_t *rt;
	int e;

	if (!cfg)
		cfg = &def;
	if (!config_ok(cfg)) {
		errno = EINVAL;
		return NULL;
	}
	if (!(rt = ac__calloc(AC__K_OTHER, 1, sizeof(*rt)))) {
		errno = ENOMEM;
		return NULL;
	}
	rt->nloops = cfg->loops ? cfg->loops : default_loops();
	rt->mailbox_size = round_pow2(cfg->mailbox_capacity
					      ? cfg->mailbox_capacity
					      : AC__DEFAULT_MAILBOX);
	rt->pin_cpus = cfg->pin_cpus;
	rt->fanout_wait_us = cfg->fanout_wait_us;
	rt->max_conns = cfg->max_conns;
	rt->log = cfg->log;
	rt->log_arg = cfg->log_arg;
	rt->state = AC__RT_NEW;
	rt->id = __atomic_fetch_add(&next_rt_id, 1, __ATOMIC_RELAXED);
	pthread_mutex_init(&rt->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&rt->drained, &ca);
		pthread_condattr_destroy(&ca);
	}
	LIST_INIT(&rt->listeners);
	LIST_INIT(&rt->pools);
	LIST_INIT(&rt->bridges);
	ac__work_init(rt, cfg);
	errno = 0; /* a failure below that sets none is out of memory */
	if (ac__reclaim_init(rt) || ac__wtab_new(rt))
		goto fail;
	if (cfg->resolv_conf &&
	    !(rt->resolv_conf = ac__strdup(cfg->resolv_conf)))
		goto fail;
	if (!(rt->loops = ac__calloc(AC__K_OTHER, (size_t)rt->nloops,
				     sizeof(*rt->loops))))
		goto fail;
	for (int i = 0; i < rt->nloops; i++)
		if (!(rt->loops[i] = ac__loop_new(rt, i)))
			goto fail;
	return rt;
fail:
	e = errno ? errno : ENOMEM; /* eventfd's, say, or no memory */
	runtime_destroy(rt);
	errno = e;
	return NULL;
}

AC_EXPORT int ac_runtime_loops(const ac_runtime_t *rt)
{
	return rt ? rt->nloops : 0;
}

AC_EXPORT int ac_runtime_start(ac_runtime_t *rt)
{
	int err = 0;

	if (!rt)
		return AC_EINVAL;
	pthread_mutex_lock(&rt->lock);
	if (rt->state != AC__RT_NEW) {
		pthread_mutex_unlock(&rt->lock);
		return AC_ESTATE;
	}
	__atomic_store_n(&rt->state, AC__RT_RUNNING, __ATOMIC_RELEASE);
	for (int i = 0; i < rt->nloops && !err; i++)
		err = ac__loop_start(rt->loops[i]);
	pthread_mutex_unlock(&rt->lock);
	if (err)
		ac_runtime_stop(rt, 0);
	return err;
}

static void settle_all(ac_runtime_t *rt)
{
	for (int i = 0; i < rt->nloops; i++)
		if (rt->loops[i])
			ac__loop_settle(rt->loops[i]);
	ac__work_settle(rt); /* completions no loop could take */
}

static int runtime_stop(ac_runtime_t *rt, int grace_ms);

AC_EXPORT int ac_runtime_stop(ac_runtime_t *rt, int grace_ms)
{
	int err;

	if (!rt || grace_ms < 0)
		return AC_EINVAL;
	/* A loop cannot join itself, nor a worker; a callback of the stop
	 * cannot stop. */
	if (ac__on_loop_of(rt) || ac__on_worker_of(rt) || tls_stopping == rt)
		return AC_ETHREAD;
	tls_stopping = rt;
	err = runtime_stop(rt, grace_ms);
	tls_stopping = NULL;
	return err;
}

static int runtime_stop(ac_runtime_t *rt, int grace_ms)
{
	int prev;

	pthread_mutex_lock(&rt->lock);
	prev = rt->state;
	if (prev == AC__RT_RUNNING)
		__atomic_store_n(&rt->state, AC__RT_STOPPING,
				 __ATOMIC_RELEASE);
	else if (prev == AC__RT_NEW)
		__atomic_store_n(&rt->state, AC__RT_STOPPED, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&rt->lock);

	if (prev == AC__RT_NEW) {
		settle_all(rt); /* posts made before start run here */
		return 0;
	}
	if (prev != AC__RT_RUNNING)
		return 0;

	/* The pool first, while the loops still run its completions: no
	 * new work, queued work completes with AC_ESHUTDOWN, running work
	 * is waited for. */
	ac__work_stop(rt);
	for (int i = 0; i < rt->nloops; i++) {
		ac__loop_t *loop = rt->loops[i];

		loop->stop_ctl.fn = ac__loop_begin_stop;
		loop->stop_ctl.arg = (void *)(intptr_t)grace_ms;
		ac__loop_ctl_node(loop, &loop->stop_ctl);
	}
	for (int i = 0; i < rt->nloops; i++)
		if (rt->loops[i]->thread_started)
			pthread_join(rt->loops[i]->thread, NULL);

	pthread_mutex_lock(&rt->lock);
	__atomic_store_n(&rt->state, AC__RT_STOPPED, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&rt->lock);
	settle_all(rt);
	ac__drain_stopped(rt); /* every connection is closed now */
	return 0;
}

AC_EXPORT int ac_runtime_free(ac_runtime_t *rt)
{
	if (!rt)
		return 0;
	if (ac__on_loop_of(rt) || ac__on_worker_of(rt) || tls_stopping == rt)
		return AC_ETHREAD; /* it would free the thread's own caller */
	tls_stopping = rt;
	runtime_destroy(rt);
	tls_stopping = NULL;
	return 0;
}

static void runtime_destroy(ac_runtime_t *rt)
{
	ac_listener_t *l, *next;

	if (rt->loops && rt->loops[rt->nloops - 1]) {
		runtime_stop(rt, 0);
		/* Listeners the user never closed: drop the user's reference
		 * (this queues control operations), then settle again, which
		 * runs them and whatever raced in after the stop. */
		for (l = LIST_FIRST(&rt->listeners); l; l = next) {
			next = LIST_NEXT(l, link);
			ac__listener_release_user(l);
		}
		ac__pools_runtime_free(rt); /* pools the user never freed */
		ac__bridges_runtime_free(rt); /* and bridges */
		settle_all(rt);
	}
	/* From here no exiting thread hands a record back (that drains
	 * it), so the reclaims below have the records to themselves. */
	ac__reclaim_runtime_gone(rt);
	if (rt->loops)
		for (int i = 0; i < rt->nloops; i++)
			if (rt->loops[i])
				ac__timers_free_loop(rt->loops[i]);
	/* No thread reads any more: everything retired is reclaimed, from
	 * every record (loops' and foreign threads') before any is freed,
	 * since a hazard scan reads them all. */
	ac__reclaim_all(rt);
	if (rt->loops) {
		for (int i = 0; i < rt->nloops; i++)
			ac__loop_free(rt->loops[i]);
		ac__free(AC__K_OTHER, rt->loops);
	}
	ac__wtab_free(rt);
	ac__work_free(rt);
	pthread_cond_destroy(&rt->drained);
	pthread_mutex_destroy(&rt->lock);
	ac__free(AC__K_OTHER, rt->resolv_conf);
	ac__free(AC__K_OTHER, rt);
}
