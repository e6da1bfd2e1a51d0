/*
 * bridge_int.h: private to the bridge's two files: bridge.c (its life,
 * the calls other threads make, names and groups) and bridge_net.c (on
 * the home loop: links, replies, publishing, subscribing, the cluster's
 * map). bridge.c's opening comment says how the pieces fit.
 */
#ifndef AC_BRIDGE_INT_H
#define AC_BRIDGE_INT_H

#include "bridge.h"
#include "loop.h"

#include <hiredis/read.h>
#include <pthread.h>
#include <sys/queue.h>



#define NSLOTS 16384           /* Redis Cluster's hash slots */
#define ENVELOPE_LEN 12        /* "\0AC1" and the publisher's 64-bit id */
#define DEFAULT_MAX_QUEUED (8u << 20)
#define LINK_HEADROOM (1u << 20) /* subscribe commands beyond max_queued */
#define GROUP_EAGAIN_MS 1000   /* a foreign group publisher waits this long */

enum { ROLE_PUB, ROLE_SUB };
enum { OP_AUTH, OP_SLOTS, OP_PUBLISH, OP_ASKING, OP_SUB, OP_UNSUB };

/* ---- names and sources ----------------------------------------------------- */

/*
 * A channel to publish on, as Redis names it (prefix included) with its
 * slot. Shared by every message that publishes on it; holds a reference
 * on the bridge, so a publish in flight keeps the bridge alive.
 */
struct bsrc {
	int refs; /* atomic */
	ac_bridge_t *br;
	uint16_t slot;
	size_t rlen;
	char rname[];
};

/* A name the node may subscribe to (home). */
struct bchan {
	struct bchan *next;         /* hash chain */
	int kind;                   /* AC_BRIDGE_CHANNEL or _PATTERN */
	uint16_t slot;
	bool want;                  /* some ac_bridge_subscribe count */
	bool gactive;               /* group has members here */
	ac_group_t *group;          /* bridged group (a reference), or NULL */
	struct bnode *at;           /* node subscribed at (or asked), or NULL */
	unsigned pins;              /* pending subscribe replies naming it */
	size_t ulen;                /* the user's name: the last ulen bytes */
	size_t rlen;
	char rname[];               /* as Redis knows it */
};

/* A name's counts, kept for the threads that call ac_bridge_subscribe
 * and ac_group_bridge (under names_lock). */
struct bname {
	struct bname *next;
	int kind;
	uint64_t want;   /* subscribe calls minus unsubscribe calls */
	bool claimed;    /* a group is bridged to it */
	size_t len;
	char name[];
};

/* A hash table of either kind (same first fields), chained. */
struct btab {
	void **b;
	size_t nb, n;
};

/* ---- links and nodes -------------------------------------------------------- */

/* A reply awaited on a link, in the order sent. */
struct pend {
	uint8_t op;
	struct bchan *ch;   /* OP_SUB, OP_UNSUB: pinned */
	struct bsrc *src;   /* OP_PUBLISH: a reference, to follow MOVED */
	ac_buf_t *payload;  /* OP_PUBLISH: a reference */
	size_t bytes;       /* OP_PUBLISH: counted in the link's inflight */
};

/* A redirected publish, waiting until its slot's earlier publishes are
 * answered (cluster only; a reference on each). */
struct held {
	struct held *next;
	struct bsrc *src;
	ac_buf_t *payload;
	struct bnode *ask;  /* ASK's node, or NULL: the slot's owner */
};

struct link {
	struct bnode *node;
	int role;
	ac_handle_t h;      /* 0: no connection (never made, or ended) */
	ac_conn_t *c;       /* while open */
	redisReader *rd;    /* while open */
	bool closing;       /* we closed it: ignore what is still read */
	struct pend *q;     /* circular, cap a power of two */
	uint32_t head, tail, cap;
	size_t inflight;    /* publish bytes written and not yet answered */
};

struct bnode {
	ac_bridge_t *br;
	bool master;        /* in use: the server, or a master of the map */
	struct link pub, sub;
	char addr[];        /* "host:port" for ac_connect */
};

/* ---- the bridge --------------------------------------------------------------- */

struct ac_bridge_stats_w {
	uint64_t mode, nodes, links_up, channels, patterns, published, received,
		own_skipped, dropped_down, dropped_full, connects,
		disconnects, redirects, refreshes, errors;
};

struct ac_bridge_s {
	ac_runtime_t *rt;
	int home;
	int refs;           /* atomic */
	int freed;          /* atomic: ac_bridge_free was called */
	uint64_t id;        /* in every envelope this node writes */
	int mode_opt;       /* as asked */
	size_t max_queued;
	unsigned connect_ms, retry_min, retry_max;
	ac_tls_t *tls;
	char *tls_name;
	ac_bridge_recv_fn on_message;
	void *arg;
	char *user, *pass;  /* AUTH; NULL: none */
	char **seeds;
	int nseeds;
	char *prefix, *eprefix; /* prefix, and glob-escaped for patterns */
	size_t plen, eplen;
	uint64_t seed;      /* hash seed */
	LIST_ENTRY(ac_bridge_s) link; /* rt->bridges, under rt->lock */

	pthread_mutex_t names_lock; /* never held with another lock */
	struct btab names;

	/* home */
	int mode;           /* AC_BRIDGE_AUTO until a seed answered */
	bool dead;          /* freed: close everything, send nothing */
	bool refreshing, refresh_again, refresh_wanted;
	bool warned_patterns;
	struct bnode **nodes;
	int nnodes, capnodes;
	struct bnode *server;  /* single mode */
	uint16_t *slots;       /* cluster: node index + 1 per slot; 0 none */
	/* Cluster: per slot, publishes written and not yet answered, all
	 * on one node (index + 1 in route); and the redirected publishes
	 * that wait for them (bridge_net.c, "order across redirects"). */
	uint32_t *inflight;
	uint16_t *route;
	struct held *held;
	struct held **held_tail;
	struct btab chans;
	struct ac__ctl start_ctl, free_ctl;

	struct ac_bridge_stats_w st; /* home writes, relaxed; anyone reads */
};

/* A group's tie to a bridge (ac_group_bridge). References: the group's
 * (until its memory goes), one per queued control operation. */
struct ac__gbridge {
	int refs;           /* atomic */
	int queued;         /* atomic: sync_ctl is queued */
	ac_group_t *g;
	struct bsrc *src;   /* where its publishes go (a reference) */
	int kind;
	struct ac__ctl attach_ctl, sync_ctl, gone_ctl;
	/* home */
	bool attached, gone;
	struct bchan *ch;
	size_t len;
	char name[];        /* the channel, without the prefix */
};

#define ST_ADD(br, f, n)                                                     \
	__atomic_store_n(&(br)->st.f, (br)->st.f + (uint64_t)(n),            \
			 __ATOMIC_RELAXED)

/* bridge.c */
char *ac__br_strndup(const char *s, size_t n);
void ac__br_free(void *p);
void ac__br_unref(ac_bridge_t *br);
struct bchan *ac__br_chan_find(ac_bridge_t *br, int kind, const char *rname,
			       size_t rlen);
void ac__br_chan_maybe_free(ac_bridge_t *br, struct bchan *ch);
void ac__br_chans_foreach(ac_bridge_t *br,
			  void (*fn)(ac_bridge_t *, struct bchan *, void *),
			  void *arg);
void ac__br_src_ref(struct bsrc *s);
void ac__br_src_unref(struct bsrc *s);

/* bridge_net.c, on the home loop */
/* Makes ch's subscription what it should be (see bridge.c). */
void ac__br_chan_sync(ac_bridge_t *br, struct bchan *ch);
/* Connects l, unless it has a connection already. */
void ac__br_link_start(struct link *l);
void ac__br_link_close(struct link *l);
/* The node at addr ("host:port"), made if new; NULL: no memory. */
struct bnode *ac__br_node_get(ac_bridge_t *br, const char *addr);
/* A single server from now on: server. */
void ac__br_become_single(ac_bridge_t *br, struct bnode *server);
/* The bridge is freed: redirected publishes waiting go. */
void ac__br_drop_held(ac_bridge_t *br);

#endif /* AC_BRIDGE_INT_H */
