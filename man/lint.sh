#!/usr/bin/env bash
# lint.sh: check every manual page under man/ with mandoc -Tlint -W style.
#
# Runs from man/ so that ".so man3/NAME.3" link pages resolve. Prints every
# message mandoc reports, except two kinds that are not findings about the
# pages:
#   - "STYLE: referenced manual not found: Xr NAME SEC" when man/manS/NAME.SEC
#     exists here (mandoc only searches the installed manual path);
#   - "WARNING: .so is fragile, better use ln(1)" on pure .so link pages,
#     which are links by design (the install rules copy them as they are).
# "outdated mandoc.db" notes from mandoc's cross-reference lookup are dropped.
# Then, where a C compiler is found ($CC, else cc), it runs examples.sh,
# which compiles the C examples of the man3 and man7 pages; without one it
# says so and skips them.
# Exits 1 if a message at warning level or above remains, a link page
# names a missing target, or an example does not compile; 2 if mandoc is
# missing; 0 otherwise. Style messages are printed but do not fail the
# check.

set -u
cd "$(dirname "$0")" || exit 2
command -v mandoc >/dev/null 2>&1 || { echo "lint.sh: mandoc not found" >&2; exit 2; }
shopt -s nullglob

status=0
npages=0
nmsgs=0

# is_stub FILE: true if FILE holds nothing but one .so request.
is_stub() {
	[ "$(grep -cv '^[[:space:]]*$' "$1")" -eq 1 ] && grep -q '^\.so ' "$1"
}

for page in man1/*.1 man3/*.3 man7/*.7; do
	npages=$((npages + 1))
	stub=0
	if is_stub "$page"; then
		stub=1
		target=$(sed -n 's/^\.so[[:space:]]*//p' "$page")
		if [ ! -f "$target" ]; then
			echo "lint.sh: $page: .so target $target does not exist"
			status=1
			continue
		fi
	fi
	out=$(mandoc -Tlint -W style "$page" 2>&1)
	rc=$?
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		case $line in
		*"outdated mandoc.db lacks"*)
			continue ;;
		*"STYLE: referenced manual not found: Xr "*)
			ref=${line##*: Xr }
			ref=${ref%% (*}
			name=${ref%% *}
			sec=${ref#* }
			[ -f "man${sec:0:1}/$name.$sec" ] && continue ;;
		*"WARNING: .so is fragile, better use ln(1)"*)
			[ "$stub" -eq 1 ] && continue ;;
		esac
		echo "$line"
		nmsgs=$((nmsgs + 1))
		case $line in
		*": WARNING: "* | *": ERROR: "* | *": UNSUPP: "* | \
		*": BADARG: "* | *": SYSERR: "*)
			status=1 ;;
		esac
	done <<<"$out"
	# mandoc exits 2 or more for warnings and worse; only the filtered
	# .so warning of a link page may account for that.
	if [ "$rc" -ge 5 ] || { [ "$rc" -ge 2 ] && [ "$stub" -eq 0 ]; }; then
		status=1
	fi
done

# The C examples must compile too, where there is a compiler to try them.
cc=${CC:-cc}
if command -v "${cc%% *}" >/dev/null 2>&1; then
	bash ./examples.sh || status=1
else
	echo "lint.sh: no C compiler (${cc%% *}): examples not compiled"
fi

if [ "$status" -eq 0 ]; then
	echo "lint.sh: $npages pages, $nmsgs messages, no warnings"
else
	echo "lint.sh: $npages pages, $nmsgs messages: FAILED" >&2
fi
exit "$status"
