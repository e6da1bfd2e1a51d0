/*
 * mailbox.c: bounded lock-free mailboxes between threads and loops.
 *
 * Each consumer loop k has one SPSC ring per producer loop j (in[j],
 * created by j on first use; spsc.h) and one MPSC ring for every other
 * thread (mpsc.h). Messages are 32-byte values written in place in the
 * ring slots (with streaming stores into another loop's ring, spsc.h):
 * enqueue and dequeue take no lock and allocate nothing.
 *
 * Wake-ups are coalesced by the consumer's wake_pending flag: a producer
 * writes the consumer's eventfd only when it flips the flag from 0 to 1,
 * so there is at most one write per drain cycle (ac__wake). A loop
 * producer defers the wake-up to the end of its current callback, so a
 * callback that sends a thousand messages costs one fence and at most one
 * write per destination. A foreign producer calls ac__wake only when its
 * claim found the loop asleep on the foreign ring (mpsc.h): one
 * compare-and-swap per message and no fence while the loop is awake. A
 * loop that sends itself messages needs no eventfd (self_wake).
 *
 * Full rings: a foreign thread gets AC_EAGAIN and keeps its message. A loop
 * cannot block and must not lose what it accepted, so it moves the message
 * to its own overflow list for that destination (allocating a node: the
 * slow path) and retries on its next turn; while that list is non-empty,
 * later messages to the same destination queue behind it, which keeps
 * per-producer order.
 */
#include "mailbox.h"
#include "outq.h"
#include "mpsc.h"
#include "spsc.h"
#include "alloc.h"
#include "bridge.h"
#include "clock.h"
#include "conn.h"
#include "group.h"
#include "handle.h"
#include "listener.h"
#include "loop.h"
#include "runtime.h"
#include "wait.h"
#include "watch.h"
#include "work.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

struct ac__mpsc *ac__mpsc_new(unsigned size)
{
	struct ac__mpsc *r;
	struct ac__msg *slots;

	if (!(r = ac__memalign(AC__K_OTHER, AC__CACHELINE, sizeof(*r))))
		return NULL;
	if (!(slots = ac__memalign(AC__K_OTHER, AC__CACHELINE,
				   size * sizeof(*slots)))) {
		ac__free(AC__K_OTHER, r);
		return NULL;
	}
	/* Zeroed slots carry lap tag 0, which position 0 does not expect:
	 * empty. Asleep: the first producer wakes the loop. */
	memset(slots, 0, size * sizeof(*slots));
	memset(r, 0, sizeof(*r));
	r->claim = AC__MPSC_ASLEEP;
	r->pmask = r->cmask = size - 1;
	r->pslots = r->cslots = slots;
	return r;
}

void ac__mpsc_free(struct ac__mpsc *r)
{
	if (r) {
		ac__free(AC__K_OTHER, r->pslots);
		ac__free(AC__K_OTHER, r);
	}
}

struct ac__spsc *ac__spsc_new(unsigned size)
{
	struct ac__spsc *r;
	struct ac__msg *slots;

	if (!(r = ac__memalign(AC__K_OTHER, AC__CACHELINE, sizeof(*r))))
		return NULL;
	/* Line-aligned: a 32-byte message never straddles two lines, so
	 * each message moves between the cores as half a line. */
	if (!(slots = ac__memalign(AC__K_OTHER, AC__CACHELINE,
				   size * sizeof(*slots)))) {
		ac__free(AC__K_OTHER, r);
		return NULL;
	}
	memset(slots, 0, size * sizeof(*slots));
	memset(r, 0, sizeof(*r));
	r->pmask = r->cmask = size - 1;
	r->limit = size; /* head 0 + the capacity */
	r->pslots = r->cslots = slots;
	return r;
}

void ac__spsc_free(struct ac__spsc *r)
{
	if (r) {
		ac__free(AC__K_OTHER, r->pslots);
		ac__free(AC__K_OTHER, r);
	}
}

/* The write half of a wake-up: the eventfd that the loop's wake_cb
 * reads. */
static void wake_write(ac__loop_t *loop)
{
	uint64_t one = 1;
	ssize_t n;

	do
		n = write(loop->wake_fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
	/* EAGAIN means the counter is saturated: a wake-up is pending
	 * anyway. */
}

/* Any thread: tell `loop` that its mailbox has work. */
void ac__wake(ac__loop_t *loop)
{
	/*
	 * The lost-wake-up race (loop producers and control operations;
	 * foreign producers come here only from a claim that found the
	 * loop asleep on their ring, mpsc.h). Producer: enqueue; fence;
	 * read flag.
	 * Consumer (ac__loop drain): flag = 0; fence; drain the rings. Each
	 * side's store is ordered before its load by a full fence, so at
	 * least one of them sees the other's store: either this producer
	 * sees 0 and writes the eventfd, or the consumer's drain, which
	 * starts after its flag store, finds the message. Both may happen;
	 * that costs one spurious wake-up, never a lost message.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&loop->wake_pending, __ATOMIC_RELAXED))
		return;
	if (!__atomic_exchange_n(&loop->wake_pending, 1, __ATOMIC_ACQ_REL))
		wake_write(loop);
}

/*
 * Owner loop: messages it sent itself wait in its own ring r, which it
 * published at once (staged_mark). Sent during a turn's callbacks, they
 * need no wake-up: the loop runs them when the turn ends, before it polls
 * for I/O again (loop.c, after_turn). Sent from that run, they wait for
 * the drain cycle after the next poll, which the eventfd would start at
 * the cost of a write here and a read in wake_cb, two system calls for
 * messages that never left the thread; the zero timeout of a spent batch
 * does it with none (ac__loop_drain_soon). Setting the flag first keeps
 * the protocol of ac__wake: a producer that sees it set skips the eventfd
 * and relies on that drain cycle, which clears the flag before it
 * drains. The flag already set means a drain cycle is due anyway.
 */
static void self_wake(ac__loop_t *self, struct ac__spsc *r)
{
	if (self->turn_end && ac__spsc_depth(r) &&
	    !__atomic_exchange_n(&self->wake_pending, 1, __ATOMIC_ACQ_REL))
		ac__loop_drain_soon(self);
}

/* Loop producer: publishes what it staged for dest, then wakes dest. */
static void publish_and_wake(ac__loop_t *self, int dest, struct ac__spsc *r)
{
	if (ac__spsc_staged(r))
		ac__spsc_publish(r);
	if (dest == self->index)
		self_wake(self, r);
	else
		ac__wake(self->rt->loops[dest]);
}

/*
 * Loop producer, on the first message staged for dest since the ring was
 * last published, and on the pub_batch-th: the first puts dest in the
 * list of consumers published and woken when the current callback ends,
 * so that a callback that sends a thousand messages costs one index store
 * and at most one wake-up per destination. A callback can be long (a
 * drain cycle runs up to a thousand posted functions), so the pub_batch-th
 * (an eighth of a ring) is published and signalled at once: the consumer
 * starts draining before the ring fills. A message to the loop itself is
 * published at once: the drain cycle posting it may be the one that
 * should run it (its wake-up waits for the callback's end all the same).
 */
static void staged_mark(ac__loop_t *self, int dest, struct ac__spsc *r,
			uint32_t staged)
{
	if (dest == self->index) {
		ac__spsc_publish(r);
	} else if (staged >= self->pub_batch) {
		publish_and_wake(self, dest, r);
		return;
	}
	if (!r->listed) {
		r->listed = 1;
		self->wake_list[self->nwake++] = dest;
	}
}

/* Loop producer: the message in the slot was staged. */
static inline void staged(ac__loop_t *self, int dest, struct ac__spsc *r)
{
	uint32_t n = ac__spsc_stage(r);

	if (AC__UNLIKELY(n == 1 || n >= self->pub_batch))
		staged_mark(self, dest, r, n);
}

#define AC__OVF_MIN 256u /* messages in an overflow array at first */

void ac__ovf_clear(struct ac__ovf *o)
{
	ac__free(AC__K_MSG, o->v);
	memset(o, 0, sizeof(*o));
}

/* Doubles o's array, keeping the messages in order. */
static int ovf_grow(struct ac__ovf *o)
{
	uint32_t cap = o->cap ? o->cap * 2 : AC__OVF_MIN, n = o->tail - o->head;
	struct ac__msg *v = ac__malloc(AC__K_MSG, cap * sizeof(*v));

	if (!v)
		return AC_ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		v[i] = o->v[(o->head + i) & (o->cap - 1)];
	ac__free(AC__K_MSG, o->v);
	o->v = v;
	o->head = 0;
	o->tail = n;
	o->cap = cap;
	return 0;
}

/* Owner loop `self`: moves what fits of the overflow list for consumer d
 * into its ring r, in order, and publishes it. Returns true when the list
 * is empty; while it is not, r is held, so that later messages queue
 * behind the list (per-producer order). */
static bool retry_dest(ac__loop_t *self, int d, struct ac__spsc *r)
{
	struct ac__ovf *o = &self->ovf[d];
	unsigned moved = 0;

	if (ac__spsc_refresh(r)) {
		struct ac__msg *slot;

		while (!ac__ovf_empty(o) && (slot = ac__spsc_slot(r))) {
			*slot = o->v[o->head++ & (o->cap - 1)];
			ac__spsc_stage(r);
			moved++;
		}
	}
	if (moved) {
		self->ovf_count -= moved;
		publish_and_wake(self, d, r);
	}
	if (!ac__ovf_empty(o)) {
		ac__spsc_hold(r);
		return false;
	}
	/* Emptied: a large array goes (a small one stays for the next
	 * burst). */
	if (o->cap > 4 * AC__OVF_MIN)
		ac__ovf_clear(o);
	return true;
}

/* Owner loop `self`: m did not fit in r, the ring to dest (or an overflow
 * list for dest waits): m joins that list. */
static int ovf_push(ac__loop_t *self, int dest, struct ac__spsc *r,
		    const struct ac__msg *m)
{
	struct ac__ovf *o = &self->ovf[dest];

	if (o->tail - o->head == o->cap && ovf_grow(o))
		return AC_ENOMEM;
	/* Arm the retry first: adding a timer can allocate (libevent's
	 * heap), and a message queued with no retry armed would wait until
	 * something else happened on this loop, perhaps for ever. Refused
	 * instead, the caller keeps it. */
	if (self->ovf_ev && !evtimer_pending(self->ovf_ev, NULL)) {
		struct timeval tv = {0, AC__OVERFLOW_RETRY_US};
		if (evtimer_add(self->ovf_ev, &tv))
			return AC_ENOMEM;
	}
	o->v[o->tail++ & (o->cap - 1)] = *m;
	AC__STAT_ADD(self, mailbox_overflowed, 1);
	self->ovf_count++;
	ac__spsc_hold(r);
	/* A producer that outruns its consumer for a whole callback would
	 * otherwise refill the ring only when the callback ends: the
	 * consumer empties it and waits while the list grows without bound
	 * (2.9M messages in `actorconn-bench mailbox`, batch 64). Retrying
	 * once per publication batch keeps the ring fed and re-reads the
	 * consumer's index once per batch, not per message. */
	if (!(o->tail & (self->pub_batch - 1)))
		retry_dest(self, dest, r);
	return 0;
}

/* Owner loop `self`: its ring to loop dest, made on first use. */
static struct ac__spsc *ring_to(ac__loop_t *self, int dest)
{
	ac__loop_t *dst = self->rt->loops[dest];
	struct ac__spsc *r;

	if (!(r = ac__spsc_new(self->rt->mailbox_size)))
		return NULL;
	r->stream = dest != self->index;
	self->out[dest] = r;
	/* Release: the initialised ring is visible to the consumer before
	 * the pointer; the consumer loads it with acquire. */
	__atomic_store_n(&dst->in[self->index], r, __ATOMIC_RELEASE);
	return r;
}

/* Owner loop `self`: retries every overflow list. Returns the number of
 * messages still waiting. */
unsigned ac__mailbox_retry(ac__loop_t *self)
{
	for (int d = 0; d < self->rt->nloops && self->ovf_count; d++)
		if (!ac__ovf_empty(&self->ovf[d]))
			retry_dest(self, d, self->out[d]);
	return self->ovf_count;
}

/* Owner loop: publish what is staged and send the deferred wake-ups. */
void ac__mailbox_flush_wakes(ac__loop_t *self)
{
	for (int i = 0; i < self->nwake; i++) {
		int d = self->wake_list[i];
		struct ac__spsc *r = self->out[d];

		r->listed = 0;
		publish_and_wake(self, d, r);
	}
	self->nwake = 0;
}

/* The slow path of a loop's put: no ring yet, the producer's limit says
 * full, or an overflow list waits. */
static int loop_put_slow(ac__loop_t *self, int dest, const struct ac__msg *m)
{
	struct ac__spsc *r = self->out[dest];

	if (AC__UNLIKELY(!r) && !(r = ring_to(self, dest)))
		return AC_ENOMEM;
	/* Behind a waiting overflow list: per-producer order. */
	if (!ac__ovf_empty(&self->ovf[dest]) || !ac__spsc_put(r, m))
		return ovf_push(self, dest, r, m);
	staged_mark(self, dest, r, r->next - r->ptail);
	return 0;
}

/* A thread that is not one of rt's loops. */
static int foreign_put(ac__loop_t *dst, uint32_t kind, int32_t i,
		       ac_handle_t h, union ac__msg_a a, void *b)
{
	int r = ac__mpsc_put(dst->foreign, kind, i, h, a, b);

	if (AC__UNLIKELY(r == AC_EAGAIN)) {
		__atomic_fetch_add(&dst->mailbox_full, 1, __ATOMIC_RELAXED);
		return AC_EAGAIN;
	}
	/* The loop had found the ring empty and gone to sleep on it: this
	 * producer's claim cleared the bit, so this producer wakes it. */
	if (r)
		ac__wake(dst);
	return 0;
}

/* put's other paths, out of line (see put). */
static __attribute__((noinline)) int put_slow(ac_runtime_t *rt, int dest,
					       uint32_t kind, int32_t i,
					       ac_handle_t h,
					       union ac__msg_a a, void *b)
{
	ac__loop_t *self = ac__tls_loop;

	if (self && self->rt == rt)
		return loop_put_slow(self, dest,
				     &(struct ac__msg){.kind = kind, .i = i,
						       .h = h, .a = a, .b = b});
	return foreign_put(rt->loops[dest], kind, i, h, a, b);
}

/*
 * Any thread: a message of these fields for loop dest, written in place
 * in a ring's slot: inline and field by field, so that the caller's values
 * go straight into the slot, never through a message built on the stack
 * and copied (see ac__spsc_slot).
 *
 * Only the loop producer's fast path is inline; everything else is in
 * put_slow. With the slow paths inlined too, the compiler kept put a
 * function of its own that saved six registers on every call: twelve
 * stores per message where the message itself needs five, and the slot's
 * stores wait for the line to come back from the consumer's core, so the
 * store buffer filled and perf put most of the producer's time on put's
 * first instructions. Split, `actorconn-bench mailbox` loop -> loop,
 * batch 64, went from 39-46M to 72-73M messages/s (three runs each,
 * taking turns).
 */
static inline __attribute__((always_inline)) int
put(ac_runtime_t *rt, int dest, uint32_t kind, int32_t i, ac_handle_t h,
    union ac__msg_a a, void *b)
{
	ac__loop_t *self = ac__tls_loop;

	if (AC__LIKELY(self && self->rt == rt)) {
		struct ac__spsc *r = self->out[dest];
		struct ac__msg *slot;

		if (AC__LIKELY(r && (slot = ac__spsc_slot(r)))) {
			ac__spsc_write(r, slot, kind, i, h, a, b);
			staged(self, dest, r);
			return 0;
		}
	}
	return put_slow(rt, dest, kind, i, h, a, b);
}

int ac__mailbox_put(ac_runtime_t *rt, int dest, struct ac__msg *m)
{
	return put(rt, dest, m->kind, m->i, m->h, m->a, m->b);
}

/* For calls where a partial failure would be worse than a short wait:
 * a broadcast, a group's dissolution. */
int ac__mailbox_put_wait(ac_runtime_t *rt, int dest, struct ac__msg *m,
			 unsigned ms)
{
	uint64_t start = 0;
	unsigned backoff = 0;
	int err;

	while ((err = ac__mailbox_put(rt, dest, m)) == AC_EAGAIN) {
		if (!start)
			start = ac__mono_ms();
		else if (ac__mono_ms() - start > ms)
			break;
		ac__backoff_wait(&backoff);
	}
	return err;
}

/* ---- the public senders ---------------------------------------------------- */

static int check_rt(ac_runtime_t *rt)
{
	if (!rt)
		return AC_EINVAL;
	if (ac__rt_state(rt) == AC__RT_STOPPED)
		return AC_ESHUTDOWN;
	return 0;
}

AC_EXPORT int ac_loop_post(ac_runtime_t *rt, int loop, void (*fn)(void *),
			   void *arg)
{
	int err;

	if ((err = check_rt(rt)))
		return err;
	if (!fn || (loop = ac__loop_choice(rt, loop)) == AC_EINVAL)
		return AC_EINVAL;
	if (loop < 0)
		loop = ac__on_loop_of(rt) ? ac__tls_loop->index
					  : ac__loop_next(rt);
	return put(rt, loop, AC__MSG_POST, 0, 0, (union ac__msg_a){.fn = fn},
		   arg);
}

/* Common front of the handle-addressed calls. A snapshot: the connection
 * may still close before the message arrives; the owner loop re-checks and
 * counts the drop. */
static int check_handle(ac_runtime_t *rt, ac_handle_t h)
{
	int err;

	if ((err = check_rt(rt)))
		return err;
	if (h == AC_HANDLE_NONE)
		return AC_EINVAL;
	return ac__handle_live(rt, h) ? 0 : AC_ESTALE;
}

static int put_for_handle(ac_runtime_t *rt, ac_handle_t h, uint32_t kind,
			  int32_t i, union ac__msg_a a, void *b)
{
	int err;

	if ((err = check_handle(rt, h)))
		return err;
	return put(rt, AC_HANDLE_LOOP(h), kind, i, h, a, b);
}

/* One allocation and one copy, here; the owner loop links the chunk
 * into the connection's output as it is (outq.h). */
AC_EXPORT int ac_send(ac_runtime_t *rt, ac_handle_t h, const void *buf,
		      size_t len)
{
	struct ac__chunk *ch;
	int err;

	if (!buf && len)
		return AC_EINVAL;
	if ((err = check_handle(rt, h)))
		return err;
	if (!(ch = ac__chunk_copy(buf, len)))
		return AC_ENOMEM;
	if ((err = put(rt, AC_HANDLE_LOOP(h), AC__MSG_SEND, 0, h,
		       (union ac__msg_a){0}, ch)))
		ac__chunk_free(ch);
	return err;
}

AC_EXPORT int ac_send_buf(ac_runtime_t *rt, ac_handle_t h, ac_buf_t *b)
{
	int err;

	if (!b)
		return AC_EINVAL;
	if ((err = check_handle(rt, h)))
		return err;
	ac_buf_ref(b); /* the message's own */
	if ((err = put(rt, AC_HANDLE_LOOP(h), AC__MSG_SENDBUF, 0, h,
		       (union ac__msg_a){0}, b)))
		ac_buf_unref(b);
	return err;
}

AC_EXPORT int ac_tell(ac_runtime_t *rt, ac_handle_t h, int kind,
		      void *payload, void (*drop)(void *))
{
	return put_for_handle(rt, h, AC__MSG_TELL, kind,
			      (union ac__msg_a){.fn = drop}, payload);
}

AC_EXPORT int ac_close(ac_runtime_t *rt, ac_handle_t h, int how)
{
	if (how != AC_CLOSE_FLUSH && how != AC_CLOSE_ABORT)
		return AC_EINVAL;
	return put_for_handle(rt, h, AC__MSG_CLOSE, how, (union ac__msg_a){0},
			      NULL);
}

/* ---- what each kind of message does -------------------------------------------
 *
 * One row per kind: how the consumer loop delivers it, and how it is
 * settled once no loop ever will (on the thread stopping or freeing the
 * runtime). See mailbox.h.
 */

static void deliver_post(ac__loop_t *loop, struct ac__msg *m)
{
	m->a.fn(m->b);
}

/* A post runs even when its loop is gone: ownership of its argument
 * passed to fn, which alone can free it. ac_loop_index() is -1 there. */
static void settle_post(ac__loop_t *loop, struct ac__msg *m)
{
	m->a.fn(m->b);
}

/* A close for a loop that is gone: nothing is left to close. */
static void settle_nothing(ac__loop_t *loop, struct ac__msg *m)
{
}

const struct ac__msg_ops ac__msg_ops[AC__MSG_KINDS] = {
	[AC__MSG_POST] = {deliver_post, settle_post},
	[AC__MSG_SEND] = {ac__conn_deliver_send, ac__conn_settle_send},
	[AC__MSG_TELL] = {ac__conn_deliver_tell, ac__conn_settle_tell},
	[AC__MSG_CLOSE] = {ac__conn_deliver_close, settle_nothing},
	[AC__MSG_ADOPT] = {ac__listener_deliver_adopt,
			   ac__listener_settle_adopt},
	[AC__MSG_WATCH] = {ac__watch_deliver_watch, ac__watch_settle_watch},
	[AC__MSG_FIRE] = {ac__watch_deliver_fire, ac__watch_deliver_fire},
	[AC__MSG_SENDBUF] = {ac__conn_deliver_sendbuf,
			     ac__conn_settle_sendbuf},
	[AC__MSG_PUBLISH] = {ac__group_deliver_publish,
			     ac__group_settle_publish},
	[AC__MSG_DISSOLVE] = {ac__group_deliver_dissolve,
			      ac__group_deliver_dissolve},
	[AC__MSG_WORK] = {ac__work_deliver, ac__work_settle_msg},
	[AC__MSG_BRIDGE] = {ac__bridge_deliver, ac__bridge_settle},
};
