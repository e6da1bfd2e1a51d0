/*
 * metrics.c: the statistics over HTTP, for a Prometheus scraper or curl.
 * A minimal HTTP/1.0 responder built on the library itself: request lines
 * arrive as line frames; the blank line that ends the headers gets the
 * answer, whatever the path, and the connection closes once it is sent.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

static void metrics_frame(ac_conn_t *c, const void *data, size_t len)
{
	static const char head[] = "HTTP/1.0 200 OK\r\n"
				   "Content-Type: text/plain; version=0.0.4\r\n"
				   "Content-Length: %d\r\n\r\n";
	ac_runtime_t *rt = ac_conn_runtime(c);
	char hdr[128];
	char *body;
	int n;

	if (len > 0)
		return; /* request line or header: wait for the blank line */
	n = ac_stats_prometheus(rt, NULL, 0);
	if (n < 0 || !(body = ac__malloc(AC__K_OTHER, (size_t)n + 1))) {
		ac_conn_close(c, AC_CLOSE_ABORT);
		return;
	}
	n = ac_stats_prometheus(rt, body, (size_t)n + 1);
	ac_conn_write(c, hdr, (size_t)snprintf(hdr, sizeof(hdr), head, n));
	ac_conn_write(c, body, (size_t)n);
	ac__free(AC__K_OTHER, body);
	ac_conn_close(c, AC_CLOSE_FLUSH);
}

AC_EXPORT int ac_metrics_listen(ac_runtime_t *rt, const char *addr,
				ac_listener_t **out)
{
	static const ac_conn_cbs_t cbs = {.on_frame = metrics_frame};
	/* Small requests, quick answers: tight bounds. */
	const ac_conn_opts_t opts = {.framing = AC_FRAME_LINE,
				     .max_frame = 8192,
				     .idle_timeout_ms = 10000,
				     .max_conns = 64};

	return ac_listen(rt, addr, &cbs, &opts, NULL, out);
}
