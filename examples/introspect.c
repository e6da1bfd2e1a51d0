/*
 * introspect.c: COMMAND and INFO.
 *
 * COMMAND (COUNT, INFO, DOCS, LIST) describes the broker's own commands in
 * Redis 7's reply shapes: what COMMAND INFO says of a command (arity,
 * flags, ACL categories, tips, key specs) is Redis' for the same command,
 * so that clients that route or check by it (redis-cli's hints, cluster
 * clients' key positions) see what they would see from Redis; a command
 * with subcommands lists only the subcommands the broker has. COMMAND
 * DOCS has Redis' argument structure (redis-cli builds its hints from
 * it) with summaries written for the broker.
 *
 * INFO has Redis' sections, in its order, with the fields the broker has
 * a true value for.
 */
#include "broker.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* ---- what the broker says of its commands ---------------------------------- */

enum { OPT = 1, MULT = 2, MULT_TOKEN = 4 };

/* The key specs of the broker's commands: none, or one that begins at
 * the first argument, is flagged as Redis flags it, and ends at the last
 * argument (lastkey -1) or at the first (lastkey 0). Shard channels are
 * keys for routing only (not_key); WATCH's keys are read (RO). */
enum { KEYS_NONE, KEYS_SHARD_ALL, KEYS_SHARD_ONE, KEYS_WATCH };
static const struct {
	const char *flags;
	int lastkey;
} key_spec[] = {{NULL, 0}, {"not_key", -1}, {"not_key", 0}, {"RO", -1}};

/* One argument, as COMMAND DOCS describes it. */
struct arg {
	const char *name, *type, *token, *since, *deprecated;
	int flags;
	const struct arg *args; /* of a "oneof" or "block"; ends at name NULL */
};

struct meta {
	const char *name; /* "publish", "client|list" */
	int arity;
	const char *flags; /* Redis' command flags, in its order */
	const char *cats;  /* Redis' ACL categories */
	const char *tips;  /* NULL: none */
	int keys;          /* its key spec: KEYS_*, key_spec[] */
	const char *since, *group, *summary, *complexity;
	const struct arg *args;  /* NULL: none; ends at name NULL */
	const struct meta *subs; /* NULL: none; ends at name NULL */
};

/* The tables below name only the fields an entry has; the rest are 0. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define ARGS(...) ((const struct arg[]){__VA_ARGS__, {0}})
#define SUBS(...) ((const struct meta[]){__VA_ARGS__, {0}})

static const char PS[] = "pubsub noscript loading stale";
static const char CONN[] = "noscript loading stale fast no_auth allow_busy";
static const char ADMIN[] = "admin noscript loading stale";

static const struct meta meta[] = {
	{"ping", -1, "fast", "@fast @connection",
	 "request_policy:all_shards response_policy:all_succeeded", 0,
	 "1.0.0", "connection", "Returns PONG, or the message given",
	 "O(1)", ARGS({"message", "string", .flags = OPT}), NULL},
	{"echo", 2, "loading stale fast", "@fast @connection", NULL, 0,
	 "1.0.0", "connection", "Returns the message given", "O(1)",
	 ARGS({"message", "string"}), NULL},
	{"subscribe", -2, PS, "@pubsub @slow", NULL, 0, "2.0.0", "pubsub",
	 "Listens for messages published to channels",
	 "O(N) for N channels", ARGS({"channel", "string", .flags = MULT}),
	 NULL},
	{"unsubscribe", -1, PS, "@pubsub @slow", NULL, 0, "2.0.0", "pubsub",
	 "Stops listening to channels, or to all of them",
	 "O(N) for N channels",
	 ARGS({"channel", "string", .flags = OPT | MULT}), NULL},
	{"psubscribe", -2, PS, "@pubsub @slow", NULL, 0, "2.0.0", "pubsub",
	 "Listens for messages published to channels that match patterns",
	 "O(N) for N patterns",
	 ARGS({"pattern", "block", .flags = MULT,
	       .args = ARGS({"pattern", "pattern"})}),
	 NULL},
	{"punsubscribe", -1, PS, "@pubsub @slow", NULL, 0, "2.0.0", "pubsub",
	 "Stops listening to patterns, or to all of them",
	 "O(N) for N patterns",
	 ARGS({"pattern", "pattern", .flags = OPT | MULT}), NULL},
	{"publish", 3, "pubsub loading stale fast", "@pubsub @fast", NULL, 0,
	 "2.0.0", "pubsub", "Sends a message to a channel's subscribers",
	 "O(N+M) for N subscribers of the channel and M patterns",
	 ARGS({"channel", "string"}, {"message", "string"}), NULL},
	{"pubsub", -2, "", "@slow", NULL, 0, "2.8.0", "pubsub",
	 "Pub/Sub introspection", "Depends on subcommand.", NULL,
	 SUBS({"pubsub|channels", -2, "pubsub loading stale", "@pubsub @slow",
	       NULL, 0, "2.8.0", "pubsub", "Lists the active channels",
	       "O(N) for N active channels",
	       ARGS({"pattern", "pattern", .flags = OPT}), NULL},
	      {"pubsub|numsub", -2, "pubsub loading stale", "@pubsub @slow",
	       NULL, 0, "2.8.0", "pubsub",
	       "Counts the subscribers of channels", "O(N) for N channels",
	       ARGS({"channel", "string", .flags = OPT | MULT}), NULL},
	      {"pubsub|numpat", 2, "pubsub loading stale", "@pubsub @slow",
	       NULL, 0, "2.8.0", "pubsub",
	       "Counts the patterns subscribed to", "O(1)", NULL, NULL},
	      {"pubsub|shardchannels", -2, "pubsub loading stale",
	       "@pubsub @slow", NULL, 0, "7.0.0", "pubsub",
	       "Lists the active shard channels",
	       "O(N) for N active shard channels",
	       ARGS({"pattern", "pattern", .flags = OPT}), NULL},
	      {"pubsub|shardnumsub", -2, "pubsub loading stale",
	       "@pubsub @slow", NULL, 0, "7.0.0", "pubsub",
	       "Counts the subscribers of shard channels",
	       "O(N) for N shard channels",
	       ARGS({"shardchannel", "string", .flags = OPT | MULT}), NULL})},
	{"quit", -1, CONN, "@fast @connection", NULL, 0, "1.0.0", "connection",
	 "Closes the connection", "O(1)", NULL, NULL},
	{"reset", 1, CONN, "@fast @connection", NULL, 0, "6.2.0", "connection",
	 "Returns the connection to its initial state", "O(1)", NULL, NULL},
	{"hello", -1, CONN, "@fast @connection", NULL, 0, "6.0.0", "connection",
	 "Chooses the protocol, optionally logging in and naming the "
	 "connection",
	 "O(1)",
	 ARGS({"arguments", "block", .flags = OPT,
	       .args = ARGS({"protover", "integer"},
			    {"username_password", "block", "AUTH", .flags = OPT,
			     .args = ARGS({"username", "string"},
					  {"password", "string"})},
			    {"clientname", "string", "SETNAME", .flags = OPT})}),
	 NULL},
	{"client", -2, "", "@slow", NULL, 0, "2.4.0", "connection",
	 "Client connection commands", "Depends on subcommand.", NULL,
	 SUBS({"client|setname", 3, "noscript loading stale", "@slow @connection",
	       NULL, 0, "2.6.9", "connection", "Names the connection", "O(1)",
	       ARGS({"connection-name", "string"}), NULL},
	      {"client|getname", 2, "noscript loading stale", "@slow @connection",
	       NULL, 0, "2.6.9", "connection", "Returns the connection's name",
	       "O(1)", NULL, NULL},
	      {"client|id", 2, "noscript loading stale", "@slow @connection",
	       NULL, 0, "5.0.0", "connection", "Returns the connection's id",
	       "O(1)", NULL, NULL},
	      {"client|info", 2, "noscript loading stale", "@slow @connection",
	       "nondeterministic_output", 0, "6.2.0", "connection",
	       "Describes the connection", "O(1)", NULL, NULL},
	      {"client|list", -2, ADMIN,
	       "@admin @slow @dangerous @connection", "nondeterministic_output",
	       0, "2.4.0", "connection", "Lists the connections",
	       "O(N) for N connections",
	       ARGS({"normal_master_replica_pubsub", "oneof", "TYPE", "5.0.0",
		     .flags = OPT,
		     .args = ARGS({"normal", "pure-token", "NORMAL"},
				  {"master", "pure-token", "MASTER"},
				  {"replica", "pure-token", "REPLICA"},
				  {"pubsub", "pure-token", "PUBSUB"})},
		    {"id", "block", "ID", "6.2.0", .flags = OPT,
		     .args = ARGS({"client-id", "integer", .flags = MULT})}),
	       NULL},
	      {"client|kill", -3, ADMIN, "@admin @slow @dangerous @connection",
	       NULL, 0, "2.4.0", "connection", "Closes connections",
	       "O(N) for N connections",
	       ARGS({"filter", "oneof",
		     .args = ARGS(
			     {"ip:port", "string", .deprecated = "2.8.12"},
			     {"new-format", "oneof", .flags = MULT,
			      .args = ARGS(
				      {"client-id", "integer", "ID", "2.8.12",
				       .flags = OPT},
				      {"normal_master_slave_pubsub", "oneof",
				       "TYPE", "2.8.12", .flags = OPT,
				       .args = ARGS(
					       {"normal", "pure-token", "NORMAL"},
					       {"master", "pure-token", "MASTER",
						"3.2.0"},
					       {"slave", "pure-token", "SLAVE"},
					       {"replica", "pure-token",
						"REPLICA", "5.0.0"},
					       {"pubsub", "pure-token",
						"PUBSUB"})},
				      {"username", "string", "USER",
				       .flags = OPT},
				      {"ip:port", "string", "ADDR", .flags = OPT},
				      {"ip:port", "string", "LADDR", "6.2.0",
				       .flags = OPT},
				      {"yes/no", "string", "SKIPME",
				       .flags = OPT})})}),
	       NULL},
	      {"client|reply", 3, "noscript loading stale", "@slow @connection",
	       NULL, 0, "3.2.0", "connection",
	       "Turns the replies to commands on or off", "O(1)",
	       ARGS({"on_off_skip", "oneof",
		     .args = ARGS({"on", "pure-token", "ON"},
				  {"off", "pure-token", "OFF"},
				  {"skip", "pure-token", "SKIP"})}),
	       NULL})},
	{"command", -1, "loading stale", "@slow @connection",
	 "nondeterministic_output_order", 0, "2.8.13", "server",
	 "Describes the commands", "O(N) for N commands", NULL,
	 SUBS({"command|count", 2, "loading stale", "@slow @connection", NULL, 0,
	       "2.8.13", "server", "Counts the commands", "O(1)", NULL, NULL},
	      {"command|info", -2, "loading stale", "@slow @connection",
	       "nondeterministic_output_order", 0, "2.8.13", "server",
	       "Describes commands", "O(N) for N commands",
	       ARGS({"command-name", "string", .flags = OPT | MULT}), NULL},
	      {"command|docs", -2, "loading stale", "@slow @connection",
	       "nondeterministic_output_order", 0, "7.0.0", "server",
	       "Documents commands", "O(N) for N commands",
	       ARGS({"command-name", "string", .flags = OPT | MULT}), NULL},
	      {"command|list", -2, "loading stale", "@slow @connection",
	       "nondeterministic_output_order", 0, "7.0.0", "server",
	       "Lists the command names", "O(N) for N commands",
	       ARGS({"filterby", "oneof", "FILTERBY", .flags = OPT,
		     .args = ARGS({"module-name", "string", "MODULE"},
				  {"category", "string", "ACLCAT"},
				  {"pattern", "pattern", "PATTERN"})}),
	       NULL})},
	{"config", -2, "", "@slow", NULL, 0, "2.0.0", "server",
	 "Configuration commands", "Depends on subcommand.", NULL,
	 SUBS({"config|get", -3, ADMIN, "@admin @slow @dangerous", NULL, 0,
	       "2.0.0", "server", "Returns configuration parameters",
	       "O(N) for N parameters",
	       ARGS({"parameter", "block", .flags = MULT,
		     .args = ARGS({"parameter", "string"})}),
	       NULL},
	      {"config|help", 2, "loading stale", "@slow", NULL, 0, "5.0.0",
	       "server", "Describes the subcommands of CONFIG", "O(1)", NULL,
	       NULL},
	      {"config|resetstat", 2, ADMIN, "@admin @slow @dangerous", NULL, 0,
	       "2.0.0", "server", "Sets INFO's counters back to zero", "O(1)",
	       NULL, NULL},
	      {"config|rewrite", 2, ADMIN, "@admin @slow @dangerous", NULL, 0,
	       "2.8.0", "server",
	       "Refused: the broker reads no configuration file", "O(1)", NULL,
	       NULL},
	      {"config|set", -4, ADMIN, "@admin @slow @dangerous",
	       "request_policy:all_nodes response_policy:all_succeeded", 0,
	       "2.0.0", "server", "Sets configuration parameters",
	       "O(N) for N parameters",
	       ARGS({"parameter_value", "block", .flags = MULT,
		     .args = ARGS({"parameter", "string"},
				  {"value", "string"})}),
	       NULL})},
	{"info", -1, "loading stale", "@slow @dangerous",
	 "nondeterministic_output request_policy:all_shards "
	 "response_policy:special",
	 0, "1.0.0", "server", "Returns the server's information and counters",
	 "O(1)", ARGS({"section", "string", .flags = OPT | MULT}), NULL},
	{"auth", -2, CONN, "@fast @connection", NULL, 0, "1.0.0", "connection",
	 "Logs the connection in", "O(N) for N passwords of the user",
	 ARGS({"username", "string", .since = "6.0.0", .flags = OPT},
	      {"password", "string"}),
	 NULL},
	{"select", 2, "loading stale fast", "@fast @connection", NULL, 0,
	 "1.0.0", "connection",
	 "Selects a database number (channels are not per database)", "O(1)",
	 ARGS({"index", "integer"}), NULL},
	{"multi", 1, "noscript loading stale fast allow_busy",
	 "@fast @transaction", NULL, 0, "1.2.0", "transactions",
	 "Starts a transaction", "O(1)", NULL, NULL},
	{"exec", 1, "noscript loading stale skip_slowlog", "@slow @transaction",
	 NULL, 0, "1.2.0", "transactions",
	 "Runs the commands queued since MULTI", "Depends on commands in the "
	 "transaction", NULL, NULL},
	{"discard", 1, "noscript loading stale fast allow_busy",
	 "@fast @transaction", NULL, 0, "2.0.0", "transactions",
	 "Drops the commands queued since MULTI", "O(N) for N queued commands",
	 NULL, NULL},
	{"watch", -2, "noscript loading stale fast allow_busy",
	 "@fast @transaction", NULL, KEYS_WATCH, "2.2.0", "transactions",
	 "Accepted for clients that watch keys: the broker has none, so EXEC "
	 "never fails for them",
	 "O(1) for every key", ARGS({"key", "key", .flags = MULT}), NULL},
	{"unwatch", 1, "noscript loading stale fast allow_busy",
	 "@fast @transaction", NULL, 0, "2.2.0", "transactions",
	 "Forgets the watched keys", "O(1)", NULL, NULL},
	{"ssubscribe", -2, PS, "@pubsub @slow", NULL, KEYS_SHARD_ALL, "7.0.0",
	 "pubsub",
	 "Listens for messages published to shard channels",
	 "O(N) for N shard channels",
	 ARGS({"shardchannel", "string", .flags = MULT}), NULL},
	{"sunsubscribe", -1, PS, "@pubsub @slow", NULL, KEYS_SHARD_ALL, "7.0.0",
	 "pubsub",
	 "Stops listening to shard channels, or to all of them",
	 "O(N) for N shard channels",
	 ARGS({"shardchannel", "string", .flags = OPT | MULT}), NULL},
	{"spublish", 3, "pubsub loading stale fast", "@pubsub @fast", NULL,
	 KEYS_SHARD_ONE, "7.0.0", "pubsub", "Sends a message to a shard channel's subscribers",
	 "O(N) for N subscribers of the shard channel",
	 ARGS({"shardchannel", "string"}, {"message", "string"}), NULL},
	{0}};

static int is(const char *arg, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(arg, word, len) == 0;
}

/* The entry for name[0, len) ("client|list" names a subcommand), or NULL. */
static const struct meta *lookup(const char *name, size_t len)
{
	const char *bar = memchr(name, '|', len);
	size_t top = bar ? (size_t)(bar - name) : len;

	for (const struct meta *m = meta; m->name; m++) {
		if (!is(name, top, m->name))
			continue;
		if (!bar)
			return m;
		for (const struct meta *s = m->subs; s && s->name; s++)
			if (is(name, len, s->name))
				return s;
		return NULL;
	}
	return NULL;
}

const char *command_categories(const char *cmd, const char *sub)
{
	const struct meta *m = lookup(cmd, strlen(cmd));

	if (m && sub)
		for (const struct meta *s = m->subs; s && s->name; s++)
			if (!strcmp(strchr(s->name, '|') + 1, sub))
				return s->cats;
	return m ? m->cats : NULL;
}

int command_container(const char *cmd)
{
	const struct meta *m = lookup(cmd, strlen(cmd));

	return m && m->subs;
}

int command_noauth(const char *cmd)
{
	const struct meta *m = lookup(cmd, strlen(cmd));

	return m && strstr(m->flags, "no_auth") != NULL;
}

/* ---- COMMAND ------------------------------------------------------------------- */

static size_t words(const char *s)
{
	size_t n = 0;

	for (; s && *s; n++) {
		s += strspn(s, " ");
		if (!*s)
			break;
		s += strcspn(s, " ");
	}
	return n;
}

/* A set of the words of s, as status replies (flags) or bulk strings. */
static void word_set(ac_conn_t *c, const char *s, int status)
{
	reply_set(c, words(s));
	while (s && *s) {
		size_t n;

		s += strspn(s, " ");
		if (!(n = strcspn(s, " ")))
			break;
		if (status)
			outf(c, "+%.*s\r\n", (int)n, s);
		else
			bulk(c, s, n);
		s += n;
	}
}

static void key_specs(ac_conn_t *c, int keys)
{
	if (keys == KEYS_NONE) {
		reply_set(c, 0);
		return;
	}
	reply_set(c, 1);
	reply_map(c, 3);
	bulk_str(c, "flags");
	word_set(c, key_spec[keys].flags, 1);
	bulk_str(c, "begin_search");
	reply_map(c, 2);
	bulk_str(c, "type");
	bulk_str(c, "index");
	bulk_str(c, "spec");
	reply_map(c, 1);
	bulk_str(c, "index");
	out(c, ":1\r\n", 4);
	bulk_str(c, "find_keys");
	reply_map(c, 2);
	bulk_str(c, "type");
	bulk_str(c, "range");
	bulk_str(c, "spec");
	reply_map(c, 3);
	bulk_str(c, "lastkey");
	outf(c, ":%d\r\n", key_spec[keys].lastkey);
	bulk_str(c, "keystep");
	out(c, ":1\r\n", 4);
	bulk_str(c, "limit");
	out(c, ":0\r\n", 4);
}

static size_t count_subs(const struct meta *m)
{
	size_t n = 0;

	for (const struct meta *s = m->subs; s && s->name; s++)
		n++;
	return n;
}

/* One COMMAND INFO entry. */
static void info_entry(ac_conn_t *c, const struct meta *m)
{
	out(c, "*10\r\n", 5);
	bulk_str(c, m->name);
	outf(c, ":%d\r\n", m->arity);
	word_set(c, m->flags, 1);
	/* first key, last key, step: the key spec's range */
	if (m->keys == KEYS_NONE)
		out(c, ":0\r\n:0\r\n:0\r\n", 12);
	else
		outf(c, ":1\r\n:%d\r\n:1\r\n",
		     key_spec[m->keys].lastkey < 0 ? -1 : 1);
	word_set(c, m->cats, 1);
	word_set(c, m->tips, 0);
	key_specs(c, m->keys);
	if (!m->subs) {
		reply_set(c, 0);
		return;
	}
	outf(c, "*%zu\r\n", count_subs(m));
	for (const struct meta *s = m->subs; s->name; s++)
		info_entry(c, s);
}

static void args_reply(ac_conn_t *c, const struct arg *a)
{
	size_t n = 0;

	while (a[n].name)
		n++;
	outf(c, "*%zu\r\n", n);
	for (; a->name; a++) {
		/* A key argument names its key spec: the command's only. */
		int key = !strcmp(a->type, "key");

		reply_map(c, 2 + key + !!a->token + !!a->since +
				     !!a->deprecated + !!a->flags + !!a->args);
		bulk_str(c, "name");
		bulk_str(c, a->name);
		bulk_str(c, "type");
		bulk_str(c, a->type);
		if (key) {
			bulk_str(c, "key_spec_index");
			out(c, ":0\r\n", 4);
		}
		if (a->token) {
			bulk_str(c, "token");
			bulk_str(c, a->token);
		}
		if (a->since) {
			bulk_str(c, "since");
			bulk_str(c, a->since);
		}
		if (a->deprecated) {
			bulk_str(c, "deprecated_since");
			bulk_str(c, a->deprecated);
		}
		if (a->flags) {
			bulk_str(c, "flags");
			word_set(c,
				 a->flags == OPT		? "optional"
				 : a->flags == MULT		? "multiple"
				 : a->flags == (OPT | MULT) ? "optional multiple"
							    : "optional multiple "
							      "multiple_token",
				 1);
		}
		if (a->args) {
			bulk_str(c, "arguments");
			args_reply(c, a->args);
		}
	}
}

static void docs_entry(ac_conn_t *c, const struct meta *m)
{
	reply_map(c, 4 + !!m->args + !!m->subs);
	bulk_str(c, "summary");
	bulk_str(c, m->summary);
	bulk_str(c, "since");
	bulk_str(c, m->since);
	bulk_str(c, "group");
	bulk_str(c, m->group);
	bulk_str(c, "complexity");
	bulk_str(c, m->complexity);
	if (m->args) {
		bulk_str(c, "arguments");
		args_reply(c, m->args);
	}
	if (m->subs) {
		bulk_str(c, "subcommands");
		reply_map(c, count_subs(m));
		for (const struct meta *s = m->subs; s->name; s++) {
			bulk_str(c, s->name);
			docs_entry(c, s);
		}
	}
}

/* A command of the table that has no description here: enough for
 * redis-cli, which needs a summary. */
static const struct meta *described(const char *name, int arity,
				    struct meta *tmp)
{
	const struct meta *m = lookup(name, strlen(name));

	if (m)
		return m;
	*tmp = (struct meta){name, arity, "", "", NULL, 0, "", "generic",
			     "", "", NULL, NULL};
	return tmp;
}

/* name[0, len) if the broker has it: a command of the table, or a
 * subcommand ("client|list") of one; else NULL. */
static const struct meta *find(const char *name, size_t len,
			       struct meta *tmp)
{
	const char *top;
	int arity;

	for (size_t k = 0; (top = command_at(k, &arity)); k++) {
		size_t n = strlen(top);

		if (len < n || strncasecmp(name, top, n) ||
		    (len > n && name[n] != '|'))
			continue;
		if (len == n)
			return described(top, arity, tmp);
		return lookup(name, len);
	}
	return NULL;
}

static size_t ntable(void)
{
	size_t n = 0;
	int arity;

	while (command_at(n, &arity))
		n++;
	return n;
}

/* COMMAND LIST's filters: ACLCAT and PATTERN (no modules: MODULE lists
 * nothing). */
static int listed(const struct meta *m, int filter, const char *arg,
		  size_t len)
{
	if (filter == 0)
		return 1;
	if (filter == 1) { /* ACLCAT */
		const char *p = m->cats;

		while (p && (p = strchr(p, '@'))) {
			p++;
			if (strcspn(p, " ") == len && !strncasecmp(p, arg, len))
				return 1;
		}
		return 0;
	}
	if (filter == 2) /* PATTERN */
		return resp_glob(arg, len, m->name, strlen(m->name));
	return 0;
}

static void command_list(ac_conn_t *c, size_t argc, const char **argv,
			 const size_t *argl)
{
	int filter = 0, arity;
	const char *arg = NULL, *name;
	size_t len = 0, n = 0, total = 0;
	struct meta tmp;

	if (argc == 5 && is(argv[2], argl[2], "FILTERBY")) {
		filter = is(argv[3], argl[3], "ACLCAT")	   ? 1
			 : is(argv[3], argl[3], "PATTERN") ? 2
			 : is(argv[3], argl[3], "MODULE")  ? 3
							   : -1;
		arg = argv[4];
		len = argl[4];
	}
	if (filter < 0 || (argc != 2 && argc != 5) ||
	    (argc == 5 && !filter)) {
		outs(c, "-ERR syntax error\r\n");
		return;
	}
	/* Counted first: the reply's length comes before its names. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass)
			outf(c, "*%zu\r\n", total);
		for (size_t i = 0; (name = command_at(i, &arity)); i++) {
			const struct meta *m = described(name, arity, &tmp);

			n = listed(m, filter, arg, len);
			if (pass && n)
				bulk_str(c, m->name);
			total += pass ? 0 : n;
			for (const struct meta *s = m->subs; s && s->name; s++) {
				n = listed(s, filter, arg, len);
				if (pass && n)
					bulk_str(c, s->name);
				total += pass ? 0 : n;
			}
		}
	}
}

static const char *const command_help[] = {
	"COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"(no subcommand)",
	"    Return details about all the broker's commands.",
	"COUNT",
	"    Return the total number of commands in this broker.",
	"LIST [FILTERBY (ACLCAT <cat>|PATTERN <pattern>)]",
	"    Return the names of the commands, optionally filtered.",
	"INFO [<command-name> ...]",
	"    Return details about the commands named, or all of them.",
	"DOCS [<command-name> ...]",
	"    Return documentation about the commands named, or all of them.",
	"HELP",
	"    Print this help.",
	NULL};

void cmd_command(ac_conn_t *c, struct client *cl, size_t argc,
		 const char **argv, const size_t *argl)
{
	const char *name;
	struct meta tmp;
	int arity;

	(void)cl;
	if (argc == 1 || (argc == 2 && is(argv[1], argl[1], "INFO"))) {
		outf(c, "*%zu\r\n", ntable());
		for (size_t i = 0; (name = command_at(i, &arity)); i++)
			info_entry(c, described(name, arity, &tmp));
	} else if (is(argv[1], argl[1], "COUNT")) {
		if (argc != 2) {
			outs(c, "-ERR wrong number of arguments for "
				"'command|count' command\r\n");
			return;
		}
		outf(c, ":%zu\r\n", ntable());
	} else if (is(argv[1], argl[1], "INFO")) {
		outf(c, "*%zu\r\n", argc - 2);
		for (size_t i = 2; i < argc; i++) {
			const struct meta *m = find(argv[i], argl[i], &tmp);

			if (m)
				info_entry(c, m);
			else
				reply_null(c);
		}
	} else if (is(argv[1], argl[1], "DOCS")) {
		size_t n = 0;

		if (argc == 2) {
			reply_map(c, ntable());
			for (size_t i = 0; (name = command_at(i, &arity)); i++) {
				bulk_str(c, name);
				docs_entry(c, described(name, arity, &tmp));
			}
			return;
		}
		/* The names found, counted first. */
		for (size_t i = 2; i < argc; i++)
			n += find(argv[i], argl[i], &tmp) != NULL;
		reply_map(c, n);
		for (size_t i = 2; i < argc; i++) {
			const struct meta *m = find(argv[i], argl[i], &tmp);

			if (m) {
				bulk_str(c, m->name);
				docs_entry(c, m);
			}
		}
	} else if (is(argv[1], argl[1], "LIST")) {
		command_list(c, argc, argv, argl);
	} else if (is(argv[1], argl[1], "HELP") && argc == 2) {
		size_t n = 0;

		while (command_help[n])
			n++;
		outf(c, "*%zu\r\n", n);
		for (size_t i = 0; i < n; i++)
			outf(c, "+%s\r\n", command_help[i]);
	} else {
		outf(c, "-ERR unknown subcommand '%.*s'. Try COMMAND HELP.\r\n",
		     (int)(argl[1] > 128 ? 128 : argl[1]), argv[1]);
	}
}

/* ---- INFO ---------------------------------------------------------------------- */

struct text {
	char *p;
	size_t len, cap;
};

static void add(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL, t->cap - t->len, fmt,
			      ap);
		va_end(ap);
		if ((size_t)n < t->cap - t->len)
			break;
		t->cap = (t->cap + (size_t)n + 1) * 2;
		if (!(t->p = realloc(t->p, t->cap)))
			abort();
	}
	t->len += (size_t)n;
}

/* Redis' bytesToHuman: 1023B, 1.50K, 2.00M, ... */
static void human(char *buf, size_t n, unsigned long long b)
{
	static const char units[] = "KMGTPE";
	double d = (double)b;
	int u = -1;

	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, n, "%lluB", b);
	else
		snprintf(buf, n, "%.2f%c", d, units[u]);
}

enum {
	SERVER, CLIENTS, MEMORY, PERSISTENCE, STATS, REPLICATION, CPU, MODULES,
	COMMANDSTATS, ERRORSTATS, LATENCYSTATS, CLUSTER, KEYSPACE, BRIDGE,
	NSECTIONS
};

static const char *const section_names[NSECTIONS] = {
	"server", "clients", "memory", "persistence", "stats", "replication",
	"cpu", "module_list", "commandstats", "errorstats", "latencystats",
	"cluster", "keyspace", "bridge"};

/* Redis' default sections, and the broker's own Bridge with --cluster.
 * Redis's Cluster section stays as it is (cluster_enabled:0): the
 * broker is no Redis Cluster node, and clients that read the field
 * (to choose their cluster mode) must go on talking to it as to one
 * server. */
static void defaults(int *want)
{
	for (int s = SERVER; s <= KEYSPACE; s++)
		want[s] = s != COMMANDSTATS && s != LATENCYSTATS;
	want[BRIDGE] |= B.br != NULL;
}

/* CONFIG RESETSTAT's copies of the counters (stats_reset, below) are
 * taken, and read by INFO, under this lock. */
static pthread_mutex_t reset_lock = PTHREAD_MUTEX_INITIALIZER;
static ac_bridge_stats_t br_at_reset; /* zero until a reset */

/* The Bridge section: the bridge's figures (ac_bridge_stats), its
 * counters less what they were at the last CONFIG RESETSTAT; without
 * --cluster, a bridge_enabled:0 line alone. */
static void bridge_section(struct text *t)
{
	static const char *const modes[] = {"unknown", "single", "cluster"};
	ac_bridge_stats_t b;

	if (!B.br || ac_bridge_stats(B.br, &b)) {
		add(t, "# Bridge\r\nbridge_enabled:0\r\n");
		return;
	}
	pthread_mutex_lock(&reset_lock);
	b.published -= br_at_reset.published;
	b.received -= br_at_reset.received;
	b.own_skipped -= br_at_reset.own_skipped;
	b.dropped_down -= br_at_reset.dropped_down;
	b.dropped_full -= br_at_reset.dropped_full;
	b.connects -= br_at_reset.connects;
	b.disconnects -= br_at_reset.disconnects;
	b.redirects -= br_at_reset.redirects;
	b.refreshes -= br_at_reset.refreshes;
	b.errors -= br_at_reset.errors;
	pthread_mutex_unlock(&reset_lock);
	add(t, "# Bridge\r\nbridge_enabled:1\r\nbridge_mode:%s\r\n"
	       "bridge_nodes:%llu\r\nbridge_links_up:%llu\r\n"
	       "bridge_channels:%llu\r\nbridge_patterns:%llu\r\n"
	       "bridge_published:%llu\r\nbridge_received:%llu\r\n"
	       "bridge_own_skipped:%llu\r\nbridge_dropped_down:%llu\r\n"
	       "bridge_dropped_full:%llu\r\nbridge_connects:%llu\r\n"
	       "bridge_disconnects:%llu\r\nbridge_redirects:%llu\r\n"
	       "bridge_refreshes:%llu\r\nbridge_errors:%llu\r\n"
	       "bridge_refused:%llu\r\n",
	    modes[b.mode < 3 ? b.mode : 0], (unsigned long long)b.nodes,
	    (unsigned long long)b.links_up, (unsigned long long)b.channels,
	    (unsigned long long)b.patterns, (unsigned long long)b.published,
	    (unsigned long long)b.received, (unsigned long long)b.own_skipped,
	    (unsigned long long)b.dropped_down,
	    (unsigned long long)b.dropped_full,
	    (unsigned long long)b.connects, (unsigned long long)b.disconnects,
	    (unsigned long long)b.redirects, (unsigned long long)b.refreshes,
	    (unsigned long long)b.errors,
	    (unsigned long long)__atomic_load_n(&B.bridge_refused,
						__ATOMIC_RELAXED));
}

static void section(struct text *t, int s, const ac_stats_t *st)
{
	char h[32];

	switch (s) {
	case SERVER: {
		struct utsname u;
		uint64_t up = (now_ms() - B.started_ms) / 1000;
		struct timespec ts;

		uname(&u);
		clock_gettime(CLOCK_REALTIME, &ts);
		add(t, "# Server\r\nredis_version:%s\r\nredis_git_sha1:00000000\r\n"
		       "redis_git_dirty:0\r\nredis_mode:standalone\r\n"
		       "os:%s %s %s\r\narch_bits:%d\r\nprocess_id:%d\r\n"
		       "run_id:%s\r\ntcp_port:%d\r\nserver_time_usec:%llu\r\n"
		       "uptime_in_seconds:%llu\r\nuptime_in_days:%llu\r\n"
		       "config_file:\r\nactorconn_version:%d.%d.%d\r\n"
		       "event_loops:%d\r\n",
		    VERSION, u.sysname, u.release, u.machine,
		    (int)sizeof(void *) * 8, (int)getpid(), B.run_id, B.port,
		    (unsigned long long)ts.tv_sec * 1000000 +
			    (unsigned long long)ts.tv_nsec / 1000,
		    (unsigned long long)up, (unsigned long long)up / 86400,
		    AC_VERSION_MAJOR, AC_VERSION_MINOR, AC_VERSION_PATCH,
		    ac_runtime_loops(B.rt));
		break;
	}
	case CLIENTS:
		add(t, "# Clients\r\nconnected_clients:%llu\r\nblocked_clients:0\r\n",
		    (unsigned long long)st->conns_open);
		break;
	case MEMORY:
		human(h, sizeof(h), st->heap_bytes);
		add(t, "# Memory\r\nused_memory:%llu\r\nused_memory_human:%s\r\n",
		    (unsigned long long)st->heap_bytes, h);
		break;
	case PERSISTENCE:
		/* True of a broker that keeps nothing: clients that wait for
		 * loading:0 (ioredis' ready check) go on at once. */
		add(t, "# Persistence\r\nloading:0\r\nasync_loading:0\r\n"
		       "rdb_changes_since_last_save:0\r\n"
		       "rdb_bgsave_in_progress:0\r\naof_enabled:0\r\n");
		break;
	case STATS:
		add(t, "# Stats\r\ntotal_connections_received:%llu\r\n"
		       "total_commands_processed:%llu\r\n"
		       "total_net_input_bytes:%llu\r\n"
		       "total_net_output_bytes:%llu\r\n"
		       "rejected_connections:%llu\r\npubsub_channels:%zu\r\n"
		       "pubsub_patterns:%zu\r\npubsubshard_channels:%zu\r\n"
		       "acl_access_denied_auth:%llu\r\n"
		       "acl_access_denied_cmd:%llu\r\nacl_access_denied_key:%llu\r\n"
		       "acl_access_denied_channel:%llu\r\n"
		       "mailbox_messages:%llu\r\nmailbox_wakeups:%llu\r\n"
		       "mailbox_overflowed:%llu\r\n"
		       "messages_dropped:%llu\r\nslow_consumers_closed:%llu\r\n"
		       "idle_clients_closed:%llu\r\n",
		    (unsigned long long)st->accepted,
		    (unsigned long long)__atomic_load_n(&B.commands,
							__ATOMIC_RELAXED),
		    (unsigned long long)st->bytes_in,
		    (unsigned long long)st->bytes_out,
		    (unsigned long long)st->rejected, channel_count(),
		    pattern_count(), shard_channel_count(),
		    (unsigned long long)__atomic_load_n(&B.denied_auth,
							__ATOMIC_RELAXED),
		    (unsigned long long)__atomic_load_n(&B.denied_cmd,
							__ATOMIC_RELAXED),
		    (unsigned long long)__atomic_load_n(&B.denied_key,
							__ATOMIC_RELAXED),
		    (unsigned long long)__atomic_load_n(&B.denied_channel,
							__ATOMIC_RELAXED),
		    (unsigned long long)st->mailbox_received,
		    (unsigned long long)st->mailbox_wakeups,
		    (unsigned long long)st->mailbox_overflowed,
		    (unsigned long long)st->dropped,
		    (unsigned long long)st->closed[AC_CR_SLOW],
		    (unsigned long long)st->closed[AC_CR_TIMEOUT]);
		break;
	case REPLICATION:
		add(t, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n");
		break;
	case CPU: {
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		add(t, "# CPU\r\nused_cpu_sys:%ld.%06ld\r\nused_cpu_user:%ld.%06ld\r\n",
		    (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec,
		    (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
		break;
	}
	case MODULES:
		add(t, "# Modules\r\n");
		break;
	case COMMANDSTATS:
		add(t, "# Commandstats\r\n");
		break;
	case ERRORSTATS:
		add(t, "# Errorstats\r\n");
		break;
	case LATENCYSTATS:
		add(t, "# Latencystats\r\n");
		break;
	case CLUSTER:
		add(t, "# Cluster\r\ncluster_enabled:0\r\n");
		break;
	case KEYSPACE:
		add(t, "# Keyspace\r\n");
		break;
	case BRIDGE:
		bridge_section(t);
		break;
	}
}

/*
 * CONFIG RESETSTAT: the library's counters cannot be set back, so INFO
 * shows them less what they were at the last reset (a copy taken under
 * a lock that only INFO and RESETSTAT take); the broker's own are set
 * to zero. The gauges (clients, memory, pools, the bridge's links and
 * subscriptions) are not counters and stay, as in Redis.
 */
static ac_stats_t at_reset; /* under reset_lock; zero until a reset */

static void since_reset(ac_stats_t *st)
{
	pthread_mutex_lock(&reset_lock);
	st->accepted -= at_reset.accepted;
	st->rejected -= at_reset.rejected;
	st->bytes_in -= at_reset.bytes_in;
	st->bytes_out -= at_reset.bytes_out;
	st->mailbox_received -= at_reset.mailbox_received;
	st->mailbox_overflowed -= at_reset.mailbox_overflowed;
	st->dropped -= at_reset.dropped;
	st->closed[AC_CR_SLOW] -= at_reset.closed[AC_CR_SLOW];
	st->closed[AC_CR_TIMEOUT] -= at_reset.closed[AC_CR_TIMEOUT];
	pthread_mutex_unlock(&reset_lock);
}

void stats_reset(void)
{
	uint64_t *own[] = {&B.commands,	   &B.denied_auth, &B.denied_cmd,
			   &B.denied_channel, &B.denied_key,
			   &B.bridge_refused};

	pthread_mutex_lock(&reset_lock);
	ac_stats(B.rt, &at_reset, NULL, 0);
	if (B.br)
		ac_bridge_stats(B.br, &br_at_reset);
	pthread_mutex_unlock(&reset_lock);
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		__atomic_store_n(own[i], 0, __ATOMIC_RELAXED);
}

/* INFO [section ...]: Redis' rules: names in any case, "default",
 * "all" (every section), "everything" (the same here: no modules); an
 * unknown name adds nothing, so that INFO nosuch is empty. The broker's
 * Bridge section is in default and all with --cluster, and always when
 * named. */
void cmd_info(ac_conn_t *c, struct client *cl, size_t argc,
	      const char **argv, const size_t *argl)
{
	int want[NSECTIONS] = {0}, n = 0;
	struct text t = {0};
	ac_stats_t st;

	(void)cl;
	if (argc == 1)
		defaults(want);
	for (size_t i = 1; i < argc; i++) {
		if (is(argv[i], argl[i], "default"))
			defaults(want);
		else if (is(argv[i], argl[i], "all") ||
			 is(argv[i], argl[i], "everything"))
			for (int s = 0; s < NSECTIONS; s++)
				want[s] = s != BRIDGE || B.br;
		else if (is(argv[i], argl[i], "modules"))
			want[MODULES] = 1;
		else
			for (int s = 0; s < NSECTIONS; s++)
				if (is(argv[i], argl[i], section_names[s]))
					want[s] = 1;
	}
	ac_stats(B.rt, &st, NULL, 0);
	since_reset(&st);
	add(&t, "%s", "");
	for (int s = 0; s < NSECTIONS; s++) {
		if (!want[s])
			continue;
		if (n++)
			add(&t, "\r\n");
		section(&t, s, &st);
	}
	reply_verbatim(c, t.p, t.len);
	free(t.p);
}
