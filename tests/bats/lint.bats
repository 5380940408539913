#!/usr/bin/env bats
# The checks of make lint can fail: scripts/check-copies on planted
# near-copies (and not on what it leaves out), scripts/check-deps on a
# planted cycle; require_cmds skips or fails. Needs no root.

load helpers

setup() {
	require_cmds python3
	TESTDIR=$(mktemp -d /tmp/raidtool-lint.XXXXXX)
}

teardown() {
	[ -n "${TESTDIR:-}" ] && rm -rf "$TESTDIR"
	return 0
}

# A function of 14 lines; with "renamed", the same shape with other names,
# numbers and strings.
function_text() {
	local n=${1:-sum} x=${2:-buf} s=${3:-"sum of %s"} k=${4:-16}
	cat <<EOF
/* The $n of a buffer, logged. */
static int $n(const unsigned char *$x, int len, int *out)
{
	int i, total = 0;

	if (!$x || len < 0)
		return -22;
	for (i = 0; i < len; i++) {
		if (${x}[i] > $k)
			total += ${x}[i];
		else
			total -= 1;
	}
	printf("$s\n", "it");
	*out = total;
	return 0;
}
EOF
}

@test "check-copies: the tree of lib/ and raidtool/ has no near-copy" {
	run "$TOP/scripts/check-copies"
	assert_success
}

@test "check-copies: a planted copy and a renamed copy fail, with both places" {
	{ echo '#include <stdio.h>'; function_text; } > "$TESTDIR/a.c"
	{ echo '#include <stdio.h>'; echo 'int x;'; function_text; } > "$TESTDIR/b.c"
	run "$TOP/scripts/check-copies" "$TESTDIR/a.c" "$TESTDIR/b.c"
	assert_failure 1
	assert_output --regexp "a\.c:3-[0-9]+ ~ .*b\.c:4-[0-9]+"
	# The same shape: other names, numbers, strings, comments and spacing.
	{ function_text; } > "$TESTDIR/a.c"
	function_text total data "total %s" 99 | sed 's/^\t/    /; s/logged/printed/' > "$TESTDIR/b.c"
	run "$TOP/scripts/check-copies" "$TESTDIR/a.c" "$TESTDIR/b.c"
	assert_failure 1
	assert_output --partial "a.c:2-"
	# Twice in one file.
	{ function_text; function_text other; } > "$TESTDIR/a.c"
	run "$TOP/scripts/check-copies" "$TESTDIR/a.c"
	assert_failure 1
	# Shorter than 10 lines that count: no copy.
	function_text | head -n 9 > "$TESTDIR/a.c"
	function_text | head -n 9 > "$TESTDIR/b.c"
	run "$TOP/scripts/check-copies" "$TESTDIR/a.c" "$TESTDIR/b.c"
	assert_success
}

@test "check-copies: popt tables and runs of one shape are no copies" {
	local f i
	for f in a b; do
		{
			# Rows as the commands write them: over one or two lines, a macro.
			echo "static const struct poptOption ${f}_opts[] = {"
			for i in 1 2 3 4; do
				echo "	{ \"opt$i\", 'o', POPT_ARG_NONE, &v$i, 0,"
				echo "	  \"option $i\", NULL },"
				echo "	{ \"num$i\", 0, POPT_ARG_INT, &n$i, 0, \"number $i\", \"N\" },"
				echo "	CLI_SPEED_LIMIT_OPT(speed$i),"
			done
			echo "	POPT_TABLEEND"
			echo "};"
			echo "static void ${f}_print(void)"
			echo "{"
			for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
				echo "	json_str(&j, \"field$i\", st->f$i);"
			done
			echo "}"
		} > "$TESTDIR/$f.c"
	done
	run "$TOP/scripts/check-copies" "$TESTDIR/a.c" "$TESTDIR/b.c"
	assert_success
}

@test "check-deps: a cycle between modules and lib/ including the CLI fail" {
	# A copy of the tree's sources with one include added: layout -> engine (engine includes layout).
	mkdir -p "$TESTDIR/tree/scripts"
	cp -r "$TOP/lib" "$TOP/raidtool" "$TOP/include" "$TESTDIR/tree/"
	cp "$TOP/scripts/check-deps" "$TESTDIR/tree/scripts/"
	run "$TESTDIR/tree/scripts/check-deps"
	assert_success
	sed -i '0,/#include/s//#include <raidtool\/engine.h>\n#include/' "$TESTDIR/tree/lib/layout.c"
	run "$TESTDIR/tree/scripts/check-deps"
	assert_failure
	assert_output --partial "a cycle between the modules"
	assert_output --partial "lib/layout.c includes include/raidtool/engine.h"
	cp "$TOP/lib/layout.c" "$TESTDIR/tree/lib/layout.c"
	sed -i '0,/#include/s//#include "..\/raidtool\/cli.h"\n#include/' "$TESTDIR/tree/lib/util.c"
	run "$TESTDIR/tree/scripts/check-deps"
	assert_failure
	assert_output --partial "the library must not depend on the CLI"
}

@test "require_cmds: a missing command skips the test, or fails it under RAIDTOOL_TEST_REQUIRE_ROOT=1" {
	# (printf: bats would take an @test line of this file as its own)
	printf '%s\n' "load '$TOP/tests/bats/helpers'" '@''test "needs a command" {' \
		'	require_cmds sh raidtool-no-such-command' '	false' '}' > "$TESTDIR/t.bats"
	# A clean environment: the outer bats's variables and PATH confuse the inner one.
	run env -i PATH=/usr/local/bin:/usr/bin:/bin RAIDTOOL_TEST_REQUIRE_ROOT=0 bats --tap "$TESTDIR/t.bats"
	assert_success
	assert_output --partial "ok 1 needs a command # skip needs raidtool-no-such-command"
	# A clean environment: the outer bats's variables and PATH confuse the inner one.
	run env -i PATH=/usr/local/bin:/usr/bin:/bin RAIDTOOL_TEST_REQUIRE_ROOT=1 bats --tap "$TESTDIR/t.bats"
	assert_failure
	assert_output --partial "not ok 1 needs a command"
	assert_output --partial "cannot run: needs raidtool-no-such-command"
}
