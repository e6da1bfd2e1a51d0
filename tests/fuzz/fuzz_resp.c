/*
 * fuzz_resp.c: libFuzzer harness for the broker's RESP2 request parser,
 * resp_parse (examples/resp.c).
 *
 * Input: bytes 0-2 pick the limits (small ones often, so that every limit
 * is met), byte 3 a cut point; the rest is the stream. Each call gets an
 * exactly sized heap copy, so ASan catches a read past the input. Checked:
 *
 *   - the result is RESP_OK, RESP_MORE or RESP_ERR; an error is one of
 *     the Redis protocol messages;
 *   - a command lies inside the bytes it consumed (1 <= consumed <= len);
 *     an array has at most max_args elements, none longer than max_bulk;
 *     an argument points into the input, or, for an inline argument with
 *     quotes, into the text room, no longer than the line; parsing with
 *     cmd == NULL gives the same answer;
 *   - "more" gives need == 0 or need > len;
 *   - the answer depends only on the bytes seen, so a prefix of the input
 *     never contradicts the whole: before a command's last byte it is
 *     "more", from there on the same command; an error stays the same
 *     error as bytes are added; a prefix shorter than a "need" it gave is
 *     still "more" with all the bytes;
 *   - the note (resume) that a prefix left gives the whole the same
 *     answer as starting over;
 *   - the stream cut into two reads at the cut point, parsed as the
 *     broker does (keep the tail, honour need), gives the same commands,
 *     the same error and the same undecoded tail as the whole stream at
 *     once (fuzz.h's split-reads driver).
 */
#include "../../examples/resp.h"
#include "fuzz.h"

#define MAX_ARGS 64

static const char *const messages[] = {
	"Protocol error: too big inline request",
	"Protocol error: unbalanced quotes in request",
	"Protocol error: invalid multibulk length",
	"Protocol error: too big mbulk count string",
	"Protocol error: too big bulk count string",
	"Protocol error: invalid bulk length",
	"Protocol error: unauthenticated multibulk length",
	"Protocol error: unauthenticated bulk length",
};

struct parsed {
	int r;
	size_t consumed, need, argc, resume;
	const char *err; /* interned: a message above or in got[] */
	unsigned char *bytes; /* the arguments, back to back */
	size_t len[MAX_ARGS];
};

/* "expected '$', got 'c'" for each byte c, made once. */
static char got[256][48];

static const char *intern(const char *err)
{
	static const char prefix[] = "Protocol error: expected '$', got '";
	size_t pl = sizeof(prefix) - 1;

	for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++)
		if (strcmp(err, messages[i]) == 0)
			return messages[i];
	FUZZ_CHECK(strncmp(err, prefix, pl) == 0 && err[pl] && err[pl + 1] == '\'' &&
		   !err[pl + 2]);
	/* Redis turns CR and LF into spaces; a NUL cannot be there. */
	FUZZ_CHECK(err[pl] != '\r' && err[pl] != '\n');
	snprintf(got[(unsigned char)err[pl]], sizeof(got[0]), "%s", err);
	return got[(unsigned char)err[pl]];
}

/* One resp_parse call on an exactly sized copy of p[0, n), checked. */
static void parse(const char *p, size_t n, const struct resp_limits *lim,
		  struct parsed *out)
{
	char *copy = fuzz_copy(p, n), *text = malloc(n + 1);
	const char *argv[MAX_ARGS];
	size_t argl[MAX_ARGS], total = 0;
	struct resp_cmd cmd = {0, argv, argl, MAX_ARGS, text, n};
	struct resp_state st = {0}, st2 = {0};
	int r2;

	FUZZ_CHECK(text != NULL);
	memset(out, 0, sizeof(*out));
	out->r = resp_parse(copy, n, lim, &cmd, &st);
	FUZZ_CHECK(out->r == RESP_OK || out->r == RESP_MORE ||
		   out->r == RESP_ERR);
	switch (out->r) {
	case RESP_OK:
		out->consumed = st.consumed;
		FUZZ_CHECK(st.consumed >= 1 && st.consumed <= n);
		out->argc = cmd.argc;
		if (copy[0] == '*')
			FUZZ_CHECK(cmd.argc <= lim->max_args);
		for (size_t i = 0; i < cmd.argc && i < MAX_ARGS; i++) {
			bool in_text = argv[i] >= text && argv[i] <= text + n;

			FUZZ_CHECK(in_text || (argv[i] >= copy &&
					       argv[i] <= copy + st.consumed));
			if (in_text)
				FUZZ_CHECK(copy[0] != '*' &&
					   argl[i] <= (size_t)(text + n - argv[i]));
			else
				FUZZ_CHECK(argl[i] <= (size_t)(copy + st.consumed -
							       argv[i]));
			/* Inline arguments are bounded by the line, bulk
			 * ones by max_bulk. */
			FUZZ_CHECK(copy[0] == '*' ? argl[i] <= lim->max_bulk
						  : argl[i] <= lim->max_inline);
			out->len[i] = argl[i];
			out->bytes = realloc(out->bytes, total + argl[i] + 1);
			FUZZ_CHECK(out->bytes != NULL);
			memcpy(out->bytes + total, argv[i], argl[i]);
			total += argl[i];
		}
		break;
	case RESP_MORE:
		out->need = st.need;
		FUZZ_CHECK(st.need == 0 || st.need > n);
		break;
	default:
		FUZZ_CHECK(st.err != NULL);
		out->err = intern(st.err);
	}
	/* Validating only (cmd == NULL) agrees, and leaves a note. */
	r2 = resp_parse(copy, n, lim, NULL, &st2);
	FUZZ_CHECK(r2 == out->r);
	if (r2 == RESP_OK)
		FUZZ_CHECK(st2.consumed == out->consumed);
	if (r2 == RESP_MORE)
		FUZZ_CHECK(st2.need == out->need);
	if (r2 == RESP_ERR)
		FUZZ_CHECK(intern(st2.err) == out->err);
	out->resume = r2 == RESP_MORE ? st2.resume : 0;
	free(copy);
	free(text);
}

static void parsed_free(struct parsed *c)
{
	free(c->bytes);
}

static bool same_command(const struct parsed *a, const struct parsed *b)
{
	size_t total = 0;

	if (a->consumed != b->consumed || a->argc != b->argc)
		return false;
	for (size_t i = 0; i < a->argc && i < MAX_ARGS; i++) {
		if (a->len[i] != b->len[i])
			return false;
		total += a->len[i];
	}
	return total == 0 || memcmp(a->bytes, b->bytes, total) == 0;
}

/* A note a prefix left, given to the whole: the same answer as
 * without it. */
static void check_resume(const char *p, size_t n,
			 const struct resp_limits *lim,
			 const struct parsed *whole, size_t note)
{
	char *copy = fuzz_copy(p, n);
	struct resp_state st = {.resume = note};
	int r;

	r = resp_parse(copy, n, lim, NULL, &st);
	FUZZ_CHECK(r == whole->r);
	if (r == RESP_OK)
		FUZZ_CHECK(st.consumed == whole->consumed);
	if (r == RESP_MORE)
		FUZZ_CHECK(st.need == whole->need);
	if (r == RESP_ERR)
		FUZZ_CHECK(intern(st.err) == whole->err);
	free(copy);
}

/* A prefix of length k must not contradict the answer for all n bytes;
 * the note it left gives the whole the same answer. */
static void check_prefix(const char *p, size_t n, size_t k,
			 const struct resp_limits *lim,
			 const struct parsed *whole)
{
	struct parsed pre;

	parse(p, k, lim, &pre);
	switch (whole->r) {
	case RESP_OK:
		if (k < whole->consumed)
			FUZZ_CHECK(pre.r == RESP_MORE);
		else
			FUZZ_CHECK(pre.r == RESP_OK && same_command(&pre, whole));
		break;
	case RESP_MORE:
		FUZZ_CHECK(pre.r == RESP_MORE);
		break;
	default:
		FUZZ_CHECK(pre.r != RESP_OK);
		if (pre.r == RESP_ERR)
			FUZZ_CHECK(pre.err == whole->err);
	}
	/* need: nothing shorter than it can get further. */
	if (pre.r == RESP_MORE && pre.need > 0 && n < pre.need)
		FUZZ_CHECK(whole->r == RESP_MORE);
	if (pre.r == RESP_MORE)
		check_resume(p, n, lim, whole, pre.resume);
	parsed_free(&pre);
}

/* The driver's step: one checked parse; a command is an item, written
 * as its argc, then each argument's length and bytes (as many as there
 * was room for). */
static int parse_step(const unsigned char *buf, size_t have, void *arg,
		      struct fuzz_run *run, size_t *consumed, size_t *need)
{
	struct parsed c;
	size_t at = 0;

	parse((const char *)buf, have, arg, &c);
	if (c.r == RESP_ERR) {
		run->err = c.err;
		return -1;
	}
	if (c.r == RESP_MORE) {
		*need = c.need;
		return 0;
	}
	fuzz_put(run, &c.argc, sizeof(c.argc));
	for (size_t i = 0; i < c.argc && i < MAX_ARGS; i++) {
		fuzz_put(run, &c.len[i], sizeof(c.len[i]));
		fuzz_put(run, c.bytes + at, c.len[i]);
		at += c.len[i];
	}
	fuzz_end_item(run);
	*consumed = c.consumed;
	parsed_free(&c);
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct resp_limits lim = {0};
	struct parsed whole;
	struct fuzz_run a, b;
	const char *p;
	size_t n, cut;

	if (size < 4)
		return 0;
	/* 0: the broker's own limits; else small ones. */
	lim.max_inline = data[0] ? data[0] : (size_t)64 << 10;
	lim.max_args = data[1] ? 1 + data[1] % MAX_ARGS : 0x7fffffff;
	lim.max_bulk = data[2] != 255 ? data[2] : (size_t)512 << 20;
	/* Before AUTH the same bounds give other messages. */
	lim.unauth = data[1] >= 128 && data[1] < 255;
	p = (const char *)data + 4;
	n = size - 4;
	cut = fuzz_cut(data[3], n);

	parse(p, n, &lim, &whole);
	check_prefix(p, n, cut, &lim, &whole);
	if (whole.r == RESP_OK && whole.consumed > 0)
		check_prefix(p, n, whole.consumed - 1, &lim, &whole);
	parsed_free(&whole);

	fuzz_split(data + 4, n, cut, parse_step, &lim, &a, &b);
	fuzz_same(&a, &b);
	fuzz_run_free(&a);
	fuzz_run_free(&b);
	return 0;
}
