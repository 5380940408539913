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
	fuse_setup jq
	RMWRACE=$(test_helper rt-rmwrace)
	faulty_setup
	LOOPS=()
}

teardown() {
	faulty_units_clear
	stop_arrays
	# Loops over our files, then every mount under TESTDIR (the tmpfs too).
	scratch_teardown
	faulty_units_stop
}

# create_start LEVEL: NAME on the UNITS, started.
create_start() {
	# Zeroed images (sparse files): no initial sync beside the test.
	run raidtool create "$NAME" --level "$1" --chunk 64K --assume-clean "${UNITS[@]}"
	assert_success
	run raidtool activate "$NAME"
	assert_success
}

# The array's first BYTES (from DEV) as a sha256.
array_sha() {
	dd if="/dev/raidtool/$NAME" bs=1M count=$(($1 >> 20)) iflag=direct status=none | sha256sum
}

# no_unit_faulty: every role active in the engine and in every superblock.
no_unit_faulty() {
	local u
	run status_json
	assert_success
	[ "$(jq -r '[.units[] | select(.state != "active")] | length' <<<"$output")" = 0 ] ||
		fail "a unit is not active: $output"
	for u in "$@"; do
		[ "$(raidtool examine --json "$u" | jq -r '[.roles[] | select(.state != "active")] | length')" = 0 ] ||
			fail "$u records a role that is not active: $(raidtool examine --json "$u" | jq -c .roles)"
	done
}

# tmpfs_units: a 40 MiB tmpfs at $TESTDIR/fs holding three sparse 24 MiB
# image files (UNITS): a raid5 of them (46 MiB) runs out of space first.
tmpfs_units() {
	local i
	mkdir -p "$TESTDIR/fs"
	mount -t tmpfs -o size=40M "$NAME" "$TESTDIR/fs"
	for i in 0 1 2; do
		truncate -s 24M "$TESTDIR/fs/u$i.img"
		UNITS+=("$TESTDIR/fs/u$i.img")
	done
}

@test "raid5 on a full tmpfs: writes fail with ENOSPC, no unit is failed, data stays; once it grows, writes work, restart, check 0" {
	local fs=$TESTDIR/fs
	tmpfs_units
	create_start 5
	head -c 16M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="/dev/raidtool/$NAME" bs=1M oflag=direct conv=fsync status=none
	# Fill the array: the tmpfs (40M) runs out long before the array (46M).
	# Random bytes, so that a stripe written on some units and not others
	# is inconsistent (zeros over the zeros of sparse units would not be).
	run dd if=/dev/urandom of="/dev/raidtool/$NAME" bs=1M seek=16 oflag=direct status=none
	assert_failure
	assert_output --partial "No space left on device"
	run status_json
	assert_success
	[ "$(jq -r .health <<<"$output")" = clean ] || fail "not clean: $output"
	[ "$(jq -r .no_space <<<"$output")" = true ] || fail "no space not shown: $output"
	[ "$(jq -r '[.units[] | select(.no_space)] | length' <<<"$output")" -gt 0 ]
	run raidtool status "$NAME"
	assert_output --partial "no space :"
	no_unit_faulty "${UNITS[@]}"
	[ "$(array_sha $((16 << 20)))" = "$(sha256sum < "$TESTDIR/data")" ]

	# Room again: writes work without a rebuild; the stripes the failed
	# writes left half-written are resynced.
	mount -o remount,size=200M "$fs"
	# Past where the fill failed (about 27M), so that it rewrites none of
	# the stripes it left half-written: only the resync can mend those.
	head -c 4M /dev/urandom > "$TESTDIR/more"
	run dd if="$TESTDIR/more" of="/dev/raidtool/$NAME" bs=1M seek=40 oflag=direct conv=fsync \
		status=none
	assert_success
	[ "$(status_json | jq -r .no_space)" = false ]
	# The engine looks for a resync owed once a second.
	for _ in $(seq 50); do
		grep -q "every unit takes writes again: resyncing" "$RAIDTOOL_RUNDIR/$NAME/log" &&
			break
		sleep 0.1
	done
	grep -q "every unit takes writes again: resyncing" "$RAIDTOOL_RUNDIR/$NAME/log" ||
		fail "no resync after the failed writes: $(cat "$RAIDTOOL_RUNDIR/$NAME/log")"
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "resync done"
	no_unit_faulty "${UNITS[@]}"
	check_clean
	run raidtool deactivate "$NAME"
	assert_success
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	# shellcheck disable=SC2154  # set by run --separate-stderr
	[[ "$stderr" != *degraded* ]] || fail "degraded: $stderr"
	no_unit_faulty "${UNITS[@]}"
	check_clean
	[ "$(array_sha $((16 << 20)))" = "$(sha256sum < "$TESTDIR/data")" ]
	[ "$(dd if="/dev/raidtool/$NAME" bs=1M skip=40 count=4 iflag=direct status=none | sha256sum)" = \
		"$(sha256sum < "$TESTDIR/more")" ]
}

@test "degraded raid5 out of space: a write that reached the parity but not its data chunk is undone, the missing role's data intact" {
	local fs=$TESTDIR/fs s off
	local -a stripes=(201 204)
	tmpfs_units
	create_start 5
	# Stripes s with s % 3 == 0: parity on role 2, data chunk 0 on role 0,
	# chunk 1 on role 1 (left-symmetric). Chunk 0 written: roles 0 and 2
	# hold it, role 1 stays a hole (zeros) the full tmpfs cannot fill.
	for s in "${stripes[@]}"; do
		head -c 64K /dev/urandom > "$TESTDIR/a$s"
		dd if="$TESTDIR/a$s" of="/dev/raidtool/$NAME" bs=64K seek=$((s * 2)) oflag=direct \
			conv=fsync status=none
	done
	run dd if=/dev/zero of="$fs/filler" bs=1M
	assert_failure
	# Written again (its blocks are there): the region's write-intent bit
	# is fresh, so that the first write below is mapped on the ring
	# (unmapped once the log has aged the bit out, after 5 s idle).
	[ "$(status_json | jq -r .fuse.transport)" = io_uring ]
	dd if="$TESTDIR/a${stripes[0]}" of="/dev/raidtool/$NAME" bs=64K seek=$((stripes[0] * 2)) \
		oflag=direct status=none
	# Role 0 gone: its chunk 0 lives only in parity ^ chunk 1 now.
	run raidtool fail "$NAME" 0
	assert_success
	# Chunk 1 of each stripe: read-modify-write; the parity (allocated)
	# takes its write, chunk 1's hole does not. The first is mapped on the
	# ring (its redo undoes it), the second, a unit being short of space
	# by then, goes the synchronous way (raid5_run_round undoes it).
	for s in "${stripes[@]}"; do
		head -c 64K /dev/urandom > "$TESTDIR/b$s"
		run dd if="$TESTDIR/b$s" of="/dev/raidtool/$NAME" bs=64K seek=$((s * 2 + 1)) \
			oflag=direct status=none
		assert_failure
		assert_output --partial "No space left on device"
	done
	[ "$(status_json | jq -r .no_space)" = true ]
	for s in "${stripes[@]}"; do
		run cmp <(dd if="/dev/raidtool/$NAME" bs=64K skip=$((s * 2)) count=1 iflag=direct \
			status=none) "$TESTDIR/a$s"
		assert_success
	done
	# Room again: the same writes succeed, chunk 0 still reads back.
	rm -f "$fs/filler"
	for s in "${stripes[@]}"; do
		dd if="$TESTDIR/b$s" of="/dev/raidtool/$NAME" bs=64K seek=$((s * 2 + 1)) \
			oflag=direct conv=fsync status=none
		off=$((s * 2))
		run cmp <(dd if="/dev/raidtool/$NAME" bs=64K skip=$off count=2 iflag=direct \
			status=none) <(cat "$TESTDIR/a$s" "$TESTDIR/b$s")
		assert_success
	done
}

@test "degraded raid5 --blocksize 512 out of space: a write widened to the units' block keeps the faulty role's bytes beside it" {
	local fs=$TESTDIR/fs s=201 u
	tmpfs_units
	for u in "${UNITS[@]}"; do
		LOOPS+=("$(losetup --sector-size 4096 --find --show "$u")")
	done
	run raidtool create "$NAME" --level 5 --chunk 64K --blocksize 512 --assume-clean "${LOOPS[@]}"
	assert_success
	run raidtool activate "$NAME"
	assert_success
	# Stripe s (s % 3 == 0): chunk 0 on role 0, chunk 1 on role 1, parity
	# on role 2. Chunk 1 written: roles 1 and 2 hold it, role 0 a hole.
	head -c 64K /dev/urandom > "$TESTDIR/x"
	dd if="$TESTDIR/x" of="/dev/raidtool/$NAME" bs=64K seek=$((s * 2 + 1)) oflag=direct \
		conv=fsync status=none
	run dd if=/dev/zero of="$fs/filler" bs=1M
	assert_failure
	run raidtool fail "$NAME" 1
	assert_success
	# Chunk 0 whole and the first 512 bytes of chunk 1, in one write: the
	# units' first 4 KiB of chunk 1 are written as a reconstruct-write with
	# the rest of that block read back (role 1's bytes from the parity);
	# the parity lands, chunk 0's hole does not.
	head -c $((64 * 1024 + 512)) /dev/urandom > "$TESTDIR/y"
	run dd if="$TESTDIR/y" of="/dev/raidtool/$NAME" bs=$((64 * 1024 + 512)) count=1 \
		seek=$((s * 128 * 1024)) oflag=direct,seek_bytes status=none
	assert_failure
	assert_output --partial "No space left on device"
	# Role 1's bytes past the write: what they were.
	run cmp <(dd if="/dev/raidtool/$NAME" bs=512 skip=$((s * 256 + 129)) count=127 \
		iflag=direct status=none) <(tail -c +513 "$TESTDIR/x")
	assert_success
	run raidtool deactivate "$NAME"
	assert_success
}

# faulty_raid5: NAME on three rt-faultyfs disks, 4 MiB of known data on it.
faulty_raid5() {
	[ -x "$FAULTYFS" ] || fail "build rt-faultyfs first (make all)"
	local i
	for i in 0 1 2; do
		faulty_unit "$i" 32M
	done
	create_start 5
	head -c 4M /dev/urandom > "$TESTDIR/data"
}

@test "a transient I/O error is tried again and does not fail the unit" {
	faulty_raid5
	run status_json
	[ "$(jq -r .io_retries.count <<<"$output")" = 3 ]
	[ "$(jq -r .io_retries.window_ms <<<"$output")" = 1000 ]
	# The next two writes to unit 1 fail, then it behaves.
	echo "fail write 0 0 2" > "$TESTDIR/ffs1/ctl"
	run dd if="$TESTDIR/data" of="/dev/raidtool/$NAME" bs=1M oflag=direct conv=fsync status=none
	assert_success
	grep -q "^failed_writes 2$" "$TESTDIR/ffs1/ctl" || fail "no fault injected: $(cat "$TESTDIR/ffs1/ctl")"
	run status_json
	[ "$(jq -r .health <<<"$output")" = clean ] || fail "not clean: $output"
	[ "$(jq -r '.units[] | select(.slot == 1) | .state' <<<"$output")" = active ]
	[ "$(jq -r '.units[] | select(.slot == 1) | .stats.retries' <<<"$output")" -ge 1 ]
	no_unit_faulty "${UNITS[@]}"
	grep -q "unit 1: write .* failed: Input/output error; trying again (1 of 3)" \
		"$RAIDTOOL_RUNDIR/$NAME/log"
	[ "$(array_sha $((4 << 20)))" = "$(sha256sum < "$TESTDIR/data")" ]
	check_clean
}

@test "a persistent I/O error fails the unit after the bounded tries; tune changes how many" {
	faulty_raid5
	run raidtool tune "$NAME" --io-retries 5 --io-retry-window 250
	assert_success
	assert_output --partial "up to 5 times within 250 ms"
	run status_json
	[ "$(jq -r .io_retries.count <<<"$output")" = 5 ]
	[ "$(jq -r .io_retries.window_ms <<<"$output")" = 250 ]
	run raidtool tune "$NAME" --io-retries 1000
	assert_failure
	assert_output --partial "out of range"
	[ "$(status_json | jq -r .io_retries.count)" = 5 ]
	echo "fail write" > "$TESTDIR/ffs1/ctl"
	run dd if="$TESTDIR/data" of="/dev/raidtool/$NAME" bs=1M oflag=direct conv=fsync status=none
	assert_success
	run status_json
	[ "$(jq -r .health <<<"$output")" = degraded ] || fail "not degraded: $output"
	[ "$(jq -r '.units[] | select(.slot == 1) | .state' <<<"$output")" = faulty ]
	[ "$(jq -r '.units[] | select(.slot == 1) | .stats.retries' <<<"$output")" -ge 5 ]
	grep -q "trying again (5 of 5)" "$RAIDTOOL_RUNDIR/$NAME/log"
	run grep -q "trying again (6 of" "$RAIDTOOL_RUNDIR/$NAME/log"
	assert_failure
	[ "$(raidtool examine --json "${UNITS[0]}" | jq -r '.roles[1].state')" = faulty ]
	[ "$(array_sha $((4 << 20)))" = "$(sha256sum < "$TESTDIR/data")" ]
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

@test "raid1: while a role is rebuilt, add makes a spare instead of advising to remove the rebuilding unit" {
	local spare extra
	[ -x "$FAULTYFS" ] || fail "build rt-faultyfs first (make all)"
	UNITS=("$(make_image u0.img 64M)" "$(make_image u1.img 64M)")
	create_start 1
	head -c 16M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="/dev/raidtool/$NAME" bs=1M oflag=direct conv=fsync status=none
	run raidtool fail "$NAME" 1
	assert_success
	run raidtool remove "$NAME" 1
	assert_success
	# A slow unit, so that its rebuild is still running below.
	faulty_unit 0 64M
	spare=${UNITS[2]}
	echo "delay 40" > "$TESTDIR/ffs0/ctl"
	run raidtool add "$NAME" "$spare"
	assert_success
	assert_output --partial "added to role 1; rebuilding"
	extra=$(make_image extra.img 64M)
	run raidtool add "$NAME" "$extra"
	assert_success
	assert_output --partial "added as a spare"
	refute_output --partial "remove it first"
	run raidtool remove "$NAME" 1
	assert_failure
	assert_output --partial "is being rebuilt"
	refute_output --regexp "removed from slot"
	echo clear > "$TESTDIR/ffs0/ctl"
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 1 done"
	run status_json
	[ "$(jq -r .health <<<"$output")" = clean ] || fail "not clean: $output"
	[ "$(jq -r '.units[] | select(.slot == 1) | .device' <<<"$output")" = "$spare" ]
	[ "$(jq -r '[.units[] | select(.state == "spare")] | length' <<<"$output")" = 1 ]
	check_clean
	[ "$(array_sha $((16 << 20)))" = "$(sha256sum < "$TESTDIR/data")" ]
}

@test "a unit whose superblock reads fail is named unreadable, not damaged: no --force advised, nothing written" {
	local before
	faulty_unit 0 32M
	# A former member (intact superblocks and data) whose disk fails reads for now.
	run raidtool create "${NAME}x" --level linear --assume-clean "${UNITS[0]}"
	assert_success
	before=$(sha256sum < "${BACKS[0]}")
	echo "fail read" > "$TESTDIR/ffs0/ctl"
	run --separate-stderr raidtool create "$NAME" --level linear "${UNITS[0]}"
	assert_failure
	[[ $stderr == *"'${UNITS[0]}': cannot read its superblocks: Input/output error"* ]] ||
		fail "not named a read error: $stderr"
	[[ $stderr != *damaged* && $stderr != *--force* ]] ||
		fail "an I/O error taken for damage (--force would wipe the unit): $stderr"
	echo clear > "$TESTDIR/ffs0/ctl"
	[ "$(sha256sum < "${BACKS[0]}")" = "$before" ] || fail "the unit was written"
	[ "$(raidtool examine --json "${UNITS[0]}" | jq -r .array.name)" = "${NAME}x" ]
}
