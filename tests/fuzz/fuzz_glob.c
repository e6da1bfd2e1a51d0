/*
 * fuzz_glob.c: libFuzzer harness for resp_glob (examples/resp.c), the
 * Redis glob matching behind PSUBSCRIBE and PUBSUB CHANNELS.
 *
 * Input: byte 0 says how much of the rest is the pattern; the remainder
 * is the string. Both are exactly sized heap copies (ASan catches a read
 * past either). The answer is compared with an independent matcher: the
 * pattern is cut into atoms (literal, ?, *, [set]) by the same rules, and
 * a dynamic program over atoms and string positions decides the match in
 * O(atoms x length) steps. A pattern that makes resp_glob take
 * exponential time shows up as a libFuzzer timeout (make fuzz passes
 * -timeout).
 *
 * The rules, as Redis's stringmatchlen has them: "*" any run
 * (consecutive stars are one), "?" one byte, "\c" the byte c (a lone
 * trailing "\" is itself), "[set]" one byte in the set, "[^set]" one
 * byte not in it; inside a set, in this order, "\c" is c, "]" closes,
 * the pattern's end leaves the set open (it takes the rest of the
 * pattern and still matches one byte), "x-y" is a range wherever a "-"
 * follows (so "a-]" ranges up to "]"), in either order, bytes compared
 * as signed chars; and the empty string matches the empty pattern only,
 * not "*".
 */
#include "../../examples/resp.h"
#include "fuzz.h"

enum { A_LIT, A_ANY, A_STAR, A_SET };

struct atom {
	int kind;
	char c;            /* A_LIT */
	size_t from, to;   /* A_SET: the set's body in the pattern */
	bool neg;
};

/* How many bytes the set element at p[i] spans (plen is the pattern's
 * length: an escape or a range needs the bytes after it to exist), or 0
 * at the closing "]" or the pattern's end. */
static size_t set_step(const char *p, size_t plen, size_t i)
{
	if (plen - i >= 2 && p[i] == '\\')
		return 2;
	if (i >= plen || p[i] == ']')
		return 0;
	if (plen - i >= 3 && p[i + 1] == '-')
		return 3;
	return 1;
}

/* Whether byte ch is in the set body p[from, to). */
static bool in_set(const char *p, size_t plen, size_t from, size_t to,
		   char ch)
{
	bool in = false;

	for (size_t i = from; i < to;) {
		size_t n = set_step(p, plen, i);

		if (n == 2) {
			in |= p[i + 1] == ch;
		} else if (n == 3) {
			signed char lo = (signed char)p[i],
				    hi = (signed char)p[i + 2];

			if (lo > hi) {
				signed char t = lo;
				lo = hi;
				hi = t;
			}
			in |= (signed char)ch >= lo && (signed char)ch <= hi;
		} else {
			in |= p[i] == ch;
		}
		i += n;
	}
	return in;
}

/* Cuts the pattern into atoms; returns their number. */
static size_t atoms_of(const char *p, size_t plen, struct atom *a)
{
	size_t n = 0, i = 0, step;

	while (i < plen) {
		struct atom *t = &a[n++];

		memset(t, 0, sizeof(*t));
		switch (p[i]) {
		case '*':
			t->kind = A_STAR;
			while (i < plen && p[i] == '*')
				i++;
			break;
		case '?':
			t->kind = A_ANY;
			i++;
			break;
		case '[':
			i++;
			if (i < plen && p[i] == '^') {
				t->neg = true;
				i++;
			}
			t->from = i;
			while ((step = set_step(p, plen, i)) != 0)
				i += step;
			t->to = i;
			t->kind = A_SET;
			if (i < plen)
				i++; /* the "]"; an open set ends the pattern */
			break;
		case '\\':
			t->kind = A_LIT;
			t->c = plen - i >= 2 ? p[i + 1] : '\\';
			i += plen - i >= 2 ? 2 : 1;
			break;
		default:
			t->kind = A_LIT;
			t->c = p[i++];
		}
	}
	return n;
}

static bool atom_takes(const char *p, size_t plen, const struct atom *t,
		       char ch)
{
	switch (t->kind) {
	case A_LIT:
		return t->c == ch;
	case A_ANY:
		return true;
	case A_SET:
		return in_set(p, plen, t->from, t->to, ch) != t->neg;
	default:
		return false; /* A_STAR: handled by the caller */
	}
}

/* ok[j]: atoms i.. match s[j..]; computed from the last atom backwards. */
static bool model(const char *p, size_t plen, const char *s, size_t slen)
{
	struct atom *a = malloc((plen + 1) * sizeof(*a));
	bool *ok = malloc(slen + 1), *next = malloc(slen + 1);
	size_t na;
	bool r;

	FUZZ_CHECK(a && ok && next);
	if (slen == 0) { /* Redis's loop never starts */
		free(a);
		free(ok);
		free(next);
		return plen == 0;
	}
	na = atoms_of(p, plen, a);
	for (size_t j = 0; j <= slen; j++)
		ok[j] = j == slen;
	for (size_t i = na; i-- > 0;) {
		bool *t;

		if (a[i].kind == A_STAR) {
			/* a run of any length, then the rest */
			next[slen] = ok[slen];
			for (size_t j = slen; j-- > 0;)
				next[j] = ok[j] || next[j + 1];
		} else {
			next[slen] = false;
			for (size_t j = 0; j < slen; j++)
				next[j] = ok[j + 1] && atom_takes(p, plen, &a[i], s[j]);
		}
		t = ok;
		ok = next;
		next = t;
	}
	r = ok[0];
	free(a);
	free(ok);
	free(next);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t plen, slen;
	char *p, *s;
	int got;

	if (size < 1)
		return 0;
	plen = size > 1 ? data[0] % size : 0; /* 0 .. size - 1 */
	slen = size - 1 - plen;
	p = fuzz_copy(data + 1, plen);
	s = fuzz_copy(data + 1 + plen, slen);
	got = resp_glob(p, plen, s, slen);
	FUZZ_CHECK(got == 0 || got == 1);
	FUZZ_CHECK(got == (int)model(p, plen, s, slen));
	free(p);
	free(s);
	return 0;
}
