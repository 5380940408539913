#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# Errors that are not a disk's death and admin steps on a running array that
# must leave the engine and the superblocks agreeing: a full backing store
# (ENOSPC), transient and persistent I/O errors (bounded retries), remove of
# a unit being rebuilt, and sub-block read-modify-writes racing whole-block
# writes. Every test ends by checking the data against what was written.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	require_fuse
	scratch_setup
	RMWRACE=$TOP/build/tests/rt-rmwrace
	LOOPS=()
}

teardown() {
	if [ -n "${TESTDIR:-}" ] && [ -n "${NAME:-}" ] && [ -e "$RAIDTOOL_RUNDIR/$NAME/pid" ]; then
		raidtool deactivate "$NAME" >/dev/null 2>&1
	fi
	scratch_teardown
}

# Finding 6: with --blocksize 512 over units with 4 KiB logical sectors, a
# 512-byte write is a read-modify-write of its unit block; an aligned 4 KiB
# write of the same block must never be undone by it. rt-rmwrace reports
# every whole-block write found reverted (before the fix: about 1 in 100).
rmw_race() {
	local level=$1 img dev
	[ -x "$RMWRACE" ] || fail "build rt-rmwrace first (make all)"
	for img in $(make_images u 2 64M); do
		dev=$(losetup --sector-size 4096 --find --show "$img")
		LOOPS+=("$dev")
	done
	[ "$(blockdev --getss "${LOOPS[0]}")" = 4096 ]
	run raidtool create "$NAME" --level "$level" --chunk 64K --blocksize 512 "${LOOPS[@]}"
	assert_success
	run raidtool activate "$NAME"
	assert_success
	[ "$(blockdev --getss "/dev/raidtool/$NAME")" = 512 ]
	run "$RMWRACE" "/dev/raidtool/$NAME" 64 300
	assert_success
	assert_output --regexp '^checks [0-9]+ lost 0$'
	run raidtool deactivate "$NAME"
	assert_success
}

@test "raid0 --blocksize 512 on 4K-sector units: no whole-block write is undone by a sector write" {
	rmw_race 0
}

@test "linear --blocksize 512 on 4K-sector units: no whole-block write is undone by a sector write" {
	rmw_race linear
}
