#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# The initial sync of raid1/raid5 (issue 9, finding 1): units that held other
# data (random bytes, as used disks do) must not make a unit failure lose an
# acknowledged write, neither after the initial sync nor in the middle of it;
# status and list say the array is not yet synced; create --assume-clean
# skips the sync for units known to hold zeros.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	fuse_setup fio jq
	UNITS=()
}

teardown() {
	stop_arrays
	scratch_teardown
}

# used_units COUNT MIB: unit images full of random bytes (disks that held data).
used_units() {
	local i img
	for ((i = 0; i < $1; i++)); do
		img=$TESTDIR/u$i.img
		dd if=/dev/urandom of="$img" bs=1M count="$2" status=none
		UNITS+=("$img")
	done
}

# Random 4k writes with crc32c verify headers over the first SIZE of the
# array; the same seed makes fio_verify_only check exactly these blocks.
FIO_RAND=(--name=data --direct=1 --ioengine=io_uring --iodepth=8 --rw=randwrite --bs=4k
	--randseed=4242 --verify=crc32c --verify_state_save=0)

fio_write() {
	run fio --filename="$DEV" "${FIO_RAND[@]}" --size="$1" --do_verify=0
	assert_success
}

fio_verify_only() {
	run fio --filename="$DEV" "${FIO_RAND[@]}" --size="$1" --verify_only=1
	assert_success
	[[ "$output" != *"verify: bad"* ]] || fail "fio found bad blocks: $output"
}

status_json() {
	raidtool status --json "$NAME" 2>/dev/null
}

list_status() {
	raidtool list --json 2>/dev/null | jq -r --arg n "$NAME" '.arrays[] | select(.name == $n) | .status'
}

create_used() {
	run raidtool create "$NAME" --level "$1" --chunk 64K "${UNITS[@]}"
	assert_success
	assert_output --partial "not yet synced"
	# Before the first start: the superblocks say so, status and list too.
	[ "$(status_json | jq -r .synced)" = false ]
	[ "$(list_status)" = unsynced ]
	run raidtool status "$NAME"
	assert_output --partial "not yet synced"
}

start_array() {
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	DEV=/dev/raidtool/$NAME
}

# deactivate, again while another raidtool command on this shared machine
# (which scans every block device) briefly holds the array's device open.
deactivate_array() {
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		run raidtool deactivate "$NAME"
		[[ "$status" != 0 && "$output" == *"is open in process "*"(raidtool)"* ]] || break
		sleep 0.5
	done
	assert_success
}

check_clean() {
	run raidtool check "$NAME"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "check done: 0 mismatches"
}

# The unit failing after the initial sync has finished.
fail_after_sync() {
	local level=$1 count=$2
	used_units "$count" 32
	create_used "$level"
	start_array
	run raidtool wait "$NAME"
	assert_success
	[ "$(status_json | jq -r .synced)" = true ]
	[ "$(list_status)" = active ]
	# A fresh array whose parity/copies were made to agree.
	check_clean
	fio_write 24M
	run raidtool fail "$NAME" 1
	assert_success
	[ "$(status_json | jq -r .health)" = degraded ]
	fio_verify_only 24M
}

# The unit failing while the initial sync runs (throttled so that it does):
# every write went in with parity computed from data.
fail_during_sync() {
	local level=$1 count=$2 st
	used_units "$count" 32
	create_used "$level"
	RAIDTOOL_SYNC_SPEED_MAX=512K start_array
	st=$(status_json)
	[ "$(jq -r .walk.kind <<<"$st")" = resyncing ] || fail "no resync running: $st"
	[ "$(jq -r .synced <<<"$st")" = false ]
	[[ "$(list_status)" == resyncing* ]] || fail "list says $(list_status)"
	run raidtool status "$NAME"
	assert_output --regexp "sync : not yet synced: [0-9]+ of [0-9]+ regions still to sync"
	fio_write 24M
	# Still in the middle of it when the unit goes.
	st=$(status_json)
	[ "$(jq -r .walk.running <<<"$st")" = true ] || fail "the sync ended too early: $st"
	[ "$(jq -r .synced <<<"$st")" = false ]
	run raidtool fail "$NAME" 1
	assert_success
	fio_verify_only 24M
}

@test "raid5 of 4 on used disks: initial sync, check 0, a unit fails after it: every acknowledged write reads back" {
	fail_after_sync 5 4
}

@test "raid5 of 5 on used disks: initial sync, check 0, a unit fails after it: every acknowledged write reads back" {
	fail_after_sync 5 5
}

@test "raid5 of 8 on used disks: initial sync, check 0, a unit fails after it: every acknowledged write reads back" {
	fail_after_sync 5 8
}

@test "raid1 on used disks: initial sync, check 0, a mirror fails after it: every acknowledged write reads back" {
	fail_after_sync 1 2
}

@test "raid5 of 4 on used disks: a unit fails in the middle of the initial sync: every acknowledged write reads back" {
	fail_during_sync 5 4
}

@test "raid5 of 5 on used disks: a unit fails in the middle of the initial sync: every acknowledged write reads back" {
	fail_during_sync 5 5
}

@test "raid5 of 8 on used disks: a unit fails in the middle of the initial sync: every acknowledged write reads back" {
	fail_during_sync 5 8
}

@test "raid1 on used disks: a mirror fails in the middle of the initial sync: every acknowledged write reads back" {
	fail_during_sync 1 2
}

@test "an initial sync stopped by deactivate goes on at the next activate and finishes with check 0" {
	used_units 3 32
	create_used 5
	RAIDTOOL_SYNC_SPEED_MAX=512K start_array
	deactivate_array
	# Stopped cleanly: clean, still not synced.
	[ "$(raidtool examine --json "${UNITS[0]}" 2>/dev/null | jq -r .array.state)" = clean ]
	[ "$(status_json | jq -r .synced)" = false ]
	[ "$(list_status)" = unsynced ]
	start_array
	run raidtool wait "$NAME"
	assert_success
	[ "$(status_json | jq -r .synced)" = true ]
	check_clean
	deactivate_array
	[ "$(raidtool examine --json "${UNITS[0]}" 2>/dev/null | jq -r .array.synced)" = true ]
}

@test "create --assume-clean on zeroed units: synced at once, no resync, check 0" {
	mapfile -t UNITS < <(make_images z 3 32M)
	run raidtool create "$NAME" --level 5 --chunk 64K --assume-clean "${UNITS[@]}"
	assert_success
	refute_output --partial "not yet synced"
	[ "$(status_json | jq -r .synced)" = true ]
	[ "$(list_status)" = clean ]
	start_array
	[ "$(status_json | jq -r .walk)" = null ]
	[ "$(list_status)" = active ]
	check_clean
}

@test "RAIDTOOL_SYNC_SPEED_MAX that is not a size: activate refuses, naming it, and writes nothing" {
	used_units 2 8
	run raidtool create "$NAME" --level 1 "${UNITS[@]}"
	assert_success
	before=$(checksums "${UNITS[@]}")
	RAIDTOOL_SYNC_SPEED_MAX=fast run raidtool activate "$NAME"
	assert_failure
	assert_output --partial "RAIDTOOL_SYNC_SPEED_MAX 'fast'"
	[ "$(checksums "${UNITS[@]}")" = "$before" ]
}

# take_unit_away I: the unit's image leaves (its loop device detached), as a dead disk.
take_unit_away() {
	losetup -d "$(loop_of "${UNITS[$1]}")"
	mv "${UNITS[$1]}" "$TESTDIR/away.img"
}

@test "raid5 stopped cleanly in the middle of its initial sync, then a unit gone: starts degraded, saying what is safe; every acknowledged write reads back" {
	used_units 3 32
	create_used 5
	RAIDTOOL_SYNC_SPEED_MAX=512K start_array
	fio_write 16M
	[ "$(status_json | jq -r .walk.running)" = true ]
	deactivate_array
	take_unit_away 1
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	stderr_has "the initial sync had not finished: role 1's blocks written through raidtool since the array was created are reconstructed from parity computed from their data"
	stderr_has "still to sync once the array is whole again"
	DEV=/dev/raidtool/$NAME
	[ "$(status_json | jq -r .health)" = degraded ]
	[ "$(status_json | jq -r .synced)" = false ]
	fio_verify_only 16M
}

@test "raid5 killed in the middle of its initial sync, then a unit gone: refused naming the write hole, --force starts it; every acknowledged write reads back" {
	local pid
	used_units 3 32
	create_used 5
	RAIDTOOL_SYNC_SPEED_MAX=512K start_array
	fio_write 16M
	[ "$(status_json | jq -r .walk.running)" = true ]
	pid=$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")
	kill -KILL "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	deactivate_array
	[ "$(list_status)" = "dirty, unsynced" ]
	take_unit_away 1
	before=$(checksums "${UNITS[0]}" "${UNITS[2]}")
	run --separate-stderr raidtool activate "$NAME"
	assert_failure
	stderr_has "its initial sync had not finished and it was not stopped cleanly"
	stderr_has "(the raid5 write hole)"
	[ "$(checksums "${UNITS[0]}" "${UNITS[2]}")" = "$before" ]
	run --separate-stderr raidtool activate --force "$NAME"
	assert_success
	DEV=/dev/raidtool/$NAME
	[ "$(status_json | jq -r .health)" = degraded ]
	fio_verify_only 16M
}
