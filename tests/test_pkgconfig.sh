#!/bin/sh
# test_pkgconfig.sh: what a user of the built library sees through
# pkg-config and the dynamic symbol table.
#  - pkg-config --cflags adds nothing but the include path (ck.pc's
#    -D__x86_64__ must not leak through a Requires.private);
#  - pkg-config --libs --static names everything the library links;
#  - the shared library exports exactly the ac_* functions the header
#    declares, and none of the ac__ internals.
set -u
top=${ABS_TOP_BUILDDIR:-.}
srcdir=${ABS_TOP_SRCDIR:-.}
fail() { echo "test_pkgconfig: $*"; exit 1; }
command -v pkg-config >/dev/null || { echo "pkg-config not found"; exit 77; }

cflags=$(PKG_CONFIG_PATH="$top" pkg-config --cflags libactorconn) ||
	fail "pkg-config cannot read $top/libactorconn.pc"
for f in $cflags; do
	case $f in -I*) ;; *) fail "--cflags leaks '$f' (all: $cflags)" ;; esac
done
libs=$(PKG_CONFIG_PATH="$top" pkg-config --libs --static libactorconn)
want="-lactorconn -levent_core -levent_extra -lck -lpthread"
grep -q '^#define AC_HAVE_TCMALLOC 1' "$top/config.h" &&
	want="$want -ltcmalloc_minimal"
for l in $want; do
	case " $libs " in *" $l "*) ;; *) fail "--libs --static lacks $l: $libs" ;; esac
done

so="$top/.libs/libactorconn.so"
[ -f "$so" ] || fail "$so not built"
exported=$(nm -D --defined-only "$so" | awk '$2 == "T" { print $3 }' | sort)
echo "$exported" | grep -q '^ac__' && fail "internals exported: $(echo "$exported" | grep '^ac__' | head -3)"
echo "$exported" | grep -v '^ac_' | grep -q . && fail "foreign symbols exported: $(echo "$exported" | grep -v '^ac_' | head -3)"
declared=$(sed -n 's/^AC_EXPORT [^(]*[ *]\(ac_[a-z0-9_]*\)(.*/\1/p' "$srcdir/include/actorconn.h" | sort)
[ -n "$declared" ] || fail "no AC_EXPORT declarations found in the header"
missing=""
for f in $declared; do
	echo "$exported" | grep -qx "$f" || missing="$missing $f"
done
[ -z "$missing" ] || fail "declared but not exported: $missing"
echo "test_pkgconfig: cflags '$cflags'; $(echo "$exported" | wc -l) symbols exported, all declared"
exit 0
