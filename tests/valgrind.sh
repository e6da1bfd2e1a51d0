#!/bin/sh
# valgrind.sh: the LOG_COMPILER of make check-valgrind (tests/reliability.am).
# A Check program runs under $AC_VALGRIND (libtool --mode=execute valgrind
# ...; valgrind follows Check's forks, so every test's child is checked as
# it exits). A shell or Python test runs as it is: it starts its server under
# $AC_VALGRIND itself, and a valgrind error there fails its exit status.
case $1 in
*.sh | *.py) exec "$@" ;;
esac
# shellcheck disable=SC2086 # AC_VALGRIND is a command line
exec $AC_VALGRIND "$@"
