/*
 * cluster.c: actorconn-broker's --cluster. Several brokers share one
 * channel space through a Redis server or a Redis Cluster: one bridge
 * (ac_bridge_new) per broker, to which every channel and pattern topic
 * subscribes while it has a subscriber on this node (pubsub.c calls
 * cluster_subscribe when it makes a topic and cluster_unsubscribe when
 * it frees one), every PUBLISH goes for the other nodes after its local
 * delivery, and what the other nodes publish comes back through
 * on_message, which delivers it as a local PUBLISH would.
 *
 * The broker subscribes names one by one (ac_bridge_subscribe) rather
 * than bridging each topic's group (ac_group_bridge): a topic has a
 * group per protocol, each with its own encoding of the message, and a
 * pattern has no group of its own in Redis terms; the broker builds the
 * RESP pushes itself, as for a local publish.
 */
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The scheme the broker takes: the links are plain TCP (rediss:// would
 * need a client TLS context, which the broker has no options for). */
static const char scheme[] = "redis://";

/* Logs the first refusal only: a full mailbox refuses many calls in a
 * row, and INFO counts them all. AC_ESHUTDOWN is no refusal: the
 * runtime is stopping, and the clients' last unsubscriptions come as
 * their connections close, with the bridge going too. */
static void refused(const char *what, int err)
{
	static int said; /* atomic */

	if (err == AC_ESHUTDOWN)
		return;
	__atomic_fetch_add(&B.bridge_refused, 1, __ATOMIC_RELAXED);
	if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
		fprintf(stderr, "actorconn-broker: --cluster: %s refused: %s "
				"(counted in INFO's bridge_refused; logged "
				"once)\n", what, ac_strerror(err));
}

char *cluster_seeds(char *url, const char *arg)
{
	size_t sl = sizeof(scheme) - 1;
	char *joined;

	if (!url) {
		/* Not echoed: it may hold a password. */
		if (!strncmp(arg, "rediss://", 9)) {
			fprintf(stderr, "actorconn-broker: --cluster: rediss:// "
					"(TLS to Redis) is not supported\n");
			return NULL;
		}
		if (strncmp(arg, scheme, sl) != 0) {
			fprintf(stderr, "actorconn-broker: bad --cluster URL: "
					"give redis://HOST:PORT\n");
			return NULL;
		}
		return strcpy(xmalloc(strlen(arg) + 1), arg);
	}
	/* A further --cluster adds seeds; the first one's credentials
	 * apply to them all, as in one comma-separated url. */
	if (!strncmp(arg, scheme, sl))
		arg += sl;
	if (strchr(arg, '@') || strstr(arg, "://") || !*arg) {
		fprintf(stderr, "actorconn-broker: bad --cluster URL: a "
				"further seed is HOST:PORT, credentials go in "
				"the first\n");
		free(url);
		return NULL;
	}
	joined = xmalloc(strlen(url) + strlen(arg) + 2);
	sprintf(joined, "%s,%s", url, arg);
	free(url);
	return joined;
}

void cluster_print_url(char *buf, size_t n, const char *url)
{
	const char *hosts = url, *at;

	if (!strncmp(hosts, scheme, sizeof(scheme) - 1))
		hosts += sizeof(scheme) - 1;
	/* Credentials come before the first host, and an '@' in them is
	 * escaped (%40): the last '@' ends them. */
	if ((at = strrchr(hosts, '@')))
		hosts = at + 1;
	snprintf(buf, n, "%s%s", scheme, hosts);
}

/* A message another node published, on the bridge's home loop: to the
 * channel's topic, or to the pattern's as a pmessage. The channel's own
 * subscribers and each matching pattern's are separate subscriptions
 * in Redis, each of which brings its own copy: delivering a channel's
 * message to the patterns too would deliver it twice. */
static void on_message(int kind, const void *pattern, size_t plen,
		       const void *chan, size_t clen, ac_buf_t *payload,
		       void *arg)
{
	(void)arg;
	publish_remote(kind == AC_BRIDGE_PATTERN ? pattern : NULL, plen, chan,
		       clen, ac_buf_data(payload), ac_buf_len(payload));
}

int cluster_start(const char *url, const char *prefix)
{
	ac_bridge_opts_t o = {.mode = AC_BRIDGE_AUTO,
			      .prefix = prefix,
			      .on_message = on_message};
	char shown[256];
	int err;

	cluster_print_url(shown, sizeof(shown), url);
	if ((err = ac_bridge_new(B.rt, url, &o, &B.br)) == 0)
		return 0;
	if (err == AC_ENOTSUP)
		fprintf(stderr, "actorconn-broker: --cluster: libactorconn was "
				"built without hiredis\n");
	else
		fprintf(stderr, "actorconn-broker: bad --cluster '%s': %s\n",
			shown, ac_strerror(err));
	B.br = NULL;
	return -1;
}

void cluster_free(void)
{
	if (B.br)
		ac_bridge_free(B.br);
	B.br = NULL;
}

/* pubsub.c's kinds to the bridge's */
static int bridge_kind(int kind)
{
	return kind == PATTERN ? AC_BRIDGE_PATTERN : AC_BRIDGE_CHANNEL;
}

int cluster_subscribe(int kind, const char *name, size_t len)
{
	int err = ac_bridge_subscribe(B.br, bridge_kind(kind), name, len);

	if (err)
		refused("a subscription", err);
	return err ? -1 : 0;
}

/* A refused unsubscribe leaves the node subscribed in Redis: the
 * messages that come for the name find no topic and go nowhere, and a
 * topic of that name made later shares the subscription. */
void cluster_unsubscribe(int kind, const char *name, size_t len)
{
	int err = ac_bridge_unsubscribe(B.br, bridge_kind(kind), name, len);

	if (err)
		refused("an unsubscription", err);
}

/*
 * One buffer of the message as the client sent it; the bridge puts its
 * envelope before it on the wire. Publishes made on one loop reach
 * Redis in their order (ac_bridge_publish), so one client's messages
 * reach every node in the order it published them.
 */
void cluster_publish(const char *ch, size_t clen, const char *msg,
		     size_t mlen)
{
	ac_buf_t *b = ac_buf_new(msg, mlen);
	int err;

	if (!b) {
		refused("a publish", AC_ENOMEM);
		return;
	}
	if ((err = ac_bridge_publish(B.br, ch, clen, b)))
		refused("a publish", err);
	ac_buf_unref(b);
}
