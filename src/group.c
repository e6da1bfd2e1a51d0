/*
 * group.c: broadcast groups across loops.
 *
 * Each loop keeps its own member array for a group, touched only by that
 * loop; a connection remembers its place in each group it joined, so that
 * leaving is O(1) (swap with the last member) and a closing connection
 * leaves everything by itself. A publish sends one message per loop that
 * has members, holding one reference to the buffer and one to the group;
 * the loop writes the same buffer to each local member.
 *
 * References on a group: the user's (until ac_group_free), one per
 * PUBLISH message in flight, one per dissolve operation in flight. The
 * last one frees it, so a publish racing the free is still delivered.
 */
#include "group.h"
#include "alloc.h"
#include "bridge.h"
#include "buf.h"
#include "clock.h"
#include "conn.h"
#include "loop.h"
#include "runtime.h"

#include <errno.h>
#include <stdlib.h>

#define AC__GROUP_EAGAIN_MS 1000 /* a foreign publisher waits this long */

struct ac__gloop {
	ac_conn_t **m; /* members on this loop; this loop only */
	uint32_t n, cap;
	uint64_t count; /* n, mirrored with relaxed stores for readers */
} AC__ALIGNED;

struct ac_group_s {
	ac_runtime_t *rt;
	int refs;                /* atomic */
	int64_t total;           /* atomic: members on every loop */
	struct ac__gbridge *bridge; /* atomic; set once (ac_group_bridge) */
	struct ac__ctl *dissolve; /* [nloops] */
	struct ac__gloop loops[];
};

static void group_unref(ac_group_t *g)
{
	struct ac__gbridge *gb;

	if (__atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL))
		return;
	if ((gb = __atomic_load_n(&g->bridge, __ATOMIC_ACQUIRE)))
		ac__bridge_group_release(gb);
	for (int i = 0; i < g->rt->nloops; i++)
		ac__free(AC__K_GROUP, g->loops[i].m);
	ac__free(AC__K_GROUP, g->dissolve);
	ac__free(AC__K_GROUP, g);
}

AC_EXPORT ac_group_t *ac_group_new(ac_runtime_t *rt)
{
	ac_group_t *g;
	size_t size;

	if (!rt) {
		errno = EINVAL;
		return NULL;
	}
	size = sizeof(*g) + (size_t)rt->nloops * sizeof(g->loops[0]);
	if (!(g = ac__memalign(AC__K_GROUP, AC__CACHELINE, size))) {
		errno = ENOMEM;
		return NULL;
	}
	memset(g, 0, size);
	g->rt = rt;
	g->refs = 1;
	if (!(g->dissolve = ac__calloc(AC__K_GROUP, (size_t)rt->nloops,
				       sizeof(*g->dissolve)))) {
		ac__free(AC__K_GROUP, g);
		errno = ENOMEM;
		return NULL;
	}
	return g;
}

/* ---- membership, on the member's loop ------------------------------------- */

/* The node-wide count; a bridged group tells its bridge when it goes
 * from 0 to 1 or back (seq_cst: ordered against the bridge clearing its
 * queued flag before it reads the count, bridge.c). */
static void members_changed(ac_group_t *g, int d)
{
	int64_t n = __atomic_add_fetch(&g->total, d, __ATOMIC_SEQ_CST);
	struct ac__gbridge *gb = __atomic_load_n(&g->bridge, __ATOMIC_ACQUIRE);

	if (gb && (n == 0 || (n == 1 && d > 0)))
		ac__bridge_group_changed(gb);
}

static struct ac__gentry *entry_of(ac_conn_t *c, ac_group_t *g)
{
	for (uint32_t i = 0; c->groups && i < c->groups->n; i++)
		if (c->groups->e[i].g == g)
			return &c->groups->e[i];
	return NULL;
}

AC_EXPORT int ac_group_join(ac_group_t *g, ac_conn_t *c)
{
	struct ac__gloop *gl;
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (!g || c->loop->rt != g->rt)
		return AC_EINVAL;
	if (c->state != AC__C_OPEN)
		return AC_ESTATE;
	if (entry_of(c, g))
		return AC_EEXIST;
	gl = &g->loops[c->loop->index];
	if (gl->n == gl->cap) {
		uint32_t cap = gl->cap ? gl->cap * 2 : 4;
		ac_conn_t **m = ac__realloc(AC__K_GROUP, gl->m, cap * sizeof(*m));
		if (!m)
			return AC_ENOMEM;
		gl->m = m;
		gl->cap = cap;
	}
	if (!c->groups || c->groups->n == c->groups->cap) {
		uint32_t cap = c->groups ? c->groups->cap * 2 : 2;
		struct ac__grouplist *l = ac__realloc(
			AC__K_GROUP, c->groups, sizeof(*l) + cap * sizeof(l->e[0]));
		if (!l)
			return AC_ENOMEM;
		if (!c->groups)
			l->n = 0;
		l->cap = cap;
		c->groups = l;
	}
	c->groups->e[c->groups->n++] = (struct ac__gentry){g, gl->n};
	gl->m[gl->n++] = c;
	__atomic_store_n(&gl->count, gl->n, __ATOMIC_RELAXED);
	members_changed(g, 1);
	return 0;
}

/* Removes c from g's array on its loop, and g from c's list. */
static void remove_member(ac_group_t *g, ac_conn_t *c, struct ac__gentry *e)
{
	struct ac__gloop *gl = &g->loops[c->loop->index];
	ac_conn_t *last = gl->m[--gl->n];

	if (last != c) {
		gl->m[e->idx] = last;
		entry_of(last, g)->idx = e->idx;
	}
	__atomic_store_n(&gl->count, gl->n, __ATOMIC_RELAXED);
	*e = c->groups->e[--c->groups->n];
	members_changed(g, -1);
}

AC_EXPORT int ac_group_leave(ac_group_t *g, ac_conn_t *c)
{
	struct ac__gentry *e;
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (!g)
		return AC_EINVAL;
	if (!(e = entry_of(c, g)))
		return AC_ENOENT;
	remove_member(g, c, e);
	return 0;
}

/* Finalize, after on_close: c leaves every group it is still in. */
void ac__groups_conn_closed(ac_conn_t *c)
{
	while (c->groups && c->groups->n)
		remove_member(c->groups->e[0].g, c, &c->groups->e[0]);
	ac__free(AC__K_GROUP, c->groups);
	c->groups = NULL;
}

AC_EXPORT size_t ac_group_size(ac_group_t *g)
{
	size_t n = 0;

	if (!g)
		return 0;
	for (int i = 0; i < g->rt->nloops; i++)
		n += __atomic_load_n(&g->loops[i].count, __ATOMIC_RELAXED);
	return n;
}

/* ---- publishing ------------------------------------------------------------ */

/* The members on this node only; see ac_group_publish. */
int ac__group_publish_local(ac_group_t *g, ac_buf_t *b)
{
	ac_runtime_t *rt = g->rt;
	int total = 0, err = 0;

	if (ac__rt_state(rt) == AC__RT_STOPPED)
		return AC_ESHUTDOWN;
	for (int i = 0; i < rt->nloops; i++) {
		uint64_t n = __atomic_load_n(&g->loops[i].count, __ATOMIC_RELAXED);
		struct ac__msg m = {.kind = AC__MSG_PUBLISH, .b = b};
		int e;

		if (!n)
			continue;
		m.a.p = g;
		__atomic_fetch_add(&g->refs, 1, __ATOMIC_RELAXED);
		ac_buf_ref(b);
		/* A loop caller never sees EAGAIN; a foreign one waits a
		 * moment for room rather than drop part of a broadcast. */
		if ((e = ac__mailbox_put_wait(rt, i, &m, AC__GROUP_EAGAIN_MS))) {
			ac_buf_unref(b);
			group_unref(g);
			err = e;
			continue;
		}
		total += (int)n;
	}
	return total || !err ? total : err;
}

AC_EXPORT int ac_group_publish(ac_group_t *g, ac_buf_t *b)
{
	struct ac__gbridge *gb;
	int n;

	if (!g || !b)
		return AC_EINVAL;
	n = ac__group_publish_local(g, b);
	/* After the local members: this node's own see it first, and the
	 * other nodes in the order this caller published. */
	if (n != AC_ESHUTDOWN &&
	    (gb = __atomic_load_n(&g->bridge, __ATOMIC_ACQUIRE)))
		ac__bridge_group_publish(gb, b);
	return n;
}

void ac__group_ref(ac_group_t *g)
{
	__atomic_fetch_add(&g->refs, 1, __ATOMIC_RELAXED);
}

void ac__group_unref(ac_group_t *g)
{
	group_unref(g);
}

int64_t ac__group_total(ac_group_t *g)
{
	return __atomic_load_n(&g->total, __ATOMIC_SEQ_CST);
}

ac_runtime_t *ac__group_runtime(ac_group_t *g)
{
	return g->rt;
}

int ac__group_set_bridge(ac_group_t *g, struct ac__gbridge *gb)
{
	struct ac__gbridge *none = NULL;

	return __atomic_compare_exchange_n(&g->bridge, &none, gb, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
		       ? 0
		       : AC_EEXIST;
}

/*
 * PUBLISH, on a loop with members. A drain's consecutive publishes to one
 * group are staged in loop->fan and written together by
 * ac__group_fan_flush, which the drain calls before any other message and
 * when it ends (loop.c): nothing runs on the loop between them, so the
 * members and every other message see the same order as one by one.
 */
void ac__group_deliver_publish(ac__loop_t *loop, struct ac__msg *m)
{
	ac_group_t *g = m->a.p;
	ac_buf_t *b = m->b;
	struct ac__fan *f = &loop->fan;

	if (!g->loops[loop->index].n) {
		ac_buf_unref(b);
		group_unref(g);
		return;
	}
	if (f->n && (f->g != g || f->n == AC__FAN_MAX))
		ac__group_fan_flush(loop);
	if (f->n)
		group_unref(g); /* the first message's reference is kept */
	f->g = g;
	f->b[f->n++] = b;
	f->bytes += b->len;
}

/*
 * Writes the staged publishes to each member on this loop. Two or more
 * are joined into one buffer first, so that a member costs one visit, one
 * copy or reference, and later one iovec, for all of them, where it cost
 * one visit and one copy per publish: in `actorconn-bench fanout` (1,000
 * subscribers, 64-byte messages, about 50 publishes a turn) the broker's
 * own code fell from 27% of its CPU to 4% (perf), the rest being the
 * kernel's sendmsg. Without memory for the joined buffer, each goes on
 * its own. A member over its hard limit is failed (closed later, at the
 * end of this callback), so the array does not change under us.
 */
void ac__group_fan_flush(ac__loop_t *loop)
{
	struct ac__fan *f = &loop->fan;
	struct ac__gloop *gl = &f->g->loops[loop->index];
	ac_buf_t *all = NULL;
	unsigned n = f->n, lost = 0;

	/* Timed from the first large fan-out of the turn (loop.c) that
	 * joined publishes: they come faster than the loop writes them. A
	 * full stage says they come faster than it can write them: then
	 * there is nothing to wait for. */
	if (n > 1 && gl->n >= AC_FANOUT_WAIT_MEMBERS &&
	    loop->rt->fanout_wait_us) {
		if (!loop->fan_wait_from)
			loop->fan_wait_from = ac__mono_us();
		if (n == AC__FAN_MAX)
			loop->fan_full = 1;
	}
	if (n > 1)
		all = ac__buf_concat(f->b, n, f->bytes);
	for (uint32_t i = 0; i < gl->n; i++) {
		if (all)
			lost += ac__conn_write_batch(gl->m[i], all, f->b, n);
		else
			for (unsigned j = 0; j < n; j++)
				lost += ac__conn_write_buf(gl->m[i], f->b[j]) != 0;
	}
	while (lost--)
		ac__count_dropped();
	AC__STAT_ADD(loop, group_publishes, n);
	AC__STAT_ADD(loop, group_batches, 1);
	ac_buf_unref(all);
	for (unsigned j = 0; j < n; j++)
		ac_buf_unref(f->b[j]);
	group_unref(f->g);
	f->g = NULL;
	f->n = 0;
	f->bytes = 0;
}

/* PUBLISH for a loop that is gone: its members are gone too. */
void ac__group_settle_publish(ac__loop_t *loop, struct ac__msg *m)
{
	ac_buf_unref(m->b);
	group_unref(m->a.p);
	ac__count_dropped_settled(loop);
}

/* ---- dissolving ------------------------------------------------------------ */

/* On each loop: its members leave; the loop's array goes with the group. */
static void dissolve_op(ac__loop_t *loop, void *arg)
{
	ac_group_t *g = arg;
	struct ac__gloop *gl = &g->loops[loop->index];

	while (gl->n) {
		ac_conn_t *c = gl->m[gl->n - 1];
		remove_member(g, c, entry_of(c, g));
	}
	group_unref(g);
}

/* DISSOLVE, on each loop (or for a loop that is gone, whose members
 * left already). */
void ac__group_deliver_dissolve(ac__loop_t *loop, struct ac__msg *m)
{
	dissolve_op(loop, m->a.p);
}

/*
 * The dissolve travels through the mailbox, behind the caller's own
 * publishes, so those are delivered first. A mailbox that stays full for
 * a second is bypassed through the control list, which cannot fail (the
 * caller's last publishes to that loop may then find no members).
 */
AC_EXPORT void ac_group_free(ac_group_t *g)
{
	struct ac__gbridge *gb;

	if (!g)
		return;
	if ((gb = __atomic_load_n(&g->bridge, __ATOMIC_ACQUIRE)))
		ac__bridge_group_free(gb);
	for (int i = 0; i < g->rt->nloops; i++) {
		struct ac__msg m = {.kind = AC__MSG_DISSOLVE};

		m.a.p = g;
		__atomic_fetch_add(&g->refs, 1, __ATOMIC_RELAXED);
		if (ac__mailbox_put_wait(g->rt, i, &m, AC__GROUP_EAGAIN_MS)) {
			g->dissolve[i].fn = dissolve_op;
			g->dissolve[i].arg = g;
			ac__loop_ctl_node(g->rt->loops[i], &g->dissolve[i]);
		}
	}
	group_unref(g);
}
