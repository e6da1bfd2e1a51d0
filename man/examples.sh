#!/usr/bin/env bash
# examples.sh: check that the C examples of the manual pages compile.
#
# Takes every literal display (.Bd -literal ... .Ed) in the EXAMPLES
# section of each man3 and man7 page, turns its mdoc escapes back into
# plain characters (\e is a backslash, \(dq a double quote, \&, \- and
# the like), and compiles it on its own with
#   cc -std=c11 -D_GNU_SOURCE -fsyntax-only -Wall -Werror -I../include
# A display is C when its first line starts with "#include"; the others
# (program output, Prometheus text) are not compiled. So every C example
# is a whole translation unit: a fragment belongs in a function, after its
# includes, in the page itself.
#
# Runs from man/, like lint.sh, which calls it. The compiler is $CC (which
# may carry flags), else cc. Pure .so link pages are skipped (their target
# page is checked). Exits 1 if an example fails to compile, 2 if there is
# no compiler, 0 otherwise.

set -u
cd "$(dirname "$0")" || exit 2
read -r -a cc <<<"${CC:-cc}"
command -v "${cc[0]}" >/dev/null 2>&1 ||
	{ echo "examples.sh: ${cc[0]} not found" >&2; exit 2; }
shopt -s nullglob

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT

# extract PAGE DIR: writes DIR/N.txt for each literal display in the
# EXAMPLES section of PAGE, escapes undone, numbered from 1.
extract() {
	awk -v dir="$2" '
	function unescape(s) {
		gsub(/\\\(dq/, "\"", s)
		gsub(/\\\(aq/, "\047", s)
		gsub(/\\\(ga/, "`", s)
		gsub(/\\\(ti/, "~", s)
		gsub(/\\\(ha/, "^", s)
		gsub(/\\\(rs/, "\\\\", s)
		gsub(/\\\(mi/, "-", s)
		gsub(/\\\(em/, "--", s)
		gsub(/\\&/, "", s)
		gsub(/\\-/, "-", s)
		gsub(/\\e/, "\\\\", s)
		return s
	}
	/^\.Sh / { inex = ($2 == "EXAMPLES" || $2 == "EXAMPLE"); next }
	inex && /^\.Bd -literal/ { n++; out = dir "/" n ".txt"; inlit = 1; next }
	inlit && /^\.Ed/ { inlit = 0; close(out); next }
	inlit && /^\.\\"/ { next }
	inlit { print unescape($0) > out }
	' "$1"
}

# is_stub FILE: true if FILE holds nothing but one .so request.
is_stub() {
	[ "$(grep -cv '^[[:space:]]*$' "$1")" -eq 1 ] && grep -q '^\.so ' "$1"
}

status=0
ncompiled=0
nfailed=0
nskipped=0

for page in man3/*.3 man7/*.7; do
	is_stub "$page" && continue
	dir="$tmp/${page//\//_}"
	mkdir -p "$dir"
	extract "$page" "$dir"
	for txt in "$dir"/*.txt; do
		n=$(basename "$txt" .txt)
		if ! head -n 1 "$txt" | grep -q '^#include'; then
			nskipped=$((nskipped + 1))
			continue
		fi
		src="$dir/$n.c"
		cp "$txt" "$src"
		if out=$("${cc[@]}" -std=c11 -D_GNU_SOURCE -fsyntax-only -Wall -Werror \
		    -I../include "$src" 2>&1); then
			ncompiled=$((ncompiled + 1))
		else
			echo "examples.sh: $page: example $n does not compile:"
			sed "s|$src|$page example $n|g" <<<"$out"
			nfailed=$((nfailed + 1))
			status=1
		fi
	done
done

if [ "$status" -eq 0 ]; then
	echo "examples.sh: $ncompiled examples compile ($nskipped displays are not C)"
else
	echo "examples.sh: $nfailed of $((ncompiled + nfailed)) examples do not compile" >&2
fi
exit "$status"
