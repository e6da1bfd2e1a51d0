/*
 * internal.h: PRIVATE to libactorconn. Nothing here is installed or part of
 * the ABI; tests and benchmarks include it through the convenience library.
 *
 * Layout of the runtime (see actorconn(7) for the rules it implements):
 *
 *   ac_runtime_t ── loops[n] ── ac__loop_t: pthread + event_base (NOLOCK)
 *                                 ├─ in[n]     SPSC rings, one per producer
 *                                 │            loop, created by that producer
 *                                 ├─ foreign   MPSC ring for other threads
 *                                 ├─ ovf[n]    overflow lists (this loop as
 *                                 │            producer, one per consumer)
 *                                 ├─ htab      handle slots this loop owns
 *                                 └─ ctx       this loop's hazard pointer
 *                                              and epoch records
 */
#ifndef AC_INTERNAL_H
#define AC_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <ck_backoff.h>
#include <ck_epoch.h>
#include <ck_hp.h>
#include <ck_ring.h>
#include <ck_sequence.h>
#include <event2/event.h>
#include <event2/util.h>

#include "actorconn.h"

#define AC__CACHELINE 64
#define AC__ALIGNED __attribute__((aligned(AC__CACHELINE)))
#define AC__LIKELY(x) __builtin_expect(!!(x), 1)
#define AC__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Defaults (documented in actorconn(7)). */
#define AC__MAX_LOOPS 256
#define AC__DEFAULT_MAILBOX 4096u
#define AC__DEFAULT_MAX_FRAME ((size_t)1 << 20)
#define AC__DEFAULT_LINGER_MS 5000u
#define AC__DEFAULT_OUT_LOW ((size_t)64 << 10)
#define AC__DEFAULT_OUT_HIGH ((size_t)256 << 10)
#define AC__DEFAULT_OUT_HARD ((size_t)8 << 20)
#define AC__DEFAULT_OUT_SOFT ((size_t)1 << 20)
#define AC__DEFAULT_OUT_SOFT_MS 10000u
#define AC__READ_CHUNK 65536u     /* one recv() per readiness event */
#define AC__DRAIN_BUDGET 4096u    /* messages per drain cycle before I/O */
#define AC__OVERFLOW_RETRY_US 500 /* overflow retry period */

/* ---- allocation layer (alloc.c) ------------------------------------------
 * Every allocation the library makes goes through here, tagged with a kind,
 * so that live objects are counted in one place (ac_debug_counts) and later
 * work can inject failures. Counters are sharded per thread to keep loops
 * off each other's cache lines.
 */
enum ac__kind {
	AC__K_CONN,
	AC__K_HANDLE, /* counted, not allocated: a slot in use */
	AC__K_MSG,
	AC__K_LISTENER,
	AC__K_TIMER,
	AC__K_WATCH,  /* counted, not allocated: a watch slot in use */
	AC__K_REG,    /* registry entries and tables */
	AC__K_BUF,    /* shared buffers */
	AC__K_GROUP,  /* groups and their member arrays */
	AC__K_POOL,   /* pools, sub-pools, waiting acquires */
	AC__K_OTHER,
	AC__K_COUNT
};

void *ac__malloc(enum ac__kind k, size_t n);
void *ac__calloc(enum ac__kind k, size_t nmemb, size_t n);
void *ac__memalign(enum ac__kind k, size_t align, size_t n);
/* Grows p (counted under k when p is NULL); on failure p is untouched. */
void *ac__realloc(enum ac__kind k, void *p, size_t n);
void *ac__realloc_bytes(void *p, size_t n); /* input buffers; kind OTHER,
					       counted on first allocation */
void ac__free(enum ac__kind k, void *p);
void ac__count(enum ac__kind k, int delta);
void ac__count_dropped(void); /* on the loop that dropped it */
struct ac__loop;
/* Settling after the loop exited: counted in that loop's statistics. */
void ac__count_dropped_settled(struct ac__loop *loop);
char *ac__strdup(const char *s);

#ifdef AC_FAULT_INJECTION
/* Test-only (configure --enable-fault-injection; absent otherwise, and
 * never exported). Numbers allocation attempts from 1 again and makes
 * attempt n fail (0: none), and with persist every attempt after it. */
void ac__fault_fail_nth(uint64_t n, int persist);
uint64_t ac__fault_attempts(void); /* attempts since the last arming */
uint64_t ac__fault_failures(void); /* attempts failed since then */
bool ac__fault_hit(void);          /* counts one attempt: fail it? */
void ac__fault_hook_libevent(void); /* before any other libevent call */
int64_t ac__fault_libevent_live(void); /* libevent's allocations not freed */
void ac__fault_trace(int on);      /* print each failure's stack */
void ac__fault_only_loop(int loop); /* number only loop's attempts; -1: all */
#endif

/* ---- segmented tables ------------------------------------------------------
 * Tables that grow without moving: segment s holds (1 << shift) << s
 * entries. Index idx lives in segment *seg at offset *off. */
static inline void ac__seg_locate(uint32_t idx, unsigned shift, unsigned *seg,
				  uint32_t *off)
{
	uint64_t v = (uint64_t)idx + (1ull << shift);
	unsigned top = 63u - (unsigned)__builtin_clzll(v);

	*seg = top - shift;
	*off = (uint32_t)(v - (1ull << top));
}

/* ---- waiting ---------------------------------------------------------------- */

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

/* ---- time ------------------------------------------------------------------ */
uint64_t ac__wall_ms(void);
uint64_t ac__mono_ms(void);

struct ac__loop;

/* ---- messages and mailboxes (mailbox.c) -------------------------------- */

enum ac__msg_kind {
	AC__MSG_POST = 1, /* fn(arg) */
	AC__MSG_SEND,     /* write blob to h */
	AC__MSG_TELL,     /* on_message(h, i, b) or drop(b) */
	AC__MSG_CLOSE,    /* close h, how = i */
	AC__MSG_ADOPT,    /* adopt fd i for listener b */
	AC__MSG_WATCH,    /* watch h, watch id in b */
	AC__MSG_FIRE,     /* run watch id b with reason i */
	AC__MSG_SENDBUF,  /* write shared buffer b to h */
	AC__MSG_PUBLISH,  /* write shared buffer b to group a.p's members */
	AC__MSG_DISSOLVE  /* group a.p's members on this loop leave it */
};

/* A message lives by value in a ring slot: 32 bytes, no allocation. */
struct ac__msg {
	uint32_t kind;
	int32_t i;
	ac_handle_t h;
	union {
		void (*fn)(void *);
		void *p;
	} a;
	void *b;
};

/* A shared buffer (buf.c): the count, the length and the bytes. */
struct ac_buf_s {
	int refs; /* atomic */
	size_t len;
	unsigned char data[];
};

/* The payload of ac_send: one allocation holding the copy. */
struct ac__blob {
	size_t len;
	unsigned char data[];
};

CK_RING_PROTOTYPE(acmsg, ac__msg)

struct ac__ring {
	ck_ring_t ring; /* cache-line padded by Concurrency Kit */
	struct ac__msg *slots;
};

/* A message a loop could not place because the ring was full. */
struct ac__ovf_node {
	struct ac__ovf_node *next;
	struct ac__msg msg;
};

struct ac__ovf {
	struct ac__ovf_node *head, *tail;
};

int ac__mailbox_put(ac_runtime_t *rt, int dest, struct ac__msg *m);
int ac__mailbox_put_wait(ac_runtime_t *rt, int dest, struct ac__msg *m,
			 unsigned ms);
unsigned ac__mailbox_retry(struct ac__loop *self);
void ac__mailbox_flush_wakes(struct ac__loop *self);
struct ac__ring *ac__ring_new(unsigned capacity);
unsigned ac__ring_take(struct ac__ring *r, struct ac__msg *out, unsigned max);
void ac__ring_free(struct ac__ring *r);

/* ---- handle table (handle.c) ----------------------------------------------
 * Handle bits: 63..56 owner loop, 55..32 slot, 31..0 generation (never 0).
 * Each loop owns its own table, so only the owner ever allocates or frees a
 * slot and no lock is needed; other threads only read.
 */
#define AC__SLOT_BITS 24
#define AC__MAX_SLOTS (1u << AC__SLOT_BITS)
#define AC__SEG_BASE_SHIFT 10 /* segment s holds 1024 << s slots */
#define AC__SEGMENTS 15       /* 1024 * (2^15 - 1) >= 2^24 */

struct ac__slot {
	ac_conn_t *conn;    /* published with release, read with acquire */
	uint32_t gen;       /* bumped when the slot is released */
	uint32_t next_free; /* owner only; index + 1, 0 ends the list */
};

struct ac__htab {
	struct ac__slot *seg[AC__SEGMENTS]; /* published with release */
	uint32_t nslots;                    /* slots ever handed out */
	uint32_t free_head;                 /* index + 1 */
	uint32_t live;
};

static inline ac_handle_t ac__handle_make(int loop, uint32_t slot,
					  uint32_t gen)
{
	return ((uint64_t)loop << 56) | ((uint64_t)slot << 32) | gen;
}
static inline uint32_t ac__handle_slot(ac_handle_t h)
{
	return (uint32_t)(h >> 32) & (AC__MAX_SLOTS - 1);
}
static inline uint32_t ac__handle_gen(ac_handle_t h)
{
	return (uint32_t)h;
}

struct ac__slot *ac__htab_slot(struct ac__htab *t, uint32_t idx);
int ac__htab_alloc(struct ac__htab *t, uint32_t *idx, uint32_t *gen);
void ac__htab_release(struct ac__htab *t, uint32_t idx);
void ac__htab_destroy(struct ac__htab *t);

/* ---- reclamation: hazard pointers and epochs (handle.c) ------------------
 *
 * Two ways to read shared memory without a lock, each from Concurrency
 * Kit: a hazard pointer pins one connection (ac__pin), and an epoch
 * section covers a registry lookup (ck_hs, whose old tables and removed
 * entries are freed through ck_epoch). A thread needs a record of each
 * kind per runtime: a loop has its own; another thread borrows one from
 * the runtime on first use and gives it back when it exits.
 */
#define AC__HP_DEGREE 1 /* one pinned connection at a time */

/* Everything retired through ck_hp starts with this; destroy frees it,
 * so the hazard-pointer layer knows nothing of what it reclaims. */
struct ac__hpobj {
	ck_hp_hazard_t hazard;
	void (*destroy)(struct ac__hpobj *o);
};
void ac__hp_retire(ck_hp_record_t *rec, struct ac__hpobj *o,
		   void (*destroy)(struct ac__hpobj *o));
void ac__hp_destroy_cb(void *o); /* ck_hp's callback */

/* One thread's records for one runtime. */
struct ac__tctx {
	ck_hp_record_t hp;         /* cache-line aligned by Concurrency Kit */
	void *hp_ptrs[AC__HP_DEGREE];
	ck_epoch_record_t ep;      /* likewise */
	struct ac__tctx *next;     /* rt->tctxs (foreign ones), under rt->lock */
	bool in_use;               /* a thread holds it; under rt->lock */
};

/* Any thread: the calling thread's records for rt (a foreign thread's
 * first call allocates them: NULL when that fails). */
struct ac__tctx *ac__tctx(ac_runtime_t *rt);
void ac__tctx_init(ac_runtime_t *rt, struct ac__tctx *x);
int ac__hp_runtime_born(ac_runtime_t *rt);
void ac__hp_runtime_gone(ac_runtime_t *rt);
/* ac_runtime_free, once no thread uses rt: reclaim everything retired. */
void ac__tctx_reclaim_all(ac_runtime_t *rt);

static inline ck_hp_record_t *ac__hp_record(ac_runtime_t *rt)
{
	struct ac__tctx *x = ac__tctx(rt);
	return x ? &x->hp : NULL;
}

/* ThreadSanitizer annotations for orderings it cannot see because they
 * happen inside libck, which is not instrumented (see registry.c). */
#ifdef AC_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define AC__TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define AC__TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define AC__TSAN_ACQUIRE(p) ((void)(p))
#define AC__TSAN_RELEASE(p) ((void)(p))
#endif

/* ---- loops (loop.c) ------------------------------------------------------- */

typedef struct ac__loop ac__loop_t;
typedef struct ac__proto ac__proto_t;

/* A control operation: rare work (listen, unlisten, stop) pushed to a loop
 * under its ctl_lock. Runs on the loop, or on the stopping thread if the
 * loop has already exited. */
struct ac__ctl {
	struct ac__ctl *next;
	void (*fn)(ac__loop_t *loop, void *arg);
	void *arg;
};

/* One listening socket served by one loop. */
struct ac__accept {
	struct ac__accept *next;
	ac_listener_t *l;
	int fd;
	struct event *ev;
	struct event *backoff_ev; /* resumes accepting after EMFILE & co */
	unsigned backoff_ms;      /* 0 while accepting normally */
};

/*
 * Per-loop counters. Only the owner writes them, with relaxed atomic
 * stores of (value + n), so readers on other threads take no lock and see
 * no torn values; the block starts on its own cache line.
 */
struct ac__lstats {
	uint64_t accepted, connected, rejected, accept_pauses;
	uint64_t closed[AC_CR_COUNT];
	uint64_t bytes_in, bytes_out, frames_in, writes;
	uint64_t mailbox_received, mailbox_overflowed, mailbox_max_depth;
	uint64_t dropped, dropped_shutdown;
	uint64_t conns_open, handles_live, hp_pending, timers_live;
	uint64_t pool_idle, pool_busy, pool_waiting; /* over the loop's pools */
	uint64_t pool_connects, pool_failures;
};

#define AC__STAT_ADD(loop, field, n)                                         \
	__atomic_store_n(&(loop)->st.field, (loop)->st.field + (uint64_t)(n), \
			 __ATOMIC_RELAXED)
#define AC__STAT_SET(loop, field, v)                                         \
	__atomic_store_n(&(loop)->st.field, (uint64_t)(v), __ATOMIC_RELAXED)

struct ac__loop {
	/* Written by every producer (CAS 0 -> 1) and by the owner (-> 0): on
	 * its own cache line so producers do not bounce the fields below. */
	int wake_pending AC__ALIGNED;
	/* Foreign producers that found the mailbox full (atomic add). */
	uint64_t mailbox_full AC__ALIGNED;

	struct ac__lstats st AC__ALIGNED;

	/* Set before the thread starts; read by producers. */
	ac_runtime_t *rt AC__ALIGNED;
	int index;
	int wake_fd;             /* eventfd */
	struct ac__ring *foreign; /* MPSC: threads that are not loops */
	struct ac__ring **in;    /* [nloops]; in[j] created by loop j */
	struct ac__htab htab;    /* segments read by pinning threads */

	/* Owner only from here on. */
	struct ac__tctx ctx AC__ALIGNED; /* this loop's reclamation records */
	pthread_t thread;
	int thread_started;
	struct event_base *base;
	struct event *wake_ev;   /* eventfd readable: drain cycle */
	struct event *again_ev;  /* the drain cycle after a full batch */
	struct event *ovf_ev;    /* overflow retry timer */
	struct event *grace_ev;  /* shutdown grace timer */
	struct ac__ovf *ovf;     /* [nloops]: messages this loop could not place */
	unsigned ovf_count;
	uint8_t *wake_mark;      /* [nloops]: consumer already in wake_list */
	unsigned *unsignalled;   /* [nloops]: messages put since the last wake */
	int *wake_list;          /* consumers to wake when the callback ends */
	int nwake;
	int depth;               /* library callback nesting */
	unsigned nconns;         /* connections in htab, outbound ones
				    connecting or waiting included */
	unsigned nopen;          /* of which open (conns_open) */
	struct evdns_base *dns;  /* made on the first name lookup */
	struct ac__subpool *pools; /* sub-pools served by this loop */
	uint64_t rng;            /* back-off jitter (xorshift) */
	ac_conn_t *close_head, *close_tail; /* to finalize at callback end */
	ac_conn_t *flush_head;   /* to flush at callback end */
	struct ac__accept *accepts;
	struct ac_timer_s *timers; /* every live timer of this loop */
	struct ac__ctimeout {
		unsigned ms;
		const struct timeval *tv;
	} common[16];            /* libevent common timeouts by duration */
	int ncommon;
	int stopping;
	int exited;
	unsigned char *scratch;  /* AC__READ_CHUNK bytes for reads */

	struct ac__ctl stop_ctl; /* preallocated: stopping cannot fail */

	pthread_mutex_t ctl_lock; /* guards ctl_head/ctl_tail only */
	struct ac__ctl *ctl_head, *ctl_tail;
};

/* The loop the calling thread runs, or NULL. Initial-exec: one load off
 * the thread pointer, no __tls_get_addr call, so the owner check every
 * "owner loop" call makes costs a compare. (The library is linked at
 * start-up, which is what initial-exec needs; dlopen works while glibc's
 * static TLS reserve lasts, and this is one pointer.) */
extern __thread ac__loop_t *ac__tls_loop __attribute__((tls_model("initial-exec")));

/* True on any loop thread of rt. */
static inline bool ac__on_loop_of(const ac_runtime_t *rt)
{
	return ac__tls_loop && ac__tls_loop->rt == rt;
}

ac__loop_t *ac__loop_new(ac_runtime_t *rt, int index);
void ac__loop_free(ac__loop_t *loop);
int ac__loop_start(ac__loop_t *loop);
void ac__loop_enter(ac__loop_t *loop);
void ac__loop_leave(ac__loop_t *loop);
void ac__loop_ctl_node(ac__loop_t *loop, struct ac__ctl *node);
void ac__loop_run_ctl(ac__loop_t *loop);
void ac__loop_settle(ac__loop_t *loop);
void ac__loop_begin_stop(ac__loop_t *loop, void *grace_ms);
void ac__loop_note_closed(ac__loop_t *loop);

/* Signals consumer `loop` that its mailbox has work. Any thread. */
void ac__wake(ac__loop_t *loop);

/* Dispatch one mailbox message on its consumer loop. */
void ac__dispatch(ac__loop_t *loop, struct ac__msg *m);
/* Settle a message that can no longer be delivered (after shutdown). */
void ac__settle(ac__loop_t *loop, struct ac__msg *m);

/* ---- runtime (runtime.c) -------------------------------------------------- */

enum ac__rt_state {
	AC__RT_NEW,
	AC__RT_RUNNING,
	AC__RT_STOPPING,
	AC__RT_STOPPED
};

struct ac_runtime_s {
	int nloops;
	unsigned mailbox_size; /* ring slots, a power of two */
	int pin_cpus;
	int state;             /* enum ac__rt_state; atomic */
	uint64_t id;           /* unique per process, never reused */
	ac__loop_t **loops;
	ck_hp_t hp;
	ck_epoch_t epoch;
	pthread_mutex_t lock;  /* guards listeners, tctxs, state
				  transitions; never held on a hot path */
	ac_listener_t *listeners;
	struct ac__tctx *tctxs; /* foreign threads' records */
	unsigned rr;           /* round robin for foreign posts */
	unsigned max_conns;
	unsigned nconns;       /* atomic: open connections, all loops */
	void (*log)(int level, const char *msg, void *arg);
	void *log_arg;
	char *resolv_conf;     /* NULL: /etc/resolv.conf */
	struct ac_pool_s *pools; /* not yet freed, under lock */
	struct ac__wtab *watches;
};

void ac__log(ac_runtime_t *rt, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline int ac__rt_state(const ac_runtime_t *rt)
{
	return __atomic_load_n(&rt->state, __ATOMIC_ACQUIRE);
}

/* ---- handles across threads (handle.c) ------------------------------------ */

/*
 * Any thread. The slot h names, or NULL when h cannot name a slot of rt.
 * Slots never move or go away while rt lives, so reading one needs no pin.
 */
static inline struct ac__slot *ac__handle_slot_of(ac_runtime_t *rt,
						  ac_handle_t h)
{
	unsigned l = (unsigned)AC_HANDLE_LOOP(h);
	if (AC__UNLIKELY(l >= (unsigned)rt->nloops || ac__handle_gen(h) == 0))
		return NULL;
	return ac__htab_slot(&rt->loops[l]->htab, ac__handle_slot(h));
}

/* Any thread. Whether h still names an open connection (a snapshot). */
static inline bool ac__handle_live(ac_runtime_t *rt, ac_handle_t h)
{
	struct ac__slot *s = ac__handle_slot_of(rt, h);
	return s && __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) ==
			    ac__handle_gen(h) &&
	       __atomic_load_n(&s->conn, __ATOMIC_ACQUIRE) != NULL;
}

ac_conn_t *ac__pin(ac_runtime_t *rt, ck_hp_record_t *rec, ac_handle_t h);
static inline void ac__unpin(ck_hp_record_t *rec)
{
	/* Release: our reads of the pinned object happen before a reclaimer
	 * can see the hazard cleared. */
	__atomic_store_n(&rec->pointers[0], NULL, __ATOMIC_RELEASE);
}

/* Owner loop only: the live connection h names, or NULL. */
ac_conn_t *ac__handle_local(ac__loop_t *loop, ac_handle_t h);

/* ---- connections (conn.c) ------------------------------------------------- */

struct ac__proto {
	ac_conn_cbs_t cbs;
	ac_conn_opts_t opts; /* defaults resolved */
	ac_decode_fn decode;
	void *ud;
	int refs;            /* atomic: listeners and connections */
	unsigned nconns;     /* atomic: open connections (max_conns) */
	void *ping;          /* heartbeat payload, owned */
};

/* Resolves defaults and refuses options that cannot work (AC_EINVAL in
 * *err, with a log line through rt saying why). */
ac__proto_t *ac__proto_new(ac_runtime_t *rt, const ac_conn_cbs_t *cbs,
			   const ac_conn_opts_t *opts, void *ud, int *err);
void ac__proto_ref(ac__proto_t *p);
void ac__proto_unref(ac__proto_t *p);

enum ac__conn_state {
	AC__C_OPEN,
	AC__C_CLOSING,    /* flushing before close; no more reading */
	AC__C_DEAD,       /* finalized: only on_close and retirement remain */
	AC__C_CONNECTING, /* outbound: resolving or connecting */
	AC__C_WAITING     /* outbound: back-off before the next attempt */
};

/*
 * What other threads may read of a connection, through a pin
 * (ac_handle_info). The owner rewrites it when an outbound connection
 * reconnects, so it is written and read under a ck_sequence count: a
 * reader retries when the count was odd or moved. Every field is stored
 * and loaded with relaxed atomics, so a reader that races a rewrite reads
 * values it then throws away, never a data race. peer holds a
 * sockaddr_in6 or sockaddr_in, as words.
 */
struct ac__facts {
	ck_sequence_t seq;
	uint16_t family;   /* AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC */
	uint64_t opened_ms;
	uint64_t peer[4];
};

/* A consistent copy of a connection's facts. */
struct ac__facts_copy {
	int family;
	uint64_t opened_ms;
	struct sockaddr_storage peer;
	socklen_t peer_len; /* 0 unless AF_INET or AF_INET6 */
};

/* A connection's input tail, header and bytes in one allocation; only
 * while a frame is incomplete. */
struct ac__inbuf {
	size_t len, cap;
	unsigned char data[];
};

struct ac__wentry {
	uint64_t id; /* watch id */
};

struct ac__gentry {
	ac_group_t *g;
	uint32_t idx; /* c's place in g's member array on c's loop */
};

/*
 * A connection. It is kept small (256 bytes, one tcmalloc size class) for
 * idle memory: what only some connections need is allocated on demand,
 * and the retirement record overlays event pointers that are all freed
 * and NULL by the time the connection is retired.
 */
struct ac_conn_s {
	union {
		struct ac__hpobj hp; /* retirement through ck_hp (first) */
		struct {
			struct event *rev, *wev, *linger_ev, *idle_ev,
				*hb_ev;
		};
	};
	struct event *wto_ev, *soft_ev; /* lazily made, like wev and idle_ev */
	ac__loop_t *loop;
	ac__proto_t *proto;
	ac_handle_t handle;
	void *data;
	int fd;
	uint8_t state;
	uint8_t close_queued;
	uint8_t flush_queued;
	uint8_t writing; /* write event armed */
	uint8_t above_high; /* output went over out_high; on_drain pending */
	uint8_t counted;    /* holds a place in the max_conns counters */
	uint8_t is_open;    /* counted in loop->nopen */
	int reason;      /* close reason, fixed by the first close */
	size_t need;     /* input length worth decoding again */
	struct ac_timer_s *timers;  /* conn-owned timers */
	struct ac__wentry *watches; /* watchers to fire at close */
	unsigned nwatches, capwatches;
	struct ac__gentry *groups;  /* groups c is a member of */
	unsigned ngroups, capgroups;
	struct ac__inbuf *in;    /* NULL unless a frame is incomplete */
	struct evbuffer *out;    /* NULL unless output is pending */
	struct ac__outbound *ob; /* outbound connections only (connect.c) */
	ac_conn_t *close_next;
	ac_conn_t *flush_next;

	/* Read by other threads through a pin. bytes_* are written by the
	 * owner with relaxed atomic stores. */
	uint64_t bytes_in, bytes_out;
	struct ac__facts facts;
};

/* The calling thread is c's owner loop. A foreign thread is refused
 * without reading c; a loop reads c->loop, which never changes. */
static inline bool ac__is_owner(const ac_conn_t *c)
{
	return ac__tls_loop && c->loop == ac__tls_loop;
}

int ac__conn_open(ac__loop_t *loop, int fd, ac__proto_t *proto);
ac_conn_t *ac__conn_new(ac__loop_t *loop, ac__proto_t *proto, int *err);
int ac__conn_ready(ac_conn_t *c);
bool ac__conn_take_place(ac_conn_t *c);
void ac__conn_discard(ac_conn_t *c);
/* Owner loop: calls fn(c, arg) for every connection of the loop; fn may
 * close c (not free it: that happens at the outermost leave). */
void ac__loop_each_conn(ac__loop_t *loop, void (*fn)(ac_conn_t *c, int arg),
			int arg);
int ac__conn_out_reserve(ac_conn_t *c, size_t len);
void ac__conn_out_added(ac_conn_t *c);
void ac__conn_fail(ac_conn_t *c, int reason);
void ac__conn_close(ac_conn_t *c, int how);
int ac__conn_write(ac_conn_t *c, const void *buf, size_t len);
int ac__conn_write_buf(ac_conn_t *c, ac_buf_t *b);
void ac__conn_stop(ac_conn_t *c, int abort);
/* Owner: sets c's facts (peer may be NULL). Any thread holding a pin:
 * copies them. */
void ac__facts_set(ac_conn_t *c, int family, const struct sockaddr *peer,
		   socklen_t len, uint64_t opened_ms);
void ac__facts_get(const ac_conn_t *c, struct ac__facts_copy *out);
void ac__conn_finalize(ac_conn_t *c);
void ac__conn_flush(ac_conn_t *c);
void ac__conn_deliver(ac__loop_t *loop, struct ac__msg *m);

/* ---- outbound connections (connect.c) ------------------------------------ */

/* Where to connect: a fixed address, or a name resolved on each attempt. */
struct ac__target {
	struct ac__addr *addr; /* numeric or unix; NULL when host is set */
	char *host;            /* a name for evdns */
	char port[8];
};

struct ac__outbound {
	const struct ac__target *t;  /* own, or the pool's */
	struct ac__target *own;
	struct evutil_addrinfo *ai, *ai_next; /* this attempt's addresses */
	struct evdns_getaddrinfo_request *dns;
	struct event *cto_ev;    /* connect timeout */
	struct event *retry_ev;  /* back-off */
	unsigned failures;       /* failed attempts in a row */
	int last_errno;          /* of the last address tried */
	uint8_t resolving;
	uint8_t fixed_left;      /* the fixed address is still to be tried */
	uint8_t stop;            /* closed by this side or shutdown: final */
	/* Pool bookkeeping (pool.c) when the connection belongs to a pool. */
	struct ac__subpool *sp;
	uint8_t pstate;
	uint8_t ping_due;         /* a heartbeat reply is on its way */
	uint64_t born_ms, idle_ms;
	ac_conn_t *pnext, *pprev; /* the sub-pool's idle list */
};

int ac__target_parse(const char *s, struct ac__target *t);
void ac__target_clear(struct ac__target *t);
/* Owner loop, inside a callback: a new outbound connection to t (which
 * must outlive it), not yet started. */
ac_conn_t *ac__connect_new(ac__loop_t *loop, ac__proto_t *proto,
			   const struct ac__target *t, int *err);
void ac__connect_attempt(ac_conn_t *c);
/* Finalize: true when c should wait and try again (then it is WAITING). */
bool ac__outbound_again(ac_conn_t *c);
void ac__outbound_end_attempt(ac_conn_t *c);
void ac__outbound_free(ac_conn_t *c);
void ac__outbound_close(ac_conn_t *c);
unsigned ac__backoff_ms(ac__loop_t *loop, unsigned min_ms, unsigned max_ms,
			unsigned failures);

/* ---- pools (pool.c) ------------------------------------------------------- */
void ac__pools_loop_stop(ac__loop_t *loop);
void ac__pools_runtime_free(ac_runtime_t *rt);

/* ---- listeners (listener.c) ----------------------------------------------- */

struct ac_listener_s {
	ac_runtime_t *rt;
	ac__proto_t *proto;
	int refs;          /* atomic: the user, plus one per accept entry */
	int port;
	int is_unix;
	char *path;        /* unix socket path, unlinked when freed */
	unsigned rr;       /* unix hand-out round robin; loop 0 only */
	int user_closed;   /* atomic: the user's reference is gone */
	int nfds;
	int *fds;
	struct ac__accept_op *ops; /* [nfds]: hand each socket to its loop */
	struct ac__ctl *close_ops; /* [nfds]: take it back */
	ac_listener_t *prev, *next; /* rt->listeners, under rt->lock */
};

struct ac__accept_op {
	struct ac__ctl ctl;
	struct ac__accept entry;
};

void ac__listener_unref(ac_listener_t *l);
void ac__listener_release_user(ac_listener_t *l);
void ac__listener_adopt(ac__loop_t *loop, int fd, ac_listener_t *l);
void ac__accept_drop_all(ac__loop_t *loop);

/* ---- timers (timer.c) ------------------------------------------------------ */

struct ac_timer_s {
	ac__loop_t *loop;
	struct event *ev;
	void (*fn)(void *arg);
	void (*cfn)(ac_conn_t *c, void *arg);
	void *arg;
	ac_conn_t *conn;                  /* owner of a connection timer */
	struct ac_timer_s *prev, *next;   /* loop->timers */
	struct ac_timer_s *cprev, *cnext; /* conn->timers */
	struct timeval tv;                /* when no common timeout is left */
	uint8_t repeat, firing, cancelled;
};

/* The (common, when possible) timeval for ms on this loop. */
const struct timeval *ac__loop_timeout(ac__loop_t *loop, unsigned ms,
				       struct timeval *fallback);
void ac__timers_cancel_conn(ac_conn_t *c);
void ac__timers_free_loop(ac__loop_t *loop);

/* ---- watchers (watch.c) ---------------------------------------------------- */

int ac__wtab_new(ac_runtime_t *rt);
void ac__wtab_free(ac_runtime_t *rt);
/* Owner loop: a WATCH message arrived for m->h. */
void ac__watch_register(ac__loop_t *loop, struct ac__msg *m);
/* Owner loop, finalize: post every watcher of c with c's reason. */
void ac__watch_conn_closed(ac_conn_t *c);
/* Any thread: run watch id's fn with reason, once. */
void ac__watch_fire(ac_runtime_t *rt, uint64_t id, int reason);

/* ---- groups (group.c) ----------------------------------------------------------- */
void ac__group_deliver(ac__loop_t *loop, struct ac__msg *m);
void ac__group_settle(struct ac__msg *m);
void ac__group_dissolve(ac__loop_t *loop, struct ac__msg *m);
void ac__groups_conn_closed(ac_conn_t *c);

/* ---- statistics (stats.c) -------------------------------------------------- */
struct evbuffer;
/* The Prometheus text of one snapshot, appended to eb. 0 or AC_ENOMEM. */
int ac__stats_render(ac_runtime_t *rt, struct evbuffer *eb);


/* ---- addresses (addr.c) ------------------------------------------------- */

struct ac__addr {
	int family;
	socklen_t len;
	struct sockaddr_storage ss;
	char path[108];
};

int ac__addr_parse(const char *s, struct ac__addr *out);
int ac__addr_split(const char *s, struct ac__addr *out, char *host,
		   size_t hostlen, int *port);
void ac__addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
		     size_t n);

#endif /* AC_INTERNAL_H */
