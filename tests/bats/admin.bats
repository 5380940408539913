#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# Admin commands in turn and on the right array: concurrent creates of one
# name, a deactivate racing status, a hashcode naming a stopped array whose
# name a running one shares.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	require_fuse
	command -v jq >/dev/null || require "needs jq"
	scratch_setup
	BGPIDS=()
}

teardown() {
	local p
	for p in "${BGPIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	for p in "${BGPIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	scratch_teardown
}

@test "two creates of one name at the same time: exactly one succeeds, ten times over" {
	local i a b ra rb wins
	for i in $(seq 10); do
		mapfile -t a < <(make_images "a${i}-" 2 16M)
		mapfile -t b < <(make_images "b${i}-" 2 16M)
		"$RAIDTOOL_BIN" create "${NAME}r$i" --level 1 "${a[@]}" >"$TESTDIR/a$i.out" 2>&1 &
		BGPIDS+=("$!")
		"$RAIDTOOL_BIN" create "${NAME}r$i" --level 1 "${b[@]}" >"$TESTDIR/b$i.out" 2>&1 &
		BGPIDS+=("$!")
		ra=0; rb=0
		wait "${BGPIDS[-2]}" || ra=$?
		wait "${BGPIDS[-1]}" || rb=$?
		wins=$(( (ra == 0) + (rb == 0) ))
		[ "$wins" = 1 ] || fail "round $i: $wins creates succeeded: $(cat "$TESTDIR/a$i.out" "$TESTDIR/b$i.out")"
		# The other was refused because the name is taken (exit 5), not for another reason.
		[ $((ra + rb)) = 5 ] || fail "round $i: exits $ra and $rb: $(cat "$TESTDIR/a$i.out" "$TESTDIR/b$i.out")"
		grep -q "name already taken" "$TESTDIR/a$i.out" "$TESTDIR/b$i.out" ||
			fail "round $i: $(cat "$TESTDIR/a$i.out" "$TESTDIR/b$i.out")"
		run --separate-stderr raidtool lookup --json "${NAME}r$i"
		assert_success
	done
}
