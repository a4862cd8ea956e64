#!/bin/sh
# Prints the Debian version of this tree, from git:
#   tag v1.2.3 on HEAD         → 1.2.3
#   3 commits after v1.2.3     → 1.2.3+3.g1a2b3c4
#   no tag yet                 → 0.0.0+<commits>.g1a2b3c4
# with ".dirty" appended for uncommitted changes. Versions grow with every
# commit on main, so apt upgrades in order. (A Debian version must start
# with a digit, hence not `git describe` as it is.)
set -e
cd "$(dirname "$0")/.."
dirty=
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	dirty=.dirty
fi
if d=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
	# v1.2.3-4-gabcdef0
	tag=${d%-*-g*}
	rest=${d#"$tag"-}
	n=${rest%%-*}
	sha=${rest#*-}
	v=${tag#v}
	if [ "$n" != 0 ]; then
		v=$v+$n.$sha
	fi
elif n=$(git rev-list --count HEAD 2>/dev/null); then
	v=0.0.0+$n.g$(git rev-parse --short=7 HEAD)
else
	v=0.0.0
	dirty=
fi
if [ -n "$dirty" ]; then
	case $v in *+*) v=$v$dirty ;; *) v=$v+dirty ;; esac
fi
echo "$v"
