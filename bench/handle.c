/*
 * handle.c: the `handle` subcommand. The cost of making a weak reference
 * usable for a moment and letting go, from threads that are not the
 * owner: actorconn's hazard-pointer pin (ac__pin and ac__unpin, reached
 * through internal.h) against a locked refcount table and an atomic
 * refcount. The threads all use the same handle, the worst case for
 * anything written on the way.
 */
#include "internal.h"
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>


#define H_SLOTS 64
#define H_SLOT 7 /* any slot: one that is not the first */

/* Baseline 1: a table of {ptr, generation, refcount} under one mutex. */
struct mslot {
	void *ptr;
	uint32_t gen;
	long refs;
};

struct mtab {
	pthread_mutex_t mu;
	struct mslot slots[H_SLOTS];
};

/* Baseline 2: slots read without a lock; the object holds an atomic
 * refcount. (A safe version would re-check the generation after the
 * increment, and so costs at least this much.) */
struct aobj {
	int refs;
} AC__ALIGNED;

struct aslot {
	struct aobj *obj;
	uint32_t gen;
};

/* The handles all three sides use: slot in the high half, generation in the
 * low half, as in the library. */
static uint32_t h_slot(uint64_t h)
{
	return (uint32_t)(h >> 32) % H_SLOTS;
}

/* The pins are kept out of line: ac__pin is a call into the library, and
 * the baselines should pay for a call too. */
static __attribute__((noinline)) void *m_pin(struct mtab *t, uint64_t h)
{
	struct mslot *s;
	void *p = NULL;

	pthread_mutex_lock(&t->mu);
	s = &t->slots[h_slot(h)];
	if (s->gen == (uint32_t)h && s->ptr) {
		s->refs++;
		p = s->ptr;
	}
	pthread_mutex_unlock(&t->mu);
	return p;
}

static void m_unpin(struct mtab *t, uint64_t h)
{
	pthread_mutex_lock(&t->mu);
	t->slots[h_slot(h)].refs--;
	pthread_mutex_unlock(&t->mu);
}

static __attribute__((noinline)) struct aobj *a_pin(struct aslot *t,
						    uint64_t h)
{
	struct aslot *s = &t[h_slot(h)];
	struct aobj *o;

	if (__atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) != (uint32_t)h)
		return NULL;
	if (!(o = __atomic_load_n(&s->obj, __ATOMIC_ACQUIRE)))
		return NULL;
	__atomic_fetch_add(&o->refs, 1, __ATOMIC_ACQUIRE);
	return o;
}

static void a_unpin(struct aobj *o)
{
	__atomic_fetch_sub(&o->refs, 1, __ATOMIC_RELEASE);
}

enum h_kind { H_AC, H_MUTEX, H_ATOMIC, H_KINDS };

struct h_shared {
	ac_runtime_t *rt;
	ac_handle_t h;       /* a live connection's handle */
	struct mtab mt;
	struct aslot at[H_SLOTS];
	struct aobj obj;
	uint64_t bh;         /* the baselines' handle */
	pthread_barrier_t bar;
};

struct h_worker {
	struct h_shared *sh;
	enum h_kind kind;
	long long iters;
	double start, end;
	long long failed; /* pins that returned NULL */
	uintptr_t sum;    /* of the pinned pointers */
	pthread_t th;
} AC__ALIGNED;

static volatile uintptr_t h_sink; /* keeps the pinned pointers "used" */

static void *h_main(void *arg)
{
	struct h_worker *w = arg;
	struct h_shared *sh = w->sh;
	ck_hp_record_t *rec = NULL;
	uintptr_t sum = 0;
	long long failed = 0;

	/* A foreign thread's first call makes its hazard record: keep that
	 * allocation out of the timing. */
	if (w->kind == H_AC && !(rec = ac__hp_record(sh->rt)))
		die("ac__hp_record: out of memory");
	pthread_barrier_wait(&sh->bar);
	w->start = now_s();
	switch (w->kind) {
	case H_AC:
		for (long long i = 0; i < w->iters; i++) {
			ac_conn_t *c = ac__pin(sh->rt, rec, sh->h);
			failed += !c;
			sum += (uintptr_t)c;
			ac__unpin(rec);
		}
		break;
	case H_MUTEX:
		for (long long i = 0; i < w->iters; i++) {
			void *p = m_pin(&sh->mt, sh->bh);
			failed += !p;
			sum += (uintptr_t)p;
			if (p)
				m_unpin(&sh->mt, sh->bh);
		}
		break;
	default:
		for (long long i = 0; i < w->iters; i++) {
			struct aobj *o = a_pin(sh->at, sh->bh);
			failed += !o;
			sum += (uintptr_t)o;
			if (o)
				a_unpin(o);
			/* The compiler may not fuse consecutive
			 * increments and decrements across this. */
			__asm__ volatile("" ::: "memory");
		}
		break;
	}
	w->end = now_s();
	w->failed = failed;
	w->sum = sum;
	return NULL;
}

/* ns per pin+unpin as each thread sees it: the wall time of the whole run
 * over one thread's share of the iterations. */
static double h_run(struct h_shared *sh, enum h_kind kind, int nthreads,
		    long long n)
{
	static const char *const names[] = {"actorconn", "mutex+refcount",
					    "atomic refcount"};
	struct h_worker w[H_MAX_THREADS];
	double start = 0, end = 0;
	int err;

	pthread_barrier_init(&sh->bar, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct h_worker){.sh = sh, .kind = kind,
					 .iters = n / nthreads};
		if ((err = pthread_create(&w[i].th, NULL, h_main, &w[i])))
			die("pthread_create: %s", strerror(err));
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(w[i].th, NULL);
		h_sink += w[i].sum;
		if (w[i].failed)
			die("%s, %d threads: %lld of %lld pins failed on a "
			    "live handle",
			    names[kind], nthreads, w[i].failed, w[i].iters);
		if (i == 0 || w[i].start < start)
			start = w[i].start;
		if (i == 0 || w[i].end > end)
			end = w[i].end;
	}
	pthread_barrier_destroy(&sh->bar);
	return (end - start) * 1e9 / (double)(n / nthreads);
}

/* on_open stores the handle for the main thread, which is waiting for it. */
static ac_handle_t g_handle;

static void h_on_open(ac_conn_t *c)
{
	__atomic_store_n(&g_handle, ac_conn_handle(c), __ATOMIC_RELEASE);
}

/* Opens one connection to a fresh runtime; returns the client socket. */
static int h_connect(struct h_shared *sh)
{
	const ac_conn_cbs_t cbs = {.on_open = h_on_open};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	ac_listener_t *l;
	double deadline;
	int fd, err;

	sh->rt = bench_runtime(1);
	if ((err = ac_listen(sh->rt, "127.0.0.1:0", &cbs, NULL, NULL, &l)))
		die("ac_listen: %s", ac_strerror(err));
	sa.sin_port = htons((uint16_t)ac_listener_port(l));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect to 127.0.0.1:%d: %s", ac_listener_port(l),
		    strerror(errno));
	/* A generous bound: this is a hang check, not a measurement. */
	deadline = now_s() + 10;
	while (!(sh->h = __atomic_load_n(&g_handle, __ATOMIC_ACQUIRE))) {
		if (now_s() > deadline)
			die("handle: on_open did not run within 10 s of "
			    "connecting");
		usleep(1000);
	}
	return fd;
}

struct h_row {
	int threads;
	double ns[H_KINDS]; /* medians */
};

static void h_print(const struct h_row *rows, int nrows,
		    const struct opts *o)
{
	static const struct col cols[] = {{"threads", 10},
					  {"actorconn", 12},
					  {"mutex+refcount", 17},
					  {"atomic refcount", 0}};
	char b[4][32];

	printf("handle: pin+unpin, ns/op (median of %d), N=%lld\n", o->reps,
	       o->iterations);
	table_header(cols, 4);
	for (int i = 0; i < nrows; i++) {
		const char *cells[4] = {b[0], b[1], b[2], b[3]};

		snprintf(b[0], sizeof(b[0]), "%d", rows[i].threads);
		for (int k = 0; k < H_KINDS; k++)
			snprintf(b[k + 1], sizeof(b[k + 1]), "%.2f",
				 rows[i].ns[k]);
		table_row(cols, 4, cells);
	}
	printf("ns/op: per thread (wall time / iterations per thread); each "
	       "thread does N/threads\n");
}

static int h_json(const struct h_row *rows, int nrows, struct json *j)
{
	for (int i = 0; i < nrows; i++) {
		json_obj_begin(j);
		json_int(j, "threads", rows[i].threads);
		json_num(j, "actorconn_ns", rows[i].ns[H_AC], 3);
		json_num(j, "mutex_ns", rows[i].ns[H_MUTEX], 3);
		json_num(j, "atomic_ns", rows[i].ns[H_ATOMIC], 3);
		json_obj_end(j);
	}
	return json_close(j);
}

int cmd_handle(const struct opts *o)
{
	struct h_shared *sh;
	struct h_row rows[H_MAX_THREADS];
	double v[H_KINDS][MAX_REPS];
	struct json j;
	int fd;

	if (o->json && json_open(&j, o->json, "handle"))
		return 1;
	if (posix_memalign((void **)&sh, AC__CACHELINE, sizeof(*sh)))
		die("out of memory");
	memset(sh, 0, sizeof(*sh));
	fd = h_connect(sh);

	/* The baselines name a live object in slot H_SLOT, generation 5. */
	sh->bh = ((uint64_t)H_SLOT << 32) | 5;
	pthread_mutex_init(&sh->mt.mu, NULL);
	sh->mt.slots[H_SLOT] = (struct mslot){.ptr = &sh->obj, .gen = 5};
	sh->at[H_SLOT] = (struct aslot){.obj = &sh->obj, .gen = 5};

	for (int t = 1; t <= H_MAX_THREADS; t++) {
		rows[t - 1].threads = t;
		for (int r = 0; r < o->reps; r++)
			for (int k = 0; k < H_KINDS; k++)
				v[k][r] = h_run(sh, (enum h_kind)k, t,
						o->iterations);
		for (int k = 0; k < H_KINDS; k++)
			rows[t - 1].ns[k] = median(v[k], o->reps);
	}
	if (sh->mt.slots[H_SLOT].refs || sh->obj.refs)
		die("baseline refcounts did not return to zero");

	close(fd);
	ac_runtime_stop(sh->rt, 0);
	ac_runtime_free(sh->rt);
	pthread_mutex_destroy(&sh->mt.mu);
	free(sh);

	h_print(rows, H_MAX_THREADS, o);
	if (o->json && h_json(rows, H_MAX_THREADS, &j))
		return 1;
	return 0;
}

