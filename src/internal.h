/*
 * internal.h: PRIVATE to libactorconn. Every private header at once, for
 * the tests and benchmarks that reach into the library; the library's own
 * sources each include only the headers they use.
 */
#ifndef AC_INTERNAL_H
#define AC_INTERNAL_H

#include "common.h"
#include "addr.h"
#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "conn.h"
#include "connect.h"
#include "group.h"
#include "handle.h"
#include "hash.h"
#include "htab.h"
#include "listener.h"
#include "loop.h"
#include "mailbox.h"
#include "pool.h"
#include "reclaim.h"
#include "runtime.h"
#include "segtab.h"
#include "sock.h"
#include "stats.h"
#include "timer.h"
#include "wait.h"
#include "watch.h"
#include "work.h"

#endif /* AC_INTERNAL_H */
