#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# Operating arrays: status without a name (every array, running or not),
# status --test's exit status, activate --readonly, activate --scan.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	require_fuse
	command -v jq >/dev/null || require "needs jq"
	scratch_setup
	BGPIDS=()
	UNITS=()
}

teardown() {
	reap_bgpids
	local n
	for n in "${NAME:-}" "${NAME2:-}"; do
		[ -n "$n" ] && [ -e "$RAIDTOOL_RUNDIR/$n/pid" ] && raidtool deactivate "$n" >/dev/null 2>&1
	done
	# A read-only test's file system.
	[ -n "${TESTDIR:-}" ] && mountpoint -q "$TESTDIR/mnt" && umount "$TESTDIR/mnt"
	scratch_teardown
}

# new_array NAME LEVEL COUNT SIZE: images NAME-I.img, created --assume-clean, not started.
new_array() {
	local name=$1 level=$2 count=$3 size=$4 i imgs=()
	for ((i = 0; i < count; i++)); do imgs+=("$(make_image "$name-$i.img" "$size")"); done
	run raidtool create "$name" --level "$level" --chunk 64K --assume-clean "${imgs[@]}"
	assert_success
	UNITS=("${imgs[@]}")
}

# Hide unit I of the stopped array NAME: its loop device detached.
hide_unit() {
	losetup -j "$TESTDIR/$1-$2.img" -nO NAME | xargs -r losetup -d
}

# This test's array NAME in the overview's JSON.
overview_of() {
	raidtool status --json | jq -c ".arrays[] | select(.name == \"$1\")"
}

@test "status without a name: running and stopped arrays, one block each, with [UU_] and health" {
	NAME2=${NAME}b
	new_array "$NAME" 5 3 32M
	new_array "$NAME2" 1 2 32M
	run raidtool activate "$NAME"
	assert_success
	run raidtool fail "$NAME" 2
	assert_success
	run --separate-stderr raidtool status
	assert_success
	assert_output --regexp "(^|
)$NAME : active raid5 \[3/2\] \[UU_\] degraded
"
	assert_output --regexp "(^|
)$NAME2 : inactive raid1 \[2/2\] \[UU\] clean
"
	assert_output --regexp "units: loop[0-9]+\[0\] loop[0-9]+\[1\] loop[0-9]+\[2\]\(faulty\)"
	assert_output --partial "/dev/raidtool/$NAME ("
	run overview_of "$NAME"
	assert_success
	[ "$(jq -r .state <<<"$output")" = active ]
	[ "$(jq -r .map <<<"$output")" = UU_ ]
	[ "$(jq -r .roles_up <<<"$output")" = 2 ]
	[ "$(jq -r .health <<<"$output")" = degraded ]
	[ "$(jq -r .device <<<"$output")" = "/dev/raidtool/$NAME" ]
	[ "$(jq -r '.units[2].state' <<<"$output")" = faulty ]
	run overview_of "$NAME2"
	[ "$(jq -r .state <<<"$output")" = inactive ]
	[ "$(jq -r .health <<<"$output")" = clean ]
	[ "$(jq -r .device <<<"$output")" = null ]
}

@test "status without a name shows a running rebuild with progress, speed and time left" {
	new_array "$NAME" 1 2 64M
	run raidtool activate "$NAME"
	assert_success
	run raidtool fail "$NAME" 1
	assert_success
	run raidtool remove "$NAME" 1
	assert_success
	fresh=$(make_image fresh.img 64M)
	run raidtool add "$NAME" "$fresh" --speed-limit 4
	assert_success
	for _ in $(seq 50); do
		[ "$(overview_of "$NAME" | jq -r '.walk.kind')" = rebuilding ] && break
		sleep 0.1
	done
	run overview_of "$NAME"
	[ "$(jq -r .walk.kind <<<"$output")" = rebuilding ]
	[ "$(jq -r .walk.role <<<"$output")" = 1 ]
	[ "$(jq -r .walk.total <<<"$output")" -gt 0 ]
	[ "$(jq -r .map <<<"$output")" = U_ ]
	sleep 1.5
	run --separate-stderr raidtool status
	assert_output --regexp "rebuilding role 1: [0-9.]+% \([0-9]+ of [0-9]+ bytes\), [0-9.]+ [KMG]?i?B/s, [0-9]+ s left"
	run raidtool wait "$NAME"
	assert_success
	[ "$(overview_of "$NAME" | jq -r .map)" = UU ]
	[ "$(overview_of "$NAME" | jq -r .walk)" = null ]
}

@test "status NAME --test: 0 clean, 1 degraded, 2 failed or engine dead, 4 no such array" {
	new_array "$NAME" 5 3 32M
	run --separate-stderr raidtool status "$NAME" --test
	assert_success
	run raidtool activate "$NAME"
	assert_success
	run --separate-stderr raidtool status "$NAME" --test
	assert_success
	run raidtool fail "$NAME" 1
	assert_success
	run --separate-stderr raidtool status "$NAME" --test
	assert_failure 1
	# Still shown as usual.
	assert_output --partial "degraded"
	run raidtool deactivate "$NAME"
	assert_success
	# Stopped: what it would start as.
	run --separate-stderr raidtool status "$NAME" --test
	assert_failure 1
	hide_unit "$NAME" 2
	run --separate-stderr raidtool status "$NAME" --test
	assert_failure 2
	run --separate-stderr raidtool status "nosuch$NAME" --test
	assert_failure 4
	# Without --test, a missing array is exit status 3 as before.
	run --separate-stderr raidtool status "nosuch$NAME"
	assert_failure 3
	run --separate-stderr raidtool status --test
	assert_failure 2
}

@test "status --test: an array whose engine died is 2" {
	new_array "$NAME" 1 2 32M
	run raidtool activate "$NAME"
	assert_success
	sigkill_wait "$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")"
	run --separate-stderr raidtool status "$NAME" --test
	assert_failure 2
	[ "$(overview_of "$NAME" | jq -r .state)" = dead ]
	[ "$(overview_of "$NAME" | jq -r .health)" = failed ]
}
