/*
 * resp.h: an incremental RESP2 request parser, a pure function of its
 * input (no allocation, no state between calls), so that it can be tested
 * byte by byte and fuzzed. Used by actorconn-broker.
 */
#ifndef AC_RESP_H
#define AC_RESP_H

#include <stddef.h>

enum { RESP_ERR = -1, RESP_MORE = 0, RESP_OK = 1 };

struct resp_limits {
	size_t max_bulk;   /* largest bulk string (Redis: 512 MiB) */
	size_t max_inline; /* longest inline command or header line (64 KiB) */
	size_t max_args;   /* most arguments in one command */
};

/* One command; argv[i] points into the parsed input (not NUL-terminated). */
struct resp_cmd {
	size_t argc;
	const char **argv; /* caller's arrays of max_args entries */
	size_t *argl;
};

/*
 * Parses the first command in buf[0, len).
 *   RESP_OK:   a command (argc may be 0 for an empty line or "*0"); it took
 *              *consumed bytes.
 *   RESP_MORE: incomplete; *need is the input length at which trying again
 *              can succeed, or 0 if unknown.
 *   RESP_ERR:  *err is the message Redis sends ("Protocol error: ...").
 * cmd may be NULL to validate and measure only.
 */
int resp_parse(const char *buf, size_t len, const struct resp_limits *lim,
	       struct resp_cmd *cmd, size_t *consumed, size_t *need,
	       const char **err);

/* Redis' glob matching: * ? [set] [^set] [a-z] and \ escapes. */
int resp_glob(const char *pat, size_t plen, const char *s, size_t slen);

#endif
