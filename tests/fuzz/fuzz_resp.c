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
 *   - a command lies inside the bytes it consumed (1 <= consumed <= len),
 *     has at most max_args arguments, none of them longer than the limit
 *     that applies; parsing with cmd == NULL gives the same answer;
 *   - "more" gives need == 0 or need > len;
 *   - the answer depends only on the bytes seen, so a prefix of the input
 *     never contradicts the whole: before a command's last byte it is
 *     "more", from there on the same command; an error stays the same
 *     error as bytes are added; a prefix shorter than a "need" it gave is
 *     still "more" with all the bytes;
 *   - the stream cut into two reads at the cut point, parsed as the
 *     broker does (keep the tail, honour need), gives the same commands
 *     and the same error as the whole stream at once.
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
	"Protocol error: expected '$'",
	"Protocol error: invalid bulk length",
};

struct parsed {
	int r;
	size_t consumed, need, argc;
	const char *err;
	size_t off[MAX_ARGS], len[MAX_ARGS]; /* argument i: buf[off, off+len) */
};

static bool known_message(const char *err)
{
	for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++)
		if (err == messages[i] || strcmp(err, messages[i]) == 0)
			return true;
	return false;
}

/* One resp_parse call on an exactly sized copy of p[0, n), checked. */
static void parse(const char *p, size_t n, const struct resp_limits *lim,
		  struct parsed *out)
{
	char *copy = fuzz_copy(p, n);
	const char *argv[MAX_ARGS];
	size_t argl[MAX_ARGS];
	struct resp_cmd cmd = {0, argv, argl};
	size_t consumed2 = 0, need2 = 0;
	const char *err2 = NULL;
	int r2;

	memset(out, 0, sizeof(*out));
	out->r = resp_parse(copy, n, lim, &cmd, &out->consumed, &out->need,
			    &out->err);
	FUZZ_CHECK(out->r == RESP_OK || out->r == RESP_MORE ||
		   out->r == RESP_ERR);
	switch (out->r) {
	case RESP_OK:
		FUZZ_CHECK(out->consumed >= 1 && out->consumed <= n);
		FUZZ_CHECK(cmd.argc <= lim->max_args);
		out->argc = cmd.argc;
		for (size_t i = 0; i < cmd.argc; i++) {
			FUZZ_CHECK(argv[i] >= copy);
			out->off[i] = (size_t)(argv[i] - copy);
			out->len[i] = argl[i];
			FUZZ_CHECK(out->off[i] <= out->consumed &&
				   argl[i] <= out->consumed - out->off[i]);
			/* Inline arguments are bounded by the line, bulk
			 * ones by max_bulk. */
			FUZZ_CHECK(copy[0] == '*' ? argl[i] <= lim->max_bulk
						  : argl[i] <= lim->max_inline);
		}
		break;
	case RESP_MORE:
		FUZZ_CHECK(out->need == 0 || out->need > n);
		break;
	default:
		FUZZ_CHECK(out->err != NULL && known_message(out->err));
	}
	/* Validating only (cmd == NULL) agrees. */
	r2 = resp_parse(copy, n, lim, NULL, &consumed2, &need2, &err2);
	FUZZ_CHECK(r2 == out->r);
	if (r2 == RESP_OK)
		FUZZ_CHECK(consumed2 == out->consumed);
	if (r2 == RESP_MORE)
		FUZZ_CHECK(need2 == out->need);
	if (r2 == RESP_ERR)
		FUZZ_CHECK(strcmp(err2, out->err) == 0);
	free(copy);
}

static bool same_command(const struct parsed *a, const struct parsed *b)
{
	if (a->consumed != b->consumed || a->argc != b->argc)
		return false;
	for (size_t i = 0; i < a->argc; i++)
		if (a->off[i] != b->off[i] || a->len[i] != b->len[i])
			return false;
	return true;
}

/* A prefix of length k must not contradict the answer for all n bytes. */
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
			FUZZ_CHECK(strcmp(pre.err, whole->err) == 0);
	}
	/* need: nothing shorter than it can get further. */
	if (pre.r == RESP_MORE && pre.need > 0 && n < pre.need)
		FUZZ_CHECK(whole->r == RESP_MORE);
}

/* The commands of a stream, as a connection sees them. */
struct run {
	unsigned char *bytes; /* each command: argc, then (len, bytes)... */
	size_t nbytes;
	size_t ncmds;
	const char *err;
};

static void put(struct run *run, const void *p, size_t n)
{
	run->bytes = realloc(run->bytes, run->nbytes + n + 1);
	FUZZ_CHECK(run->bytes != NULL);
	if (n)
		memcpy(run->bytes + run->nbytes, p, n);
	run->nbytes += n;
}

static void stream(const char *data, const size_t *reads, int nreads,
		   const struct resp_limits *lim, struct run *run)
{
	char *buf = NULL;
	size_t have = 0, need = 0, at = 0;

	memset(run, 0, sizeof(*run));
	for (int r = 0; r < nreads && !run->err; r++) {
		buf = realloc(buf, have + reads[r] + 1);
		FUZZ_CHECK(buf != NULL);
		memcpy(buf + have, data + at, reads[r]);
		have += reads[r];
		at += reads[r];
		if (reads[r] == 0 || (need && have < need))
			continue;
		need = 0;
		while (have > 0) {
			struct parsed c;

			parse(buf, have, lim, &c);
			if (c.r == RESP_ERR) {
				run->err = c.err;
				break;
			}
			if (c.r == RESP_MORE) {
				need = c.need;
				break;
			}
			put(run, &c.argc, sizeof(c.argc));
			for (size_t i = 0; i < c.argc; i++) {
				put(run, &c.len[i], sizeof(c.len[i]));
				put(run, buf + c.off[i], c.len[i]);
			}
			run->ncmds++;
			memmove(buf, buf + c.consumed, have - c.consumed);
			have -= c.consumed;
		}
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct resp_limits lim;
	struct parsed whole;
	struct run a, b;
	const char *p;
	size_t n, reads[2];

	if (size < 4)
		return 0;
	/* 0: the broker's own limits; else small ones. */
	lim.max_inline = data[0] ? data[0] : (size_t)64 << 10;
	lim.max_args = data[1] ? 1 + data[1] % MAX_ARGS : MAX_ARGS;
	lim.max_bulk = data[2] != 255 ? data[2] : (size_t)512 << 20;
	p = (const char *)data + 4;
	n = size - 4;
	reads[0] = n ? (size_t)data[3] * n / 255 : 0;
	reads[1] = n - reads[0];

	parse(p, n, &lim, &whole);
	check_prefix(p, n, reads[0], &lim, &whole);
	if (whole.r == RESP_OK && whole.consumed > 0)
		check_prefix(p, n, whole.consumed - 1, &lim, &whole);

	stream(p, &n, 1, &lim, &a);
	stream(p, reads, 2, &lim, &b);
	FUZZ_CHECK(a.ncmds == b.ncmds && a.nbytes == b.nbytes);
	FUZZ_CHECK(a.nbytes == 0 || memcmp(a.bytes, b.bytes, a.nbytes) == 0);
	FUZZ_CHECK((a.err == NULL) == (b.err == NULL));
	FUZZ_CHECK(a.err == NULL || strcmp(a.err, b.err) == 0);
	free(a.bytes);
	free(b.bytes);
	return 0;
}
