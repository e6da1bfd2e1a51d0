/*
 * acl.c: actorconn-broker's users. --requirepass gives the default user a
 * password; --aclfile reads users in Redis' ACL syntax, one per line:
 *
 *   user alice on >secret &news.* &alerts +@pubsub +ping
 *
 * The users are read once, before the runtime starts, and never change
 * after: every loop reads them without a lock. Passwords are kept as
 * their SHA-256, as Redis keeps them (so that a file Redis' ACL SAVE
 * wrote, with #<hex> hashes, works here too), and a password given is
 * hashed and compared with each in time that does not depend on where
 * the bytes differ.
 *
 * What is enforced: on/off, passwords (>, <, #, !, nopass, resetpass),
 * channel patterns (&, allchannels, resetchannels) for PUBLISH, SPUBLISH,
 * SUBSCRIBE, SSUBSCRIBE and PSUBSCRIBE, key patterns (~, %R~, %W~,
 * allkeys, resetkeys) for WATCH, the one command of the broker with keys,
 * and the command rules (+cmd, -cmd, +cmd|sub, +@category, allcommands,
 * nocommands) for the broker's commands.
 */
#include "broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- SHA-256 (FIPS 180-4) --------------------------------------------------- */

struct sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char buf[64];
	size_t n;
};

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n)
{
	return x >> n | x << (32 - n);
}

static void sha256_block(struct sha256 *s, const unsigned char *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, h;

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++)
		w[i] = w[i - 16] +
		       (ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ w[i - 15] >> 3) +
		       w[i - 7] +
		       (ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ w[i - 2] >> 10);
	a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
	e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) +
			      ((e & f) ^ (~e & g)) + K[i] + w[i];
		uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) +
			      ((a & b) ^ (a & c) ^ (b & c));
		h = g, g = f, f = e, e = d + t1;
		d = c, c = b, b = a, a = t1 + t2;
	}
	s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
	s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256(const void *data, size_t len, unsigned char out[32])
{
	static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
				       0xa54ff53a, 0x510e527f, 0x9b05688c,
				       0x1f83d9ab, 0x5be0cd19};
	struct sha256 s = {.len = (uint64_t)len * 8};
	const unsigned char *p = data;

	memcpy(s.h, H0, sizeof(H0));
	for (; len >= 64; p += 64, len -= 64)
		sha256_block(&s, p);
	memcpy(s.buf, p, len);
	s.buf[len++] = 0x80;
	if (len > 56) {
		memset(s.buf + len, 0, 64 - len);
		sha256_block(&s, s.buf);
		len = 0;
	}
	memset(s.buf + len, 0, 56 - len);
	for (int i = 0; i < 8; i++)
		s.buf[56 + i] = (unsigned char)(s.len >> (56 - 8 * i));
	sha256_block(&s, s.buf);
	for (int i = 0; i < 8; i++)
		for (int j = 0; j < 4; j++)
			out[4 * i + j] = (unsigned char)(s.h[i] >> (24 - 8 * j));
}

/* ---- users -------------------------------------------------------------------- */

/* One command rule, applied in the order given: +@all, -publish, ... */
struct rule {
	char allow;     /* 1 for +, 0 for - */
	char kind;      /* 'a' all, '@' category, 'c' command, 's' cmd|sub */
	char *name;     /* lower case; "cmd|sub" for 's' */
};

struct user {
	struct user *next;
	char *name;
	int on, nopass;
	unsigned char (*pass)[32]; /* SHA-256 of each password */
	size_t npass;
	int allchans;
	struct sub *chans; /* channel patterns (&...) */
	size_t nchans;
	/* Key patterns (~..., %R~...): only WATCH has keys, and its key spec
	 * asks for no read or write permission (it is "RO" without "access"),
	 * so any pattern lets a key through, as in Redis 7.0, and their
	 * permissions need not be kept. */
	int allkeys;
	struct sub *keys;
	size_t nkeys;
	struct rule *rules;
	size_t nrules;
	int allcmds; /* the rules allow every command: no check needed */
};

static struct user *users;
static struct user *default_user;

static char *dup_str(const char *p, size_t n)
{
	char *s = xmalloc(n + 1);

	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

static struct user *user_new(const char *name, size_t len)
{
	struct user *u = calloc(1, sizeof(*u));

	if (!u)
		abort();
	u->name = dup_str(name, len);
	return u;
}

static void user_free(struct user *u)
{
	free(u->name);
	free(u->pass);
	for (size_t i = 0; i < u->nchans; i++)
		free(u->chans[i].name);
	free(u->chans);
	for (size_t i = 0; i < u->nkeys; i++)
		free(u->keys[i].name);
	free(u->keys);
	for (size_t i = 0; i < u->nrules; i++)
		free(u->rules[i].name);
	free(u->rules);
	free(u);
}

static const char *const categories[] = {
	"keyspace", "read", "write", "set", "sortedset", "list", "hash",
	"string", "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin",
	"fast", "slow", "blocking", "dangerous", "connection", "transaction",
	"scripting", NULL};

static void add_rule(struct user *u, int allow, char kind, const char *name)
{
	struct rule *r;

	if (kind == 'a')
		u->nrules = 0; /* +@all and -@all make the earlier rules moot */
	u->rules = realloc(u->rules, (u->nrules + 1) * sizeof(*u->rules));
	if (!u->rules)
		abort();
	r = &u->rules[u->nrules++];
	r->allow = (char)allow;
	r->kind = kind;
	r->name = name ? dup_str(name, strlen(name)) : NULL;
	for (char *p = r->name; p && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	/* Every command allowed: +@all with nothing taken away after it. */
	u->allcmds = u->nrules > 0 && u->rules[0].kind == 'a' &&
		     u->rules[0].allow;
	for (size_t i = 1; i < u->nrules; i++)
		if (!u->rules[i].allow)
			u->allcmds = 0;
}

static int hex_digest(const char *p, size_t n, unsigned char out[32])
{
	if (n != 64)
		return -1;
	for (size_t i = 0; i < 64; i++) {
		int v = p[i] >= '0' && p[i] <= '9'   ? p[i] - '0'
			: p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 10
						     : -1;
		if (v < 0)
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (unsigned char)(v << 4);
		else
			out[i / 2] |= (unsigned char)v;
	}
	return 0;
}

static int has_space(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n' ||
		    p[i] == 0)
			return 1;
	return 0;
}

/* Empties a list of patterns. */
static void clear_patterns(struct sub *v, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free(v[i].name);
	*n = 0;
}

/* Adds the pattern p[0, n) to a list, once. */
static void add_pattern(struct sub **v, size_t *n, const char *p, size_t len)
{
	for (size_t i = 0; i < *n; i++)
		if ((*v)[i].len == len && !memcmp((*v)[i].name, p, len))
			return;
	*v = realloc(*v, (*n + 1) * sizeof(**v));
	if (!*v)
		abort();
	(*v)[*n].name = dup_str(p, len);
	(*v)[(*n)++].len = len;
}

/* "~pattern", or "%R~pattern", "%W~pattern", "%RW~pattern": the offset
 * of the pattern, or 0 if op is not well formed (Redis' rule: R and W
 * at most once each, in any case, then '~'). */
static size_t key_pattern(const char *op, size_t n)
{
	int r = 0, w = 0;
	size_t i;

	if (op[0] == '~')
		return 1;
	for (i = 1; i < n; i++) {
		if ((op[i] == 'R' || op[i] == 'r') && !r)
			r = 1;
		else if ((op[i] == 'W' || op[i] == 'w') && !w)
			w = 1;
		else if (op[i] == '~')
			return i + 1;
		else
			return 0;
	}
	return i; /* "%R": an empty pattern, as Redis reads it */
}

/* Applies one ACL operation to u; NULL, or why not (Redis' words). */
static const char *apply(struct user *u, const char *op)
{
	size_t n = strlen(op);
	unsigned char d[32];

	if (n == 0)
		return NULL;
	if (!strcasecmp(op, "on")) {
		u->on = 1;
	} else if (!strcasecmp(op, "off")) {
		u->on = 0;
	} else if (!strcasecmp(op, "nopass") || !strcasecmp(op, "resetpass")) {
		u->nopass = !strcasecmp(op, "nopass");
		u->npass = 0;
	} else if (op[0] == '>' || op[0] == '#') {
		size_t i;

		if (op[0] == '>')
			sha256(op + 1, n - 1, d);
		else if (hex_digest(op + 1, n - 1, d))
			return "The password hash must be exactly 64 characters "
			       "and contain only lowercase hexadecimal characters";
		for (i = 0; i < u->npass && memcmp(u->pass[i], d, 32); i++)
			;
		if (i == u->npass) {
			u->pass = realloc(u->pass, (u->npass + 1) * 32);
			if (!u->pass)
				abort();
			memcpy(u->pass[u->npass++], d, 32);
		}
		u->nopass = 0;
	} else if (op[0] == '<' || op[0] == '!') {
		size_t i;

		if (op[0] == '<')
			sha256(op + 1, n - 1, d);
		else if (hex_digest(op + 1, n - 1, d))
			return "The password hash must be exactly 64 characters "
			       "and contain only lowercase hexadecimal characters";
		for (i = 0; i < u->npass && memcmp(u->pass[i], d, 32); i++)
			;
		if (i == u->npass)
			return "The password you are trying to remove from the "
			       "user does not exist";
		memmove(u->pass[i], u->pass[i + 1], (u->npass - i - 1) * 32);
		u->npass--;
	} else if (!strcasecmp(op, "allchannels") || !strcmp(op, "&*")) {
		u->allchans = 1;
		clear_patterns(u->chans, &u->nchans);
	} else if (!strcasecmp(op, "resetchannels")) {
		u->allchans = 0;
		clear_patterns(u->chans, &u->nchans);
	} else if (!strcasecmp(op, "allkeys") || !strcmp(op, "~*")) {
		u->allkeys = 1;
		clear_patterns(u->keys, &u->nkeys);
	} else if (!strcasecmp(op, "resetkeys")) {
		u->allkeys = 0;
		clear_patterns(u->keys, &u->nkeys);
	} else if (op[0] == '~' || op[0] == '%') {
		size_t k;

		if (u->allkeys)
			return "Adding a pattern after the * pattern (or the "
			       "'allkeys' flag) is not valid and does not have "
			       "any effect. Try 'resetkeys' to start with an "
			       "empty list of patterns";
		if (!(k = key_pattern(op, n)) || has_space(op + k, n - k))
			return "Syntax error";
		add_pattern(&u->keys, &u->nkeys, op + k, n - k);
	} else if (op[0] == '&') {
		if (u->allchans)
			return "Adding a pattern after the * pattern (or the "
			       "'allchannels' flag) is not valid and does not "
			       "have any effect. Try 'resetchannels' to start "
			       "with an empty list of channels";
		if (has_space(op + 1, n - 1))
			return "Syntax error";
		add_pattern(&u->chans, &u->nchans, op + 1, n - 1);
	} else if (!strcasecmp(op, "sanitize-payload") ||
		   !strcasecmp(op, "skip-sanitize-payload")) {
		/* No payloads to sanitize: accepted, no effect. */
	} else if (!strcasecmp(op, "allcommands") || !strcasecmp(op, "+@all")) {
		add_rule(u, 1, 'a', NULL);
	} else if (!strcasecmp(op, "nocommands") || !strcasecmp(op, "-@all")) {
		add_rule(u, 0, 'a', NULL);
	} else if ((op[0] == '+' || op[0] == '-') && op[1] == '@') {
		int k;

		for (k = 0; categories[k] && strcasecmp(categories[k], op + 2); k++)
			;
		if (!categories[k])
			return "Unknown command or category name in ACL";
		add_rule(u, op[0] == '+', '@', op + 2);
	} else if ((op[0] == '+' || op[0] == '-') && n > 1) {
		/* A command the broker does not have is accepted, so that a
		 * file written for Redis loads; it allows nothing here. */
		if (has_space(op + 1, n - 1))
			return "Syntax error";
		add_rule(u, op[0] == '+', strchr(op, '|') ? 's' : 'c', op + 1);
	} else if (!strcasecmp(op, "reset")) {
		u->npass = 0;
		u->nopass = 0;
		u->allchans = 0;
		clear_patterns(u->chans, &u->nchans);
		u->allkeys = 0;
		clear_patterns(u->keys, &u->nkeys);
		u->on = 0;
		add_rule(u, 0, 'a', NULL);
	} else if (op[0] == '(' || !strcasecmp(op, "clearselectors")) {
		return "Selectors are not supported by actorconn-broker";
	} else {
		return "Syntax error";
	}
	return NULL;
}

/* Redis' default user: on nopass ~* &* +@all. */
static struct user *new_default_user(void)
{
	struct user *u = user_new("default", 7);

	apply(u, "on");
	apply(u, "nopass");
	apply(u, "allkeys");
	apply(u, "allchannels");
	apply(u, "+@all");
	return u;
}

static struct user *find_user(const char *name, size_t len)
{
	for (struct user *u = users; u; u = u->next)
		if (strlen(u->name) == len && !memcmp(u->name, name, len))
			return u;
	return NULL;
}

/* Splits a line at spaces (and tabs), as Redis splits an ACL line. */
static int split(char *line, char **argv, int max)
{
	char *save;
	int argc = 0;

	for (char *tok = strtok_r(line, " \t\r\n", &save); tok;
	     tok = strtok_r(NULL, " \t\r\n", &save)) {
		if (argc == max)
			return -1;
		argv[argc++] = tok;
	}
	return argc;
}

static int load_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[8192], *argv[512];
	int lineno = 0, errors = 0;

	if (!f) {
		fprintf(stderr, "actorconn-broker: --aclfile %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		int argc;
		struct user *u;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			fprintf(stderr, "actorconn-broker: %s:%d: line too long\n",
				path, lineno);
			errors++;
			break;
		}
		argc = split(line, argv, 512);
		if (argc == 0)
			continue; /* blank; no comments, as in Redis */
		if (argc < 0 || strcmp(argv[0], "user") || argc < 2) {
			fprintf(stderr, "actorconn-broker: %s:%d should start "
					"with user keyword followed by the "
					"username\n", path, lineno);
			errors++;
			continue;
		}
		if (find_user(argv[1], strlen(argv[1]))) {
			fprintf(stderr, "actorconn-broker: %s:%d: duplicate "
					"user '%s'\n", path, lineno, argv[1]);
			errors++;
			continue;
		}
		u = user_new(argv[1], strlen(argv[1]));
		for (int i = 2; i < argc; i++) {
			const char *why = apply(u, argv[i]);

			if (why) {
				fprintf(stderr, "actorconn-broker: %s:%d: error "
						"in applying operation '%s': "
						"%s\n", path, lineno, argv[i],
					why);
				errors++;
			}
		}
		u->next = users;
		users = u;
	}
	fclose(f);
	return errors ? -1 : 0;
}

int acl_init(const char *requirepass, const char *aclfile)
{
	if (requirepass && aclfile) {
		/* Redis takes both and silently drops the password when the
		 * file has no default user; refuse instead. */
		fprintf(stderr, "actorconn-broker: give --requirepass or "
				"--aclfile, not both: put the default user's "
				"password in the file (user default on >...)\n");
		return -1;
	}
	if (aclfile && load_file(aclfile))
		return -1;
	if (!(default_user = find_user("default", 7))) {
		default_user = new_default_user();
		default_user->next = users;
		users = default_user;
	}
	if (requirepass && *requirepass) { /* "": none, as in Redis */
		char *op = xmalloc(strlen(requirepass) + 2);

		sprintf(op, ">%s", requirepass);
		apply(default_user, "resetpass");
		apply(default_user, op);
		memset(op, 0, strlen(op));
		free(op);
	}
	return 0;
}

void acl_free(void)
{
	while (users) {
		struct user *u = users;

		users = u->next;
		user_free(u);
	}
	default_user = NULL;
}

/* ---- checks, from any loop (the users never change) ------------------------- */

const struct user *acl_user(const char *name, size_t len)
{
	return find_user(name, len);
}

const char *acl_user_name(const struct user *u)
{
	return u ? u->name : "default";
}

int acl_auth_required(const struct client *cl)
{
	if (cl && cl->authed)
		return 0;
	return !default_user || !default_user->nopass || !default_user->on;
}

int acl_default_nopass(void)
{
	return default_user && default_user->nopass;
}

/*
 * The time taken depends on the length of pass and on the number of the
 * user's passwords, never on where a password differs: every stored hash
 * is compared whole, and a missing or disabled user still costs a hash.
 */
const struct user *acl_check(const char *name, size_t nlen, const char *pass,
			     size_t plen)
{
	const struct user *u = find_user(name, nlen);
	unsigned char d[32];
	int ok = 0;

	sha256(pass, plen, d);
	if (!u || !u->on) {
		__atomic_fetch_add(&B.denied_auth, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	if (u->nopass)
		return u;
	for (size_t i = 0; i < u->npass; i++) {
		unsigned char diff = 0;

		for (int k = 0; k < 32; k++)
			diff |= (unsigned char)(u->pass[i][k] ^ d[k]);
		ok |= diff == 0;
	}
	if (!ok) {
		__atomic_fetch_add(&B.denied_auth, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	return u;
}

static const struct user *user_of(const struct client *cl)
{
	return cl && cl->user ? cl->user : default_user;
}

int acl_all_allowed(const struct client *cl)
{
	const struct user *u = user_of(cl);

	return u->allcmds && u->allchans && u->allkeys;
}

int acl_command_allowed(const struct client *cl, const char *cmd,
			const char *sub)
{
	const struct user *u = user_of(cl);
	const char *cats;
	char full[80];
	int allowed = 0;

	if (u->allcmds)
		return 1;
	cats = command_categories(cmd, sub);
	snprintf(full, sizeof(full), "%s|%s", cmd, sub ? sub : "");
	for (size_t i = 0; i < u->nrules; i++) {
		const struct rule *r = &u->rules[i];
		int match = 0;

		switch (r->kind) {
		case 'a':
			match = 1;
			break;
		case '@': {
			/* cats: "@pubsub @fast": the name between '@' and a
			 * space or the end. */
			size_t n = strlen(r->name);
			for (const char *p = cats; p && (p = strchr(p, '@'));
			     p++)
				if (!strncmp(p + 1, r->name, n) &&
				    (p[n + 1] == ' ' || !p[n + 1]))
					match = 1;
			break;
		}
		case 'c':
			match = !strcmp(r->name, cmd);
			break;
		case 's':
			match = sub && !strcmp(r->name, full);
			break;
		}
		if (match)
			allowed = r->allow;
	}
	return allowed;
}

/* A channel (literal) or a pattern (PSUBSCRIBE: allowed only if the same
 * pattern is, as in Redis 7). */
int acl_channel_allowed(const struct client *cl, const char *ch, size_t len,
			int pattern)
{
	const struct user *u = user_of(cl);

	if (u->allchans)
		return 1;
	for (size_t i = 0; i < u->nchans; i++) {
		const struct sub *p = &u->chans[i];

		if (pattern ? p->len == len && !memcmp(p->name, ch, len)
			    : resp_glob(p->name, p->len, ch, len))
			return 1;
	}
	return 0;
}

int acl_key_allowed(const struct client *cl, const char *key, size_t len)
{
	const struct user *u = user_of(cl);

	if (u->allkeys)
		return 1;
	for (size_t i = 0; i < u->nkeys; i++)
		if (resp_glob(u->keys[i].name, u->keys[i].len, key, len))
			return 1;
	return 0;
}
