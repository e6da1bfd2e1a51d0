/* test_work.c: the worker pool. Work runs off the loops; done runs once,
 * on the loop asked for; cancels, a full pool, ties and the stop each
 * say what became of the work. */
#include "testhelp.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

static ac_runtime_t *rt_start(int loops, int threads, unsigned cap)
{
	ac_config_t cfg = {.loops = loops, .work_threads = threads,
			   .work_capacity = cap};
	ac_runtime_t *rt = ac_runtime_new(&cfg);

	ck_assert_ptr_nonnull(rt);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	return rt;
}

static void rt_finish(ac_runtime_t *rt)
{
	ck_assert_int_eq(ac_runtime_free(rt), 0);
	th_assert_no_live_objects();
}

static bool flag(void *p)
{
	return __atomic_load_n((int *)p, __ATOMIC_ACQUIRE) != 0;
}

static void set(int *p, int v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* One work item's story. */
struct job {
	int64_t ran;       /* work calls */
	int64_t done;      /* done calls */
	int status;
	int work_loop;     /* ac_loop_index() in work: -1, off the loops */
	int done_loop;     /* ac_loop_index() in done */
	ac_conn_t *c;      /* what done got */
	int ret;           /* what work returns */
	int *gate;         /* work waits until *gate (if set) */
	int started;       /* work has begun */
	int64_t *seq;      /* a shared sequence number, if set */
	int64_t done_at;   /* its value when done ran */
	int64_t ret_at;    /* its value when work returned */
};

static int job_work(void *arg)
{
	struct job *j = arg;

	j->work_loop = ac_loop_index();
	__atomic_fetch_add(&j->ran, 1, __ATOMIC_ACQ_REL);
	set(&j->started, 1);
	while (j->gate && !__atomic_load_n(j->gate, __ATOMIC_ACQUIRE))
		usleep(200);
	if (j->seq)
		j->ret_at = __atomic_add_fetch(j->seq, 1, __ATOMIC_ACQ_REL);
	return j->ret;
}

static void job_done(ac_conn_t *c, int status, void *arg)
{
	struct job *j = arg;

	j->status = status;
	j->c = c;
	j->done_loop = ac_loop_index();
	if (j->seq)
		j->done_at = __atomic_add_fetch(j->seq, 1, __ATOMIC_ACQ_REL);
	__atomic_fetch_add(&j->done, 1, __ATOMIC_ACQ_REL);
}

static int submit(ac_runtime_t *rt, int loop, struct job *j, uint64_t *id)
{
	return ac_work_submit(rt, loop, AC_HANDLE_NONE, job_work, job_done, j,
			      id);
}

/* Waits for j's done, then a little more: a second call would show. */
static void assert_done_once(struct job *j)
{
	ck_assert(th_wait_ge(&j->done, 1, 10000));
	usleep(10000);
	ck_assert_int_eq(__atomic_load_n(&j->done, __ATOMIC_ACQUIRE), 1);
}

/* ---- where things run ------------------------------------------------------ */

struct on_loop {
	ac_runtime_t *rt;
	struct job *j;
	int err;
	int posted;
};

static void submit_here(void *arg)
{
	struct on_loop *o = arg;

	/* 0: AC_LOOP_DEFAULT, the calling loop. */
	o->err = submit(o->rt, 0, o->j, NULL);
	set(&o->posted, 1);
}

START_TEST(done_runs_once_on_the_submitting_loop_and_work_off_the_loops)
{
	ac_runtime_t *rt = rt_start(2, 2, 0);
	struct job a = {0}, b = {0}, c = {0};
	struct on_loop o = {rt, &a, -1, 0};

	/* From loop 1, with the default: completes on loop 1. */
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(1), submit_here, &o), 0);
	ck_assert(th_wait(flag, &o.posted, 5000));
	ck_assert_int_eq(o.err, 0);
	assert_done_once(&a);
	ck_assert_int_eq(a.ran, 1);
	ck_assert_int_eq(a.work_loop, -1);
	ck_assert_int_eq(a.done_loop, 1);
	ck_assert_int_eq(a.status, 0);
	ck_assert_ptr_null(a.c);

	/* From a control thread, naming loop 0 with AC_LOOP(0). */
	ck_assert_int_eq(submit(rt, AC_LOOP(0), &b, NULL), 0);
	assert_done_once(&b);
	ck_assert_int_eq(b.done_loop, 0);

	/* From a control thread with the default: some loop (round robin). */
	ck_assert_int_eq(submit(rt, 0, &c, NULL), 0);
	assert_done_once(&c);
	ck_assert(c.done_loop == 0 || c.done_loop == 1);
	rt_finish(rt);
}
END_TEST

START_TEST(a_failing_work_reports_its_code_and_is_counted)
{
	ac_runtime_t *rt = rt_start(1, 1, 0);
	struct job ok = {0}, bad = {.ret = -EIO};
	ac_stats_t st;

	ck_assert_int_eq(submit(rt, 0, &ok, NULL), 0);
	ck_assert_int_eq(submit(rt, 0, &bad, NULL), 0);
	assert_done_once(&ok);
	assert_done_once(&bad);
	ck_assert_int_eq(ok.status, 0);
	ck_assert_int_eq(bad.status, -EIO);
	ck_assert_int_eq(ac_stats(rt, &st, NULL, 0), 1);
	ck_assert_uint_eq(st.work_done, 1);
	ck_assert_uint_eq(st.work_failed, 1);
	ck_assert_uint_eq(st.work_cancelled, 0);
	ck_assert_uint_eq(st.work_queued, 0);
	ck_assert_uint_eq(st.work_running, 0);
	rt_finish(rt);
}
END_TEST

/* ---- cancel ------------------------------------------------------------------ */

START_TEST(cancel_before_start_completes_with_ecanceled_at_once)
{
	ac_runtime_t *rt = rt_start(1, 1, 0);
	int gate = 0;
	struct job blocker = {.gate = &gate}, queued = {0};
	uint64_t id;
	ac_stats_t st;

	ck_assert_int_eq(submit(rt, 0, &blocker, NULL), 0);
	ck_assert(th_wait(flag, &blocker.started, 5000));
	ck_assert_int_eq(submit(rt, 0, &queued, &id), 0);
	ac_stats(rt, &st, NULL, 0);
	ck_assert_uint_eq(st.work_queued, 1);
	ck_assert_uint_eq(st.work_running, 1);
	ck_assert_int_eq(ac_work_cancel(rt, id), 0);
	/* done comes while the only worker is still busy: the cancel does
	 * not wait for a worker. */
	assert_done_once(&queued);
	ck_assert_int_eq(queued.status, AC_ECANCELED);
	ck_assert_int_eq(queued.done_loop, 0);
	ck_assert_int_eq(ac_work_cancel(rt, id), AC_EALREADY);
	set(&gate, 1);
	assert_done_once(&blocker);
	ck_assert_int_eq(blocker.status, 0);
	usleep(10000);
	ck_assert_int_eq(queued.ran, 0); /* never ran */
	ac_stats(rt, &st, NULL, 0);
	ck_assert_uint_eq(st.work_cancelled, 1);
	ck_assert_uint_eq(st.work_done, 1);
	rt_finish(rt);
}
END_TEST

START_TEST(cancel_while_running_returns_ebusy_and_done_gets_the_result)
{
	ac_runtime_t *rt = rt_start(1, 1, 0);
	int gate = 0;
	struct job j = {.gate = &gate, .ret = 7};
	uint64_t id;

	ck_assert_int_eq(submit(rt, 0, &j, &id), 0);
	ck_assert(th_wait(flag, &j.started, 5000));
	ck_assert_int_eq(ac_work_cancel(rt, id), AC_EBUSY);
	set(&gate, 1);
	assert_done_once(&j);
	ck_assert_int_eq(j.status, 7);
	ck_assert_int_eq(ac_work_cancel(rt, id), AC_EALREADY);
	/* Ids rt never issued. */
	ck_assert_int_eq(ac_work_cancel(rt, 0), AC_EINVAL);
	ck_assert_int_eq(ac_work_cancel(rt, id + (1ull << 32)), AC_EINVAL);
	ck_assert_int_eq(ac_work_cancel(rt, (1ull << 32) | 1000000), AC_EINVAL);
	ck_assert_int_eq(ac_work_cancel(NULL, id), AC_EINVAL);
	rt_finish(rt);
}
END_TEST

/* ---- bounds and bad input ------------------------------------------------------ */

START_TEST(a_full_pool_returns_eagain_and_loses_nothing)
{
	ac_runtime_t *rt = rt_start(1, 1, 4);
	int gate = 0;
	struct job j[6] = {{.gate = &gate}};
	ac_stats_t st;

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(submit(rt, 0, &j[i], NULL), 0);
	ck_assert_int_eq(submit(rt, 0, &j[4], NULL), AC_EAGAIN);
	ac_stats(rt, &st, NULL, 0);
	ck_assert_uint_eq(st.work_full, 1);
	set(&gate, 1);
	for (int i = 0; i < 4; i++) {
		assert_done_once(&j[i]);
		ck_assert_int_eq(j[i].status, 0);
		ck_assert_int_eq(j[i].ran, 1);
	}
	ck_assert_int_eq(j[4].ran + j[4].done, 0); /* refused: nothing ran */
	/* Room again once done has run. */
	ck_assert_int_eq(submit(rt, 0, &j[5], NULL), 0);
	assert_done_once(&j[5]);
	rt_finish(rt);
}
END_TEST

START_TEST(bad_arguments_and_states_get_their_errors)
{
	ac_config_t bad = {.work_threads = -1};
	ac_runtime_t *rt;
	struct job j = {0};

	ck_assert_ptr_null(ac_runtime_new(&bad));
	ck_assert_int_eq(errno, EINVAL);
	bad.work_threads = AC_WORK_THREADS_MAX + 1;
	ck_assert_ptr_null(ac_runtime_new(&bad));
	bad = (ac_config_t){.work_capacity = AC_WORK_MAX + 1};
	ck_assert_ptr_null(ac_runtime_new(&bad));
	ck_assert_int_eq(errno, EINVAL);

	rt = ac_runtime_new(&(ac_config_t){.loops = 2});
	ck_assert_ptr_nonnull(rt);
	ck_assert_int_eq(submit(rt, 0, &j, NULL), AC_ESTATE); /* not started */
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	ck_assert_int_eq(submit(NULL, 0, &j, NULL), AC_EINVAL);
	ck_assert_int_eq(ac_work_submit(rt, 0, AC_HANDLE_NONE, NULL, job_done,
					&j, NULL),
			 AC_EINVAL);
	ck_assert_int_eq(ac_work_submit(rt, 0, AC_HANDLE_NONE, job_work, NULL,
					&j, NULL),
			 AC_EINVAL);
	ck_assert_int_eq(submit(rt, -1, &j, NULL), AC_EINVAL);
	ck_assert_int_eq(submit(rt, AC_LOOP(2), &j, NULL), AC_EINVAL);
	/* A handle naming a loop rt does not have. */
	ck_assert_int_eq(ac_work_submit(rt, 0, (ac_handle_t)9 << 56 | 1,
					job_work, job_done, &j, NULL),
			 AC_EINVAL);
	ck_assert_int_eq(ac_runtime_stop(rt, 0), 0);
	ck_assert_int_eq(submit(rt, 0, &j, NULL), AC_ESHUTDOWN);
	ck_assert_int_eq(j.ran + j.done, 0);
	rt_finish(rt);
}
END_TEST

/* A work function may not stop or free its own runtime (the stop would
 * wait for it), and may not cancel itself. */
struct selfish {
	ac_runtime_t *rt;
	uint64_t id;
	int id_set;
	int stop_rc, free_rc, cancel_rc;
	int64_t done;
};

static int selfish_work(void *arg)
{
	struct selfish *s = arg;

	while (!__atomic_load_n(&s->id_set, __ATOMIC_ACQUIRE))
		usleep(100);
	s->stop_rc = ac_runtime_stop(s->rt, 0);
	s->free_rc = ac_runtime_free(s->rt);
	s->cancel_rc = ac_work_cancel(s->rt, s->id);
	return 0;
}

static void selfish_done(ac_conn_t *c, int status, void *arg)
{
	struct selfish *s = arg;

	__atomic_fetch_add(&s->done, 1, __ATOMIC_ACQ_REL);
}

START_TEST(a_work_function_may_not_stop_its_runtime)
{
	ac_runtime_t *rt = rt_start(1, 1, 0);
	struct selfish s = {.rt = rt};

	ck_assert_int_eq(ac_work_submit(rt, 0, AC_HANDLE_NONE, selfish_work,
					selfish_done, &s, &s.id),
			 0);
	set(&s.id_set, 1);
	ck_assert(th_wait_ge(&s.done, 1, 5000));
	ck_assert_int_eq(s.stop_rc, AC_ETHREAD);
	ck_assert_int_eq(s.free_rc, AC_ETHREAD);
	ck_assert_int_eq(s.cancel_rc, AC_EBUSY);
	rt_finish(rt);
}
END_TEST

/* ---- ties --------------------------------------------------------------------- */

static struct tied {
	struct job j;
	int gate;
	int err;
	ac_conn_t *conn; /* compared, never dereferenced, off its loop */
	int submitted;
} T;

static void tied_done(ac_conn_t *c, int status, void *arg)
{
	job_done(c, status, arg);
	/* Still open: reply through the connection done was given. */
	if (c)
		ck_assert_int_eq(ac_conn_write(c, "done\n", 5), 0);
}

static void tied_frame(ac_conn_t *c, const void *data, size_t len)
{
	T.conn = c;
	T.err = ac_work_submit(ac_conn_runtime(c), 0, ac_conn_handle(c),
			       job_work, tied_done, &T.j, NULL);
	set(&T.submitted, 1);
}

START_TEST(tied_work_whose_connection_stays_open_gets_it_in_done)
{
	char buf[5];
	int fd;

	T.j.gate = &T.gate;
	th_srv.on_frame = tied_frame;
	th_server_start(2, "127.0.0.1:0", &(ac_conn_opts_t){.framing = AC_FRAME_LINE});
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_write_all(fd, "go\n", 3);
	ck_assert(th_wait(flag, &T.submitted, 5000));
	ck_assert_int_eq(T.err, 0);
	set(&T.gate, 1);
	ck_assert(th_read_full(fd, buf, 5));
	ck_assert(memcmp(buf, "done\n", 5) == 0);
	assert_done_once(&T.j);
	ck_assert_int_eq(T.j.status, 0);
	ck_assert_ptr_eq(T.j.c, T.conn);
	ck_assert_int_eq(T.j.done_loop, AC_HANDLE_LOOP(th_srv.handles[0]));
	close(fd);
	th_finish();
}
END_TEST

START_TEST(tied_connection_closed_while_work_runs_gets_estale_and_no_pointer)
{
	int fd;

	T.j.gate = &T.gate;
	T.j.ret = -EIO; /* not reported: the tie's end wins */
	th_srv.on_frame = tied_frame;
	th_server_start(2, "127.0.0.1:0", &(ac_conn_opts_t){.framing = AC_FRAME_LINE});
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_write_all(fd, "go\n", 3);
	ck_assert(th_wait(flag, &T.j.started, 5000));
	close(fd);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	/* The connection is gone (its memory reclaimable); the work ends
	 * after that. Under ASan, a use of the freed connection would
	 * show here. */
	set(&T.gate, 1);
	assert_done_once(&T.j);
	ck_assert_int_eq(T.j.status, AC_ESTALE);
	ck_assert_ptr_null(T.j.c);
	ck_assert_int_eq(T.j.ran, 1);
	/* Tying to a handle that is already stale is refused at once. */
	ck_assert_int_eq(ac_work_submit(th_srv.rt, 0, th_srv.handles[0],
					job_work, job_done, &T.j, NULL),
			 AC_ESTALE);
	th_finish();
}
END_TEST

START_TEST(tied_work_must_complete_on_its_connections_loop)
{
	struct job j = {0};
	ac_handle_t h;
	int fd, other;

	th_server_start(2, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	h = th_handle(0);
	other = AC_HANDLE_LOOP(h) == 0 ? 1 : 0;
	ck_assert_int_eq(ac_work_submit(th_srv.rt, AC_LOOP(other), h, job_work,
					job_done, &j, NULL),
			 AC_EINVAL);
	ck_assert_int_eq(ac_work_submit(th_srv.rt, AC_LOOP(AC_HANDLE_LOOP(h)),
					h, job_work, job_done, &j, NULL),
			 0);
	assert_done_once(&j);
	ck_assert_int_eq(j.done_loop, AC_HANDLE_LOOP(h));
	ck_assert_int_eq(j.status, 0);
	ck_assert_ptr_nonnull(j.c); /* still open */
	close(fd);
	th_finish();
}
END_TEST

/* ---- the stop ----------------------------------------------------------------- */

struct stopper {
	ac_runtime_t *rt;
	int64_t *seq;
	int64_t returned_at;
	int rc;
};

static void *stop_thread(void *arg)
{
	struct stopper *s = arg;

	s->rc = ac_runtime_stop(s->rt, 0);
	s->returned_at = __atomic_add_fetch(s->seq, 1, __ATOMIC_ACQ_REL);
	return NULL;
}

#define QUEUED 20

START_TEST(stop_completes_queued_work_with_eshutdown_and_waits_for_running)
{
	ac_runtime_t *rt = rt_start(2, 1, 0);
	int gate = 0;
	int64_t seq = 0;
	struct job running = {.gate = &gate, .seq = &seq};
	struct job q[QUEUED];
	struct stopper s = {rt, &seq, 0, -1};
	pthread_t t;

	memset(q, 0, sizeof(q));
	ck_assert_int_eq(submit(rt, AC_LOOP(1), &running, NULL), 0);
	ck_assert(th_wait(flag, &running.started, 5000));
	for (int i = 0; i < QUEUED; i++)
		ck_assert_int_eq(submit(rt, AC_LOOP(i % 2), &q[i], NULL), 0);
	pthread_create(&t, NULL, stop_thread, &s);
	/* The queued work completes with AC_ESHUTDOWN on its own loop,
	 * which still runs, while the stop waits for the running work. */
	for (int i = 0; i < QUEUED; i++) {
		ck_assert(th_wait_ge(&q[i].done, 1, 5000));
		ck_assert_int_eq(q[i].status, AC_ESHUTDOWN);
		ck_assert_int_eq(q[i].done_loop, i % 2);
	}
	usleep(50000);
	ck_assert_int_eq(__atomic_load_n(&s.returned_at, __ATOMIC_ACQUIRE), 0);
	ck_assert_int_eq(submit(rt, 0, &q[0], NULL), AC_ESHUTDOWN);
	set(&gate, 1);
	pthread_join(t, NULL);
	ck_assert_int_eq(s.rc, 0);
	/* The work returned, then its done ran, then the stop returned. */
	ck_assert_int_eq(running.done, 1);
	ck_assert_int_eq(running.status, 0);
	ck_assert_int_lt(running.ret_at, running.done_at);
	ck_assert_int_lt(running.done_at, s.returned_at);
	for (int i = 0; i < QUEUED; i++) {
		ck_assert_int_eq(q[i].done, 1);
		ck_assert_int_eq(q[i].ran, 0);
	}
	rt_finish(rt);
}
END_TEST

static bool has_orphans(void *arg)
{
	ac_runtime_t *rt = arg;
	bool any;

	pthread_mutex_lock(&rt->work.lock);
	any = rt->work.orphans != 0;
	pthread_mutex_unlock(&rt->work.lock);
	return any;
}

/*
 * A completion its loop never runs is settled on the stopping thread.
 * That happens when a loop thread never started (a failed
 * ac_runtime_start): made here by marking a runtime running without
 * starting its loop. A two-slot mailbox takes two completions; the rest
 * find it full and become the pool's orphans. Each runs once either way,
 * with ac_loop_index() -1.
 */
START_TEST(completions_no_loop_runs_settle_on_the_stopping_thread)
{
	ac_config_t cfg = {.loops = 1, .mailbox_capacity = 2, .work_threads = 2};
	ac_runtime_t *rt = ac_runtime_new(&cfg);
	struct job j[6];

	memset(j, 0, sizeof(j));
	ck_assert_ptr_nonnull(rt);
	__atomic_store_n(&rt->state, AC__RT_RUNNING, __ATOMIC_RELEASE);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(submit(rt, 0, &j[i], NULL), 0);
	for (int i = 0; i < 6; i++)
		ck_assert(th_wait_ge(&j[i].ran, 1, 5000));
	ck_assert(th_wait(has_orphans, rt, 5000)); /* the ring was full */
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(j[i].done, 0);
	ck_assert_int_eq(ac_runtime_stop(rt, 0), 0);
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(j[i].done, 1);
		ck_assert_int_eq(j[i].status, 0);
		ck_assert_int_eq(j[i].done_loop, -1);
	}
	rt_finish(rt);
}
END_TEST

START_TEST(counts_and_prometheus_follow_the_pool)
{
	ac_runtime_t *rt = rt_start(1, 2, 0);
	int gate = 0;
	struct job j = {.gate = &gate};
	ac_debug_counts_t d;
	char *buf;
	int n;

	ck_assert_int_eq(submit(rt, 0, &j, NULL), 0);
	ck_assert(th_wait(flag, &j.started, 5000));
	ac_debug_counts(&d);
	ck_assert_int_gt(d.work, 1); /* the item and the pool's tables */
	n = ac_stats_prometheus(rt, NULL, 0);
	ck_assert_int_gt(n, 0);
	buf = malloc((size_t)n + 256);
	ck_assert_int_ge(ac_stats_prometheus(rt, buf, (size_t)n + 256), n);
	ck_assert_ptr_nonnull(strstr(buf, "# TYPE actorconn_work_running gauge\n"
					  "actorconn_work_running 1\n"));
	ck_assert_ptr_nonnull(strstr(buf, "# TYPE actorconn_work_done_total counter\n"
					  "actorconn_work_done_total 0\n"));
	set(&gate, 1);
	assert_done_once(&j);
	n = ac_stats_prometheus(rt, buf, (size_t)n + 256);
	ck_assert_ptr_nonnull(strstr(buf, "actorconn_work_done_total 1\n"));
	ck_assert_ptr_nonnull(strstr(buf, "actorconn_work_running 0\n"));
	ck_assert_ptr_nonnull(strstr(buf, "# HELP actorconn_work_cancelled_total "));
	ck_assert_ptr_nonnull(strstr(buf, "actorconn_work_full_total 0\n"));
	free(buf);
	rt_finish(rt); /* the work count is 0 after it */
}
END_TEST

/* ---- the race: many submits from two loops, cancels racing the workers --------- */

#define PER_LOOP 5000
#define IN_FLIGHT 48

struct sjob {
	int64_t ran, done;
	int status;
	int sub_loop, done_loop;
	int64_t cancelled; /* ac_work_cancel returned 0 (count) */
	uint64_t id;       /* published once submitted */
};

static struct sjob S[2 * PER_LOOP];
static struct {
	ac_runtime_t *rt;
	int next[2];       /* next item to submit, per loop (owner only) */
	int in_flight[2];  /* owner only */
	int64_t finished;  /* done calls, all loops */
	int64_t eagain;
	int stopped;       /* the canceller's signal to end */
} SR;

static int s_work(void *arg)
{
	struct sjob *j = arg;

	__atomic_fetch_add(&j->ran, 1, __ATOMIC_ACQ_REL);
	if ((j - S) % 16 == 0)
		sched_yield(); /* let cancels meet running work */
	return 0;
}

static void pump(void *arg);

static void s_done(ac_conn_t *c, int status, void *arg)
{
	struct sjob *j = arg;
	int l = ac_loop_index();

	j->status = status;
	j->done_loop = l;
	__atomic_fetch_add(&j->done, 1, __ATOMIC_ACQ_REL);
	__atomic_fetch_add(&SR.finished, 1, __ATOMIC_ACQ_REL);
	if (l < 0)
		return; /* settled on the stopping thread */
	SR.in_flight[l]--;
	pump((void *)(intptr_t)l);
}

static void pump_later(void *arg);

/* On loop l: keep up to IN_FLIGHT items out; cancel a third at once. */
static void pump(void *arg)
{
	int l = (int)(intptr_t)arg;

	while (SR.in_flight[l] < IN_FLIGHT && SR.next[l] < PER_LOOP) {
		struct sjob *j = &S[l * PER_LOOP + SR.next[l]];
		uint64_t id;
		int err = ac_work_submit(SR.rt, 0, AC_HANDLE_NONE, s_work,
					 s_done, j, &id);

		if (err == AC_EAGAIN) {
			/* The other loop holds the rest of the capacity:
			 * try again from a fresh drain cycle. */
			__atomic_fetch_add(&SR.eagain, 1, __ATOMIC_RELAXED);
			if (SR.in_flight[l] == 0)
				ck_assert_int_eq(ac_loop_post(SR.rt, AC_LOOP(l),
							      pump_later, arg),
						 0);
			return;
		}
		if (err == AC_ESHUTDOWN)
			return; /* the stop of the second race */
		ck_assert_int_eq(err, 0);
		j->sub_loop = l;
		__atomic_store_n(&j->id, id, __ATOMIC_RELEASE);
		SR.in_flight[l]++;
		SR.next[l]++;
		if (SR.next[l] % 3 == 0) {
			/* EALREADY: the canceller thread, or the stop of the
			 * second race, got there first. */
			err = ac_work_cancel(SR.rt, id);
			ck_assert(err == 0 || err == AC_EBUSY ||
				  err == AC_EALREADY);
			if (err == 0)
				__atomic_fetch_add(&j->cancelled, 1,
						   __ATOMIC_ACQ_REL);
		}
	}
}

static void pump_later(void *arg)
{
	usleep(100);
	pump(arg);
}

/* A control thread cancelling published ids while they run and
 * complete: every answer must fit what happened. */
static void *canceller(void *arg)
{
	unsigned seed = 7;

	while (__atomic_load_n(&SR.finished, __ATOMIC_ACQUIRE) <
		       2 * PER_LOOP &&
	       !__atomic_load_n(&SR.stopped, __ATOMIC_ACQUIRE)) {
		int k = (int)(rand_r(&seed) % (2 * PER_LOOP));
		uint64_t id = __atomic_load_n(&S[k].id, __ATOMIC_ACQUIRE);
		int err;

		if (!id)
			continue;
		err = ac_work_cancel(SR.rt, id);
		ck_assert_msg(err == 0 || err == AC_EBUSY ||
				      err == AC_EALREADY || err == AC_EAGAIN,
			      "cancel: %s", ac_err_name(err));
		if (err == 0)
			__atomic_fetch_add(&S[k].cancelled, 1,
					   __ATOMIC_ACQ_REL);
	}
	return NULL;
}

START_TEST(submits_from_two_loops_and_racing_cancels_complete_exactly_once)
{
	int64_t ran = 0, cancelled = 0;
	ac_stats_t st;
	pthread_t t;

	memset(S, 0, sizeof(S));
	SR.rt = rt_start(2, 3, 64);
	pthread_create(&t, NULL, canceller, NULL);
	ck_assert_int_eq(ac_loop_post(SR.rt, AC_LOOP(0), pump, (void *)0), 0);
	ck_assert_int_eq(ac_loop_post(SR.rt, AC_LOOP(1), pump, (void *)1), 0);
	ck_assert(th_wait_ge(&SR.finished, 2 * PER_LOOP, 60000));
	pthread_join(t, NULL);
	usleep(10000);
	for (int k = 0; k < 2 * PER_LOOP; k++) {
		struct sjob *j = &S[k];

		ck_assert_int_eq(j->done, 1);
		ck_assert_int_eq(j->done_loop, j->sub_loop);
		ck_assert_int_le(j->cancelled, 1);
		if (j->cancelled) {
			ck_assert_int_eq(j->status, AC_ECANCELED);
			ck_assert_int_eq(j->ran, 0);
		} else {
			ck_assert_int_eq(j->status, 0);
			ck_assert_int_eq(j->ran, 1);
		}
		ran += j->ran;
		cancelled += j->cancelled;
	}
	ck_assert_int_gt(cancelled, 0);
	fprintf(stderr, "stress: %lld ran, %lld cancelled, %lld EAGAIN\n", (long long)ran, (long long)cancelled, (long long)SR.eagain);
	ac_stats(SR.rt, &st, NULL, 0);
	ck_assert_uint_eq(st.work_done, (uint64_t)ran);
	ck_assert_uint_eq(st.work_cancelled, (uint64_t)cancelled);
	ck_assert_uint_eq(st.work_queued + st.work_running, 0);
	rt_finish(SR.rt);
}
END_TEST

/* The same race, stopped half-way: every accepted item completes once,
 * as ran (0), cancelled, or never started (AC_ESHUTDOWN). */
START_TEST(a_stop_in_the_middle_of_the_race_completes_each_item_once)
{
	int64_t shut = 0;
	pthread_t t;

	memset(S, 0, sizeof(S));
	SR.rt = rt_start(2, 3, 64);
	pthread_create(&t, NULL, canceller, NULL);
	ck_assert_int_eq(ac_loop_post(SR.rt, AC_LOOP(0), pump, (void *)0), 0);
	ck_assert_int_eq(ac_loop_post(SR.rt, AC_LOOP(1), pump, (void *)1), 0);
	ck_assert(th_wait_ge(&SR.finished, PER_LOOP, 60000));
	ck_assert_int_eq(ac_runtime_stop(SR.rt, 0), 0);
	set(&SR.stopped, 1);
	pthread_join(t, NULL);
	for (int k = 0; k < 2 * PER_LOOP; k++) {
		struct sjob *j = &S[k];

		if (!j->id) {
			ck_assert_int_eq(j->done + j->ran, 0);
			continue;
		}
		ck_assert_int_eq(j->done, 1);
		ck_assert(j->done_loop == j->sub_loop || j->done_loop == -1);
		ck_assert_int_le(j->cancelled, 1);
		if (j->cancelled)
			ck_assert_int_eq(j->status, AC_ECANCELED);
		else if (j->status == AC_ESHUTDOWN)
			shut++;
		else
			ck_assert_int_eq(j->status, 0);
		ck_assert_int_eq(j->ran, j->status == 0);
	}
	fprintf(stderr, "stopped race: %lld of %lld never started\n",
		(long long)shut, (long long)SR.finished);
	rt_finish(SR.rt);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("work");
	TCase *tc = tcase_create("work");

	tcase_add_test(tc, done_runs_once_on_the_submitting_loop_and_work_off_the_loops);
	tcase_add_test(tc, a_failing_work_reports_its_code_and_is_counted);
	tcase_add_test(tc, cancel_before_start_completes_with_ecanceled_at_once);
	tcase_add_test(tc, cancel_while_running_returns_ebusy_and_done_gets_the_result);
	tcase_add_test(tc, a_full_pool_returns_eagain_and_loses_nothing);
	tcase_add_test(tc, bad_arguments_and_states_get_their_errors);
	tcase_add_test(tc, a_work_function_may_not_stop_its_runtime);
	tcase_add_test(tc, tied_work_whose_connection_stays_open_gets_it_in_done);
	tcase_add_test(tc, tied_connection_closed_while_work_runs_gets_estale_and_no_pointer);
	tcase_add_test(tc, tied_work_must_complete_on_its_connections_loop);
	tcase_add_test(tc, stop_completes_queued_work_with_eshutdown_and_waits_for_running);
	tcase_add_test(tc, completions_no_loop_runs_settle_on_the_stopping_thread);
	tcase_add_test(tc, counts_and_prometheus_follow_the_pool);
	tcase_add_test(tc, submits_from_two_loops_and_racing_cancels_complete_exactly_once);
	tcase_add_test(tc, a_stop_in_the_middle_of_the_race_completes_each_item_once);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return th_run(suite());
}
