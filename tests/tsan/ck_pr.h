/*
 * ck_pr.h for ThreadSanitizer builds only: configure --enable-tsan puts
 * tests/tsan first on the include path, so every <ck_pr.h> (ours and the
 * one inside <ck_ring.h> and <ck_hp.h>) comes here first.
 *
 * Why: on x86_64 Concurrency Kit implements ck_pr with inline assembly,
 * which ThreadSanitizer cannot see. It then sees the ring slots and the
 * pinned connections being read and written by two threads with nothing
 * ordering them, and reports races that are not there.
 *
 * CK_USE_CC_BUILTINS=1 switches ck 0.7.1 to its portable GCC port, where
 * read-modify-write operations are __sync builtins (which TSan sees as
 * sequentially consistent atomics) but plain loads and stores are
 * volatile accesses (which TSan sees as ordinary, racy accesses) and
 * fences are __sync_synchronize (which TSan ignores). So after the real
 * header we redefine the loads, stores and exchanges as __atomic
 * builtins, with exactly the ordering x86_64 gives the assembly: under
 * TSO every load is an acquire, every store a release, and an exchange
 * (xchg) is sequentially consistent. The store-load fences ck uses for
 * hazard pointers stay full fences; TSan does not model fences, which is
 * why it cannot check that part (a hazard pointer's store-load ordering)
 * and we rely on ck_hp itself there.
 *
 * What this does not cover: code compiled inside libck.so (ck_hp_free,
 * ck_hp_reclaim, ck_hp_register) is not instrumented at all; see
 * tests/tsan.supp.
 */
#ifndef AC_TSAN_CK_PR_H
#define AC_TSAN_CK_PR_H

#ifdef CK_USE_CC_BUILTINS
#undef CK_USE_CC_BUILTINS
#endif
#define CK_USE_CC_BUILTINS 1
#include_next <ck_pr.h>

#define AC__TSAN_LOAD(T, t) __atomic_load_n((T const *)(t), __ATOMIC_ACQUIRE)
#define AC__TSAN_STORE(T, t, v) \
	__atomic_store_n((T *)(t), (T)(v), __ATOMIC_RELEASE)
#define AC__TSAN_FAS(T, t, v) \
	__atomic_exchange_n((T *)(t), (T)(v), __ATOMIC_SEQ_CST)

#define ck_pr_md_load_ptr(t) AC__TSAN_LOAD(void *, t)
#define ck_pr_md_load_char(t) AC__TSAN_LOAD(char, t)
#define ck_pr_md_load_int(t) AC__TSAN_LOAD(int, t)
#define ck_pr_md_load_uint(t) AC__TSAN_LOAD(unsigned int, t)
#define ck_pr_md_load_64(t) AC__TSAN_LOAD(uint64_t, t)
#define ck_pr_md_load_32(t) AC__TSAN_LOAD(uint32_t, t)
#define ck_pr_md_load_16(t) AC__TSAN_LOAD(uint16_t, t)
#define ck_pr_md_load_8(t) AC__TSAN_LOAD(uint8_t, t)

#define ck_pr_md_store_ptr(t, v) AC__TSAN_STORE(void *, t, v)
#define ck_pr_md_store_char(t, v) AC__TSAN_STORE(char, t, v)
#define ck_pr_md_store_int(t, v) AC__TSAN_STORE(int, t, v)
#define ck_pr_md_store_uint(t, v) AC__TSAN_STORE(unsigned int, t, v)
#define ck_pr_md_store_64(t, v) AC__TSAN_STORE(uint64_t, t, v)
#define ck_pr_md_store_32(t, v) AC__TSAN_STORE(uint32_t, t, v)
#define ck_pr_md_store_16(t, v) AC__TSAN_STORE(uint16_t, t, v)
#define ck_pr_md_store_8(t, v) AC__TSAN_STORE(uint8_t, t, v)

/* The portable port emulates these with a volatile load and a CAS loop;
 * the volatile load would look racy. */
#define ck_pr_fas_ptr(t, v) AC__TSAN_FAS(void *, t, v)
#define ck_pr_fas_int(t, v) AC__TSAN_FAS(int, t, v)
#define ck_pr_fas_uint(t, v) AC__TSAN_FAS(unsigned int, t, v)
#define ck_pr_fas_64(t, v) AC__TSAN_FAS(uint64_t, t, v)
#define ck_pr_fas_32(t, v) AC__TSAN_FAS(uint32_t, t, v)

#endif /* AC_TSAN_CK_PR_H */
