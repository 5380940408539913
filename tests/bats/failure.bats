#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# Failure and recovery on the run path: units failing real I/O (rt-faultyfs
# disks behind direct-I/O loop devices) under fio, the superblocks that
# record it, fail/remove, degraded starts and their refusals. Every test ends
# by checking the data against what was written.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	fuse_setup fio jq python3
	faulty_setup
	BGPIDS=()
}

teardown() {
	reap_bgpids
	# Faulty disks answer again, so that the array stops without hanging on them.
	faulty_units_clear
	# The array's loop device first (deactivate), then the units' loop
	# devices and the FUSE mounts (scratch_teardown: loops before mounts).
	stop_arrays
	# Loops over our files, then every mount under TESTDIR (faultyfs too).
	scratch_teardown
	faulty_units_stop
}

# new_faulty_array LEVEL COUNT SIZE: create NAME on COUNT faulty units and start it.
new_faulty_array() {
	local level=$1 count=$2 size=$3 i
	for ((i = 0; i < count; i++)); do
		faulty_unit "$i" "$size"
	done
	# Fresh zeroed images: no initial sync beside what each test does.
	run raidtool create "$NAME" --level "$level" --chunk 64K --assume-clean "${UNITS[@]}"
	assert_success
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	DEV=/dev/raidtool/$NAME
}

# new_array LEVEL COUNT SIZE [CREATE-OPTION...]: an array on plain image
# files (raidtool attaches them).
new_array() {
	local level=$1 count=$2 size=$3 i
	for ((i = 0; i < count; i++)); do
		UNITS+=("$(make_image "u$i.img" "$size")")
	done
	# Fresh sparse images read as zeros: no initial sync (initial-sync.bats
	# has those), so every walk a test waits for is the one it started.
	run raidtool create "$NAME" --level "$level" --chunk 64K --assume-clean "${@:4}" \
		"${UNITS[@]}"
	assert_success
}

start_array() {
	run --separate-stderr raidtool activate "$@" "$NAME"
	assert_success
	DEV=/dev/raidtool/$NAME
}

fail_disk() {
	echo "fail rw" > "$TESTDIR/ffs$1/ctl"
}

# fio_write SIZE [extra]: sequential writes with crc32c verify headers, so
# that a later fio_verify_only can check every block again.
FIO_COMMON=(--name=data --direct=1 --ioengine=io_uring --iodepth=8 --rw=write --bs=64k
	--verify=crc32c --verify_state_save=0 --output-format=terse --terse-version=3)

fio_verify_only() {
	run fio --filename="$DEV" "${FIO_COMMON[@]}" --size="$1" --verify_only=1
	assert_success
}

# Bytes the running engine has written to the array so far.
array_write_bytes() {
	status_json | jq -r .stats.write_bytes
}

# wait_written SINCE BYTES: until the array has taken BYTES more writes than
# SINCE (an array_write_bytes reading): the workload is really running.
wait_written() {
	local since=$1 bytes=$2 now=
	for _ in $(seq 150); do
		now=$(array_write_bytes)
		[ "$now" -ge $((since + bytes)) ] 2>/dev/null && return 0
		sleep 0.2
	done
	fail "the workload wrote $((${now:-0} - since)) of $bytes bytes in 30 s"
}

# Every unit's superblock records the array STATE (clean or dirty).
all_units_state() {
	local u st
	for u in "${UNITS[@]}"; do
		st=$(raidtool examine --json "$u" 2>/dev/null | jq -r .state)
		[ "$st" = "$1" ] || fail "superblock of $u is '$st', not '$1'"
	done
}

# The state of slot $2 in the role table of unit $1, as examine reads it.
examined_slot() {
	raidtool examine --json "$1" 2>/dev/null | jq -r ".roles[$2].state"
}

# The array's first $1 bytes, rebuilt from the raid5 units' data areas
# (left-symmetric, 64K chunks), into $2: proves what is on the disks.
raid5_from_images() {
	local bytes=$1 out=$2 dataoff
	dataoff=$(raidtool examine --json "${UNITS[0]}" 2>/dev/null | jq -r '.this_unit.data_offset')
	python3 - "$bytes" "$out" "$dataoff" "${BACKS[@]}" <<'PY'
import sys
nbytes, out, off = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
units = [open(p, 'rb') for p in sys.argv[4:]]
n, chunk = len(units), 65536
res = bytearray()
c = 0
while len(res) < nbytes:
    stripe, k = divmod(c, n - 1)
    p = (n - 1) - (stripe % n)
    role = (p + 1 + k) % n
    units[role].seek(off + stripe * chunk)
    res += units[role].read(chunk)
    c += 1
open(out, 'wb').write(res[:nbytes])
PY
}

# A unit fails mid-workload: fio sees no error, the array runs degraded, the
# failure is in status and in every remaining superblock, the data verifies
# (also after a restart, which starts degraded).
unit_fails_under_fio() {
	local level=$1 count=$2 size=24M rc i since
	new_faulty_array "$level" "$count" 48M
	since=$(array_write_bytes)
	fio --filename="$DEV" "${FIO_COMMON[@]}" --size="$size" --rate=8m --do_verify=1 \
		--verify_fatal=1 >"$TESTDIR/fio.out" 2>&1 &
	BGPIDS+=("$!")
	# Failed mid-workload: once fio has written 4 of its 24 MiB.
	wait_written "$since" $((4 << 20))
	fail_disk 1
	rc=0
	wait "${BGPIDS[0]}" || rc=$?
	[ "$rc" = 0 ] || fail "fio failed ($rc): $(cat "$TESTDIR/fio.out")"
	run status_json
	assert_success
	[ "$(jq -r .health <<<"$output")" = degraded ]
	[ "$(jq -r '.units[] | select(.slot == 1) | .state' <<<"$output")" = faulty ]
	[ "$(jq -r '.units[] | select(.slot == 1) | .stats.errors' <<<"$output")" -gt 0 ]
	for ((i = 0; i < count; i++)); do
		[ "$i" = 1 ] && continue
		[ "$(examined_slot "${UNITS[$i]}" 1)" = faulty ]
	done
	grep -q "role 1) failed; marked faulty" "$RAIDTOOL_RUNDIR/$NAME/log"
	fio_verify_only "$size"
	# Stopped and started again: degraded from the start, data intact.
	run raidtool deactivate "$NAME"
	assert_success
	start_array
	stderr_has "starting degraded: role 1 (faulty) missing"
	[ "$(status_json | jq -r .health)" = degraded ]
	fio_verify_only "$size"
}

@test "raid1: a unit failing under fio: no error, degraded, faulty in status and superblocks, data verifies" {
	unit_fails_under_fio 1 2
}

@test "raid5: a unit failing under fio: no error, degraded, faulty in status and superblocks, data verifies" {
	unit_fails_under_fio 5 3
}

@test "raid5: a second failure stops writes; data synced before is intact on the units" {
	new_faulty_array 5 3 40M
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	fail_disk 1
	# Degraded: reads reconstruct.
	run cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	fail_disk 2
	run dd if=/dev/zero of="$DEV" bs=64k count=64 seek=256 oflag=direct conv=fsync status=none
	assert_failure
	run status_json
	[ "$(jq -r .health <<<"$output")" = failed ]
	echo clear > "$TESTDIR/ffs1/ctl"
	echo clear > "$TESTDIR/ffs2/ctl"
	run raidtool deactivate "$NAME"
	raid5_from_images $((8 << 20)) "$TESTDIR/got"
	cmp "$TESTDIR/data" "$TESTDIR/got"
}

@test "fail and remove: a unit is failed by role, removed, its own superblock left stale" {
	new_array 1 3 40M
	start_array
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	run raidtool remove "$NAME" 2
	assert_failure
	assert_output --partial "is working; fail it first"
	run raidtool fail "$NAME" 2
	assert_success
	assert_output --partial "role 2"
	assert_output --partial "degraded"
	run raidtool fail "$NAME" 2
	assert_failure
	assert_output --partial "already faulty"
	run status_json
	[ "$(jq -r .health <<<"$output")" = degraded ]
	[ "$(jq -r '.units[] | select(.slot == 2) | .state' <<<"$output")" = faulty ]
	before=$(raidtool examine --json "${UNITS[2]}" 2>/dev/null | jq -r .events)
	run raidtool remove "$NAME" "$(loop_of "${UNITS[2]}")"
	assert_success
	assert_output --partial "removed from slot 2"
	[ "$(examined_slot "${UNITS[0]}" 2)" = missing ]
	[ "$(examined_slot "${UNITS[1]}" 2)" = missing ]
	[ "$(raidtool examine --json "${UNITS[2]}" 2>/dev/null | jq -r .events)" = "$before" ]
	[ "$(examined_slot "${UNITS[2]}" 2)" = active ]
	run raidtool fail "$NAME" 7
	assert_failure
	assert_output --partial "no such role"
	run cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	run raidtool deactivate "$NAME"
	assert_success
	# The removed unit is stale now: not used, and said so.
	start_array
	stderr_has "is stale"
	stderr_has "starting degraded: role 2 missing"
	run cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
}

@test "fail: a unit the level cannot spare is refused, nothing changed; --force fails it" {
	local before
	new_array 5 3 24M
	start_array
	run raidtool fail "$NAME" 1
	assert_success
	before=$(raidtool examine --json "${UNITS[0]}" 2>/dev/null | jq -r .events)
	# A second role of a raid5: the array would stop taking writes.
	run raidtool fail "$NAME" 2
	assert_failure 5
	assert_output --partial "role 2"
	assert_output --partial "could not take writes without it; nothing was changed"
	[ "$(status_json | jq -r .health)" = degraded ]
	[ "$(examined_slot "${UNITS[0]}" 2)" = active ]
	[ "$(raidtool examine --json "${UNITS[0]}" 2>/dev/null | jq -r .events)" = "$before" ]
	# Still writable (degraded), and what is written reads back.
	head -c 4M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M seek=4 oflag=direct conv=fsync status=none
	run cmp <(dd if="$DEV" bs=1M skip=4 count=4 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	# --force fails it anyway (what incremental --remove does for a device gone).
	run raidtool fail --force "$NAME" 2
	assert_success
	[ "$(status_json | jq -r .health)" = failed ]
	[ "$(examined_slot "${UNITS[0]}" 2)" = faulty ]
}

# Units gone: the array starts degraded and says which roles are missing.
degraded_start() {
	local level=$1 count=$2 gone=$3
	new_array "$level" "$count" 40M
	start_array
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	run raidtool deactivate "$NAME"
	assert_success
	for r in $gone; do
		losetup -d "$(loop_of "${UNITS[$r]}")"
		mv "${UNITS[$r]}" "$TESTDIR/away$r.img"
	done
	start_array
	stderr_has "starting degraded"
	[ "$(status_json | jq -r .health)" = degraded ]
	run cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
}

@test "raid1 with only one of three units starts degraded, data intact" {
	degraded_start 1 3 "0 2"
	stderr_has "roles 0, 2 missing"
}

@test "raid5 with one unit gone starts degraded, data intact" {
	degraded_start 5 3 1
	stderr_has "role 1 missing"
	# Writes go on degraded and read back.
	head -c 4M /dev/urandom > "$TESTDIR/more"
	dd if="$TESTDIR/more" of="$DEV" bs=1M seek=8 oflag=direct conv=fsync status=none
	run cmp <(dd if="$DEV" bs=1M skip=8 count=4 iflag=direct status=none) "$TESTDIR/more"
	assert_success
}

@test "raid5 with two units gone is refused, naming the roles" {
	new_array 5 3 40M
	run raidtool deactivate "$NAME"
	for r in 0 2; do
		losetup -d "$(loop_of "${UNITS[$r]}")"
		mv "${UNITS[$r]}" "$TESTDIR/away$r.img"
	done
	run raidtool activate "$NAME"
	assert_failure
	assert_output --partial "roles 0, 2 missing"
}

@test "raid5 degraded and dirty is refused without --force (write hole), starts with it" {
	new_array 5 3 40M
	start_array
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	kill_engine
	run raidtool deactivate "$NAME"
	assert_success
	all_units_state dirty
	losetup -d "$(loop_of "${UNITS[2]}")"
	mv "${UNITS[2]}" "$TESTDIR/away.img"
	sums=$(checksums "${UNITS[0]}" "${UNITS[1]}")
	run raidtool activate "$NAME"
	[ "$status" -eq 5 ]
	assert_output --partial "not stopped cleanly"
	assert_output --partial "write hole"
	assert_output --partial "--force"
	[ "$(checksums "${UNITS[0]}" "${UNITS[1]}")" = "$sums" ]
	start_array --force
	stderr_has "write hole"
	# No resync without redundancy (it failed, "Device or resource busy"):
	# the regions wait for the array to be whole again.
	stderr_has "not stopped cleanly: 1 of"
	stderr_has "regions still to sync once the array is whole again"
	run raidtool wait "$NAME"
	assert_success
	refute_output --partial "failed"
	run cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
}

@test "raid5 forced dirty start made whole: a check right after the rebuild does not leave it dirty at the stop" {
	new_array 5 3 40M
	start_array
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	kill_engine
	run raidtool deactivate "$NAME"
	assert_success
	losetup -d "$(loop_of "${UNITS[2]}")"
	mv "${UNITS[2]}" "$TESTDIR/away.img"
	start_array --force
	stderr_has "regions still to sync once the array is whole again"
	fresh=$(make_image fresh.img 40M)
	run raidtool add "$NAME" "$fresh"
	assert_success
	UNITS[2]=$fresh
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 2 done"
	# At once, before the supervisor's next look starts the owed resync:
	# the check runs instead, and the resync is still owed at the stop.
	run raidtool check "$NAME"
	run raidtool wait "$NAME"
	assert_success
	run raidtool deactivate "$NAME"
	assert_success
	assert_output --partial "superblocks marked clean"
	all_units_state clean
	# Clean, so a degraded start needs no --force.
	losetup -d "$(loop_of "${UNITS[1]}")"
	mv "${UNITS[1]}" "$TESTDIR/away1.img"
	start_array
	run cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
}

@test "raid1 degraded and dirty starts (no write hole)" {
	new_array 1 2 40M
	start_array
	head -c 4M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	kill_engine
	run raidtool deactivate "$NAME"
	assert_success
	assert_output --partial "had died"
	# An unclean stop: every superblock still says dirty.
	all_units_state dirty
	losetup -d "$(loop_of "${UNITS[1]}")"
	mv "${UNITS[1]}" "$TESTDIR/away.img"
	start_array
	stderr_has "starting degraded"
	run cmp <(dd if="$DEV" bs=1M count=4 iflag=direct status=none) "$TESTDIR/data"
	assert_success
}

# corrupt_chunk I: random bytes over the 64K chunk 1 MiB into unit I's data
# area, behind the engine's back; what was written is kept in $TESTDIR/bad.
corrupt_chunk() {
	local dataoff
	dataoff=$(raidtool examine --json "${UNITS[$1]}" 2>/dev/null | jq -r '.this_unit.data_offset')
	head -c 64K /dev/urandom > "$TESTDIR/bad"
	dd if="$TESTDIR/bad" of="${UNITS[$1]}" bs=64k count=1 seek=$(( (dataoff + (1 << 20)) / 65536 )) \
		oflag=direct conv=notrunc status=none
}

# chunk_of I: the 64K chunk 1 MiB into unit I's data area, on stdout.
chunk_of() {
	data_area "${UNITS[$1]}" $(((1 << 20) + 65536)) | tail -c 65536
}

# written_and_checked LEVEL COUNT: 16 MiB of random data ($TESTDIR/data) on a
# new running array, and a check that finds nothing.
written_and_checked() {
	new_array "$1" "$2" 40M
	start_array
	head -c 16M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	run raidtool check "$NAME"
	assert_success
	assert_output --partial "check started"
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "check done: 0 mismatches"
}

# repair_done [OPTIONS]: a repair runs to its end; its text result in $output.
repair_done() {
	run raidtool check --repair "$@" "$NAME"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "repair done: 1 mismatches, 1 repaired"
}

# check_corrupt LEVEL COUNT: check finds 0 on written data; a chunk
# overwritten behind the engine's back is counted; repair fixes it; check 0.
check_corrupt() {
	local level=$1 count=$2
	written_and_checked "$level" "$count"
	# Unit 1's chunk: raid5 x3 keeps stripe 16's parity there.
	corrupt_chunk 1
	run raidtool check "$NAME"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	[[ "$output" != *"check done: 0 mismatches"* ]] || fail "corruption not found: $output"
	[ "$(status_json | jq -r .walk.mismatches)" -gt 0 ]
	run raidtool check --repair --json "$NAME"
	assert_success
	assert_equal "$(jq -r .request <<< "$output")" repair
	run raidtool wait --json "$NAME"
	assert_success
	assert_equal "$(jq -r '.walk, .result' <<< "$output" | xargs)" "repairing done"
	[ "$(jq -r .repaired <<< "$output")" -gt 0 ]
	if [ "$level" = 1 ]; then
		# Two mirrors have no majority: the repair says whose copy it kept.
		assert_equal "$(jq -c .kept_roles <<< "$output")" "[0]"
	else
		assert_equal "$(jq -r .repair_method <<< "$output")" parity-from-data
	fi
	check_clean
	# raid5: parity was rewritten from the data; raid1: role 0's intact copy
	# was kept. Either way what was written reads back.
	run cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	if [ "$level" = 1 ]; then
		# The copies agree byte for byte, the corrupted chunk included.
		same_data_area "${UNITS[0]}" "${UNITS[1]}" $((16 << 20))
	fi
}

@test "raid1 x3: role 0's copy corrupted, repair restores the majority's bytes on it" {
	written_and_checked 1 3
	corrupt_chunk 0
	repair_done
	[[ "$output" != *tied* ]] || fail "a majority repair reported a tie: $output"
	run status_json
	[ "$(jq -r .walk.repair_method <<<"$output")" = majority ]
	[ "$(jq -r '.walk.kept_roles | length' <<<"$output")" = 0 ]
	cmp <(chunk_of 0) <(chunk_of 1)
	same_data_area "${UNITS[0]}" "${UNITS[1]}" $((16 << 20))
	same_data_area "${UNITS[0]}" "${UNITS[2]}" $((16 << 20))
	run cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	check_clean
}

@test "raid1 x2: repair --prefer 1 keeps role 1's bytes; --prefer refused where it has no meaning" {
	written_and_checked 1 2
	run raidtool check --prefer 1 "$NAME"
	assert_failure 2
	assert_output --partial "--prefer needs --repair"
	run raidtool check --repair --prefer 2 "$NAME"
	assert_failure
	assert_output --partial "no such role"
	corrupt_chunk 1
	repair_done --prefer 1
	assert_output --partial "where the mirrors tied, kept the copy of role 1"
	# Role 1's (corrupted) copy won: both mirrors now hold its bytes.
	cmp <(chunk_of 0) "$TESTDIR/bad"
	cmp <(chunk_of 1) "$TESTDIR/bad"
	same_data_area "${UNITS[0]}" "${UNITS[1]}" $((16 << 20))
	run cmp <(dd if="$DEV" bs=64k skip=16 count=1 iflag=direct status=none) "$TESTDIR/bad"
	assert_success
	check_clean
}

@test "raid5: repair recomputes parity from the data, so a damaged data chunk stays damaged" {
	written_and_checked 5 3
	run raidtool check --repair --prefer 0 "$NAME"
	assert_failure
	assert_output --partial "recomputes the parity from the data"
	# Stripe 16 of raid5 x3: parity on role 1, array chunk 33 on role 0.
	corrupt_chunk 0
	repair_done
	assert_output --partial "parity recomputed from the data"
	check_clean
	# The parity now agrees with the damaged chunk: it reads back damaged ...
	run cmp <(dd if="$DEV" bs=64k skip=33 count=1 iflag=direct status=none) "$TESTDIR/bad"
	assert_success
	# ... and everything else as written.
	run cmp <(dd if="$DEV" bs=64k count=33 iflag=direct status=none) \
		<(head -c $((33 * 65536)) "$TESTDIR/data")
	assert_success
	run cmp <(dd if="$DEV" bs=64k skip=34 count=222 iflag=direct status=none) \
		<(tail -c +$((34 * 65536 + 1)) "$TESTDIR/data")
	assert_success
	# raidtool(8) says so.
	grep -q "recomputes the parity from the data" "$TOP/man/raidtool.8"
}

@test "raid5: check 0, a corrupted chunk is counted, repair fixes it, check 0" {
	check_corrupt 5 3
}

@test "raid1: check 0, a corrupted copy is counted, repair makes the copies agree, check 0" {
	check_corrupt 1 2
}

@test "check: nothing to wait for, no redundancy on raid0, unknown array" {
	new_array 0 2 40M
	start_array
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "nothing to wait for"
	run raidtool check "$NAME"
	assert_failure
	assert_output --partial "no redundancy"
	run raidtool check nosuch"$NAME"
	assert_failure
}

all_active() {
	run status_json
	assert_success
	[ "$(jq -r .health <<<"$output")" = clean ] || fail "not clean: $output"
	[ "$(jq -r '[.units[] | select(.state != "active")] | length' <<<"$output")" = 0 ] ||
		fail "not all active: $output"
}

# data_area UNIT BYTES: the first BYTES of UNIT's data area (at the data
# offset its own superblock records), on stdout.
data_area() {
	local off
	off=$(raidtool examine --json "$1" 2>/dev/null | jq -r '.this_unit.data_offset')
	[ -n "$off" ] && [ "$off" != null ] || return 1
	dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$2" status=none
}

# same_data_area A B BYTES: byte for byte the same data in both units.
same_data_area() {
	cmp <(data_area "$1" "$3") <(data_area "$2" "$3") ||
		fail "data areas of $1 and $2 differ in the first $3 bytes"
}

# rebuild_under_load LEVEL COUNT: known data written, unit 1 failed after
# it (so it holds all of it) and removed, a fresh unit added and rebuilt
# while fio writes further on; the fresh unit's data area equals the failed
# unit's over the known data, byte for byte; check 0; everything verifies.
rebuild_under_load() {
	local level=$1 count=$2 rc fresh role_bytes since
	new_array "$level" "$count" 64M
	start_array
	head -c 16M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	# Array bytes [0, 16M) are role bytes [0, 16M) of a mirror, [0, 8M) of a raid5 x3.
	role_bytes=$((16 << 20))
	[ "$level" = 5 ] && role_bytes=$(( (16 << 20) / (count - 1) ))
	run raidtool fail "$NAME" 1
	assert_success
	run raidtool remove "$NAME" 1
	assert_success
	since=$(array_write_bytes)
	fio --filename="$DEV" "${FIO_COMMON[@]}" --offset=32M --size=24M --rate=8m --do_verify=1 \
		--verify_fatal=1 >"$TESTDIR/fio.out" 2>&1 &
	BGPIDS+=("$!")
	# Added while fio writes: once it has written 4 of its 24 MiB.
	wait_written "$since" $((4 << 20))
	fresh=$(make_image fresh.img 64M)
	run raidtool add "$NAME" "$fresh"
	assert_success
	assert_output --partial "added to role 1; rebuilding"
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 1 done"
	rc=0
	wait "${BGPIDS[0]}" || rc=$?
	[ "$rc" = 0 ] || fail "fio failed ($rc): $(cat "$TESTDIR/fio.out")"
	all_active
	[ "$(examined_slot "$fresh" 1)" = active ]
	check_clean
	run fio --filename="$DEV" "${FIO_COMMON[@]}" --offset=32M --size=24M --verify_only=1
	assert_success
	run cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	# The rebuilt unit holds what the failed one held, byte for byte.
	same_data_area "${UNITS[1]}" "$fresh" "$role_bytes"
}

@test "raid1: fail, remove, add a fresh unit under fio: rebuilt, check 0, data verifies" {
	rebuild_under_load 1 2
}

@test "raid5: fail, remove, add a fresh unit under fio: rebuilt, check 0, data verifies" {
	rebuild_under_load 5 3
}

@test "rebuild interrupted by deactivate resumes from its checkpoint at the next start" {
	local fresh off
	new_array 1 2 1G
	start_array
	head -c 16M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	raidtool fail "$NAME" 1
	raidtool remove "$NAME" 1
	fresh=$(make_image fresh.img 1G)
	run raidtool add "$NAME" "$fresh"
	assert_success
	run raidtool deactivate "$NAME"
	assert_success
	[ "$(examined_slot "$fresh" 1)" = rebuilding ]
	off=$(raidtool examine --json "$fresh" 2>/dev/null | jq -r '.roles[1].recovery_offset')
	[ "$off" -gt 0 ] || fail "no checkpoint recorded: $off"
	start_array
	stderr_has "resuming the rebuild of role 1"
	stderr_has "at $off bytes"
	run status_json
	[ "$(jq -r .walk.kind <<<"$output")" = rebuilding ]
	[ "$(jq -r .walk.done <<<"$output")" -ge "$off" ]
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 1 done"
	all_active
	check_clean
	run cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/data"
	assert_success
}

@test "raid1 x3: two roles rebuilding, stopped mid-rebuild: the start resumes one, the other follows it; wait waits for both" {
	local s1 s2 st
	new_array 1 3 32M
	start_array
	head -c 16M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	raidtool fail "$NAME" 1 >/dev/null
	raidtool remove "$NAME" 1 >/dev/null
	raidtool fail "$NAME" 2 >/dev/null
	raidtool remove "$NAME" 2 >/dev/null
	run raidtool deactivate "$NAME"
	assert_success
	# Added while stopped: both missing roles take a unit, both rebuilding.
	s1=$(make_image s1.img 32M)
	s2=$(make_image s2.img 32M)
	run raidtool add "$NAME" "$s1" "$s2"
	assert_success
	[ "$(examined_slot "$s1" 1)" = rebuilding ]
	[ "$(examined_slot "$s1" 2)" = rebuilding ]
	# Slow, so that the stop comes in the middle of the first rebuild.
	RAIDTOOL_SYNC_SPEED_MAX=2M start_array
	run status_json
	[ "$(jq -r .walk.kind <<<"$output")" = rebuilding ]
	[ "$(jq -r .walk.running <<<"$output")" = true ] || fail "no walk runs: $output"
	run raidtool deactivate "$NAME"
	assert_success
	[ "$(examined_slot "$s1" 1)" = rebuilding ]
	[ "$(examined_slot "$s1" 2)" = rebuilding ]
	start_array
	stderr_has "resuming the rebuild of role 1"
	# The end of the first rebuild starts the second: one wait covers both.
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 2 done"
	grep -q "resuming the rebuild of role 2 onto '.*' at 0 bytes" \
		"$RAIDTOOL_RUNDIR/$NAME/log" || fail "$(cat "$RAIDTOOL_RUNDIR/$NAME/log")"
	all_active
	for st in "$s1" "$s2"; do
		[ "$(examined_slot "$st" 1)" = active ]
		[ "$(examined_slot "$st" 2)" = active ]
	done
	check_clean
	run cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	# Each former spare holds the copy, byte for byte.
	same_data_area "${UNITS[0]}" "$s1" $((16 << 20))
	same_data_area "${UNITS[0]}" "$s2" $((16 << 20))
	# Role 2's unit serves the data alone once the other mirrors failed.
	[ "$(examined_slot "$s2" 2)" = active ]
	[ "$(raidtool examine --json "$s2" | jq -r .this_unit.slot)" = 2 ] || fail "s2 not in role 2"
	raidtool fail "$NAME" 0 >/dev/null
	raidtool fail "$NAME" 1 >/dev/null
	run cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/data"
	assert_success
}

@test "raid5 killed during random writes: only the dirty regions are resynced, check 0" {
	local n m since
	# Zeroed images: no initial sync, so the log holds only what this run wrote.
	new_array 5 3 512M
	start_array
	# Known data just past the random writes, in the same (first) region.
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M seek=100 oflag=direct conv=fsync status=none
	since=$(array_write_bytes)
	fio --filename="$DEV" --name=rand --direct=1 --ioengine=io_uring --iodepth=8 \
		--rw=randwrite --bs=4k --size=100M --time_based --runtime=30 \
		>"$TESTDIR/fio.out" 2>&1 &
	BGPIDS+=("$!")
	# Killed in the middle of the random writes (4 MiB of them done).
	wait_written "$since" $((4 << 20))
	kill_engine
	wait "${BGPIDS[0]}" || true
	BGPIDS=()
	run raidtool deactivate "$NAME"
	assert_success
	# examine shows the log every unit kept: only the first region is dirty.
	local u log
	for u in "${UNITS[@]}"; do
		log=$(raidtool examine --json "$u" | jq -c .dirty_log)
		[ "$(jq -r .status <<<"$log")" = valid ] || fail "log of $u: $log"
		[ "$(jq -c .dirty_regions <<<"$log")" = "[0]" ] || fail "log of $u: $log"
	done
	run raidtool examine "${UNITS[0]}"
	assert_output --regexp "dirty-region log: 1 of [0-9]+ regions dirty .*: 0"
	start_array
	# shellcheck disable=SC2154  # set by run --separate-stderr
	[[ "$stderr" =~ resyncing\ ([0-9]+)\ of\ ([0-9]+)\ regions ]] ||
		fail "no resync announced: $stderr"
	n=${BASH_REMATCH[1]}
	m=${BASH_REMATCH[2]}
	[ "$n" -eq 1 ] && [ $((n * 4)) -lt "$m" ] || fail "resyncing $n of $m regions"
	[ "$(status_json | jq -r .walk.kind)" = resyncing ]
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "resync done"
	check_clean
	run cmp <(dd if="$DEV" bs=1M skip=100 count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	# Stopped cleanly after the resync: nothing to do at the next start.
	run raidtool deactivate "$NAME"
	assert_success
	start_array
	[[ "$stderr" != *resyncing* ]] || fail "resync again: $stderr"
	run raidtool deactivate "$NAME"
	assert_success
	[ "$(raidtool examine --json "${UNITS[1]}" | jq .dirty_log.dirty)" -eq 0 ]
}

@test "add to a running array refuses a unit of another array, changing nothing" {
	local other
	new_array 5 3 64M
	start_array
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	raidtool fail "$NAME" 2
	raidtool remove "$NAME" 2
	other=$(make_image other0.img 64M)
	run raidtool create "${NAME}o" --level 1 "$other" "$(make_image other1.img 64M)"
	assert_success
	sums=$(checksums "$other")
	run raidtool add "$NAME" "$other"
	assert_failure
	assert_output --partial "is a unit of array '${NAME}o'"
	[ "$(checksums "$other")" = "$sums" ]
	[ "$(status_json | jq -r .health)" = degraded ]
	run cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
}

@test "a stale unit offered back with add is not trusted: rebuilt where it missed writes" {
	new_array 5 3 64M
	start_array
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	raidtool fail "$NAME" 1
	raidtool remove "$NAME" 1
	# Written since: the removed unit's copy is out of date.
	head -c 8M /dev/urandom > "$TESTDIR/more"
	dd if="$TESTDIR/more" of="$DEV" bs=1M seek=8 oflag=direct conv=fsync status=none
	run raidtool add "$NAME" "${UNITS[1]}"
	assert_success
	assert_output --partial "re-added to role 1: 1 of 1 regions to rebuild"
	run raidtool wait "$NAME"
	assert_success
	all_active
	check_clean
	run cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	run cmp <(dd if="$DEV" bs=1M skip=8 count=8 iflag=direct status=none) "$TESTDIR/more"
	assert_success
	restart_all_agree
}

# Stop and start again: every unit agrees on the table, none is stale.
restart_all_agree() {
	run raidtool deactivate "$NAME"
	assert_success
	start_array
	[[ "$stderr" != *stale* ]] || fail "a unit is still stale: $stderr"
	all_active
}

# The regions a re-add announced: sets REGIONS and TOTAL from "N of M regions".
readd_regions() {
	[[ "$1" =~ re-added\ to\ role\ [0-9]+:\ ([0-9]+)\ of\ ([0-9]+)\ regions ]] ||
		fail "no partial re-add announced: $1"
	REGIONS=${BASH_REMATCH[1]}
	TOTAL=${BASH_REMATCH[2]}
}

@test "raid5: a unit failed, removed and added back is rebuilt only in the regions written meanwhile" {
	# Zeroed images: no initial sync, so the log holds only what was written.
	new_array 5 3 1G
	start_array
	head -c 32M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	run raidtool fail "$NAME" 1
	assert_success
	run raidtool remove "$NAME" 1
	assert_success
	# Written while it was out: array 600M is role offset 300M, log region 4 of 16.
	head -c 8M /dev/urandom > "$TESTDIR/more"
	dd if="$TESTDIR/more" of="$DEV" bs=1M seek=600 oflag=direct conv=fsync status=none
	head -c 4M /dev/urandom > "$TESTDIR/head"
	dd if="$TESTDIR/head" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	run raidtool add "$NAME" "${UNITS[1]}"
	assert_success
	readd_regions "$output"
	[ "$REGIONS" -ge 2 ] && [ "$REGIONS" -le 3 ] && [ "$TOTAL" -eq 16 ] ||
		fail "rebuilding $REGIONS of $TOTAL regions"
	run status_json
	[ "$(jq -r .walk.kind <<<"$output")" = rebuilding ]
	[ "$(jq -r .walk.regions_total <<<"$output")" = "$REGIONS" ]
	[ "$(jq -r .walk.total <<<"$output")" -le $((REGIONS * 64 << 20)) ]
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 1 done: $REGIONS of $REGIONS regions"
	all_active
	[ "$(examined_slot "${UNITS[1]}" 1)" = active ]
	# The same unit again, not a new member: its UUID is the role's.
	[ "$(raidtool examine --json "${UNITS[0]}" | jq -r .roles[1].uuid)" = \
		"$(raidtool examine --json "${UNITS[1]}" | jq -r .this_unit.uuid)" ]
	check_clean
	head -c 4M "$TESTDIR/head" > "$TESTDIR/want"
	tail -c +$((4 * 1024 * 1024 + 1)) "$TESTDIR/data" >> "$TESTDIR/want"
	run cmp <(dd if="$DEV" bs=1M count=32 iflag=direct status=none) "$TESTDIR/want"
	assert_success
	run cmp <(dd if="$DEV" bs=1M skip=600 count=8 iflag=direct status=none) "$TESTDIR/more"
	assert_success
	restart_all_agree
	run cmp <(dd if="$DEV" bs=1M skip=600 count=8 iflag=direct status=none) "$TESTDIR/more"
	assert_success
}

@test "a unit added back holds the write-intent log as it stands: the other unit failing next, a crash, then re-adding it rebuilds what it missed" {
	new_array 1 2 64M
	start_array
	run raidtool deactivate "$NAME"
	assert_success
	losetup -d "$(loop_of "${UNITS[1]}")"
	mv "${UNITS[1]}" "$TESTDIR/away.img"
	start_array
	# Marked in role 0's log only: role 1 is away, its copy says nothing.
	head -c 4M /dev/urandom > "$TESTDIR/b"
	dd if="$TESTDIR/b" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	mv "$TESTDIR/away.img" "${UNITS[1]}"
	run raidtool add "$NAME" "${UNITS[1]}"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	all_active
	# The region is marked already: no log write for these.
	head -c 4M /dev/urandom > "$TESTDIR/c"
	dd if="$TESTDIR/c" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	run raidtool fail "$NAME" 0
	assert_success
	kill_engine
	run raidtool deactivate "$NAME"
	assert_success
	# Role 1's log must say the region was being written.
	start_array
	run raidtool add "$NAME" "$(loop_of "${UNITS[0]}")"
	assert_success
	readd_regions "$output"
	[ "$REGIONS" -ge 1 ] || fail "re-added with $REGIONS regions to rebuild: $output"
	run raidtool wait "$NAME"
	assert_success
	# Reads from role 0 alone: what it holds now.
	run raidtool fail "$NAME" 1
	assert_success
	run cmp <(dd if="$DEV" bs=1M count=4 iflag=direct status=none) "$TESTDIR/c"
	assert_success
}

@test "raid1 activated without a unit, the unit added back: rebuilt only in the regions written meanwhile" {
	local u0 u1
	# Zeroed images: no initial sync, so the log holds only what was written.
	new_array 1 2 1G
	start_array
	head -c 16M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	run raidtool deactivate "$NAME"
	assert_success
	losetup -d "$(loop_of "${UNITS[1]}")"
	mv "${UNITS[1]}" "$TESTDIR/away.img"
	start_array
	stderr_has "starting degraded: role 1 missing"
	head -c 8M /dev/urandom > "$TESTDIR/more"
	dd if="$TESTDIR/more" of="$DEV" bs=1M seek=300 oflag=direct conv=fsync status=none
	mv "$TESTDIR/away.img" "${UNITS[1]}"
	run raidtool add "$NAME" "${UNITS[1]}"
	assert_success
	readd_regions "$output"
	[ "$REGIONS" -eq 1 ] && [ "$TOTAL" -eq 16 ] || fail "rebuilding $REGIONS of $TOTAL regions"
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 1 done: 1 of 1 regions"
	all_active
	check_clean
	# The mirrors hold the same bytes, the re-added one included.
	u0=${UNITS[0]}
	u1=${UNITS[1]}
	same_data_area "$u0" "$u1" $((512 << 20))
	run cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	run cmp <(dd if="$DEV" bs=1M skip=300 count=8 iflag=direct status=none) "$TESTDIR/more"
	assert_success
}

@test "a unit that failed an I/O is rebuilt in full when added back" {
	new_faulty_array 1 2 256M
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	fail_disk 1
	dd if="$TESTDIR/data" of="$DEV" bs=1M seek=64 oflag=direct conv=fsync status=none
	[ "$(status_json | jq -r '.units[] | select(.slot == 1) | .state')" = faulty ]
	echo clear > "$TESTDIR/ffs1/ctl"
	run raidtool remove "$NAME" 1
	assert_success
	run raidtool add "$NAME" "${UNITS[1]}"
	assert_success
	assert_output --partial "added to role 1; rebuilding in the background (in full: it failed an I/O"
	[[ "$output" != *re-added* ]] || fail "partial re-add of a unit that failed an I/O"
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 1 done; the array is clean"
	check_clean
	same_data_area "${UNITS[0]}" "${UNITS[1]}" $((200 << 20))
	run cmp <(dd if="$DEV" bs=1M skip=64 count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
}

@test "a unit that left before the log was last cleared is rebuilt in full" {
	local fresh
	new_array 1 2 256M
	start_array
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	raidtool fail "$NAME" 1
	raidtool remove "$NAME" 1
	# Another unit takes the role; once whole, the array clears idle regions.
	fresh=$(make_image fresh.img 256M)
	run raidtool add "$NAME" "$fresh"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	dd if="$TESTDIR/data" of="$DEV" bs=1M seek=128 oflag=direct conv=fsync status=none
	for _ in $(seq 30); do
		[ "$(raidtool examine --json "${UNITS[0]}" | jq .dirty_log.dirty)" = 0 ] && break
		sleep 1
	done
	[ "$(raidtool examine --json "${UNITS[0]}" | jq .dirty_log.dirty)" = 0 ] ||
		fail "the log was not cleared"
	# The first unit missed that clearing: the log does not cover it.
	raidtool fail "$NAME" 1
	raidtool remove "$NAME" 1
	run raidtool add "$NAME" "${UNITS[1]}"
	assert_success
	assert_output --partial "(in full: it left before the dirty-region log was last cleared)"
	run raidtool wait "$NAME"
	assert_success
	check_clean
	same_data_area "${UNITS[0]}" "${UNITS[1]}" $((200 << 20))
	run cmp <(dd if="$DEV" bs=1M skip=128 count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
}

@test "a spare present when a unit fails takes its role at once and is rebuilt onto" {
	local spare extra failed_uuid failed_hash spare_uuid
	new_array 1 2 64M
	start_array
	spare=$(make_image spare.img 64M)
	run raidtool add "$NAME" "$spare"
	assert_success
	assert_output --partial "added as a spare (slot 2)"
	head -c 16M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	failed_uuid=$(raidtool examine --json "${UNITS[0]}" | jq -r .this_unit.uuid)
	failed_hash=$(raidtool examine --json "${UNITS[0]}" | jq -r .this_unit.hashcode)
	spare_uuid=$(raidtool examine --json "$spare" | jq -r .this_unit.uuid)
	run raidtool fail "$NAME" 0
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 0 done; the array is clean"
	grep -q "spare '.*' takes the place of failed role 0" "$RAIDTOOL_RUNDIR/$NAME/log"
	# Each unit keeps its own identity in status: the failed one is not listed as the spare.
	run status_json
	[ "$(jq -r '.units[] | select(.slot == 0) | .uuid' <<<"$output")" = "$spare_uuid" ]
	[ "$(jq -r '.units[] | select(.slot == 2) | .uuid' <<<"$output")" = "$failed_uuid" ]
	[ "$(examined_slot "$spare" 0)" = active ]
	[ "$(examined_slot "$spare" 2)" = faulty ]
	run status_json
	[ "$(jq -r .health <<<"$output")" = clean ]
	[ "$(jq -r '.units[] | select(.slot == 0) | .device' <<<"$output")" = "$(loop_of "$spare")" ]
	[ "$(jq -r '.units[] | select(.slot == 2) | .state' <<<"$output")" = faulty ]
	# The failed unit saw every write: the spare now holds the same bytes.
	same_data_area "${UNITS[0]}" "$spare" $((16 << 20))
	check_clean
	# By its hashcode too, as every unit can be named.
	run raidtool remove "$NAME" "$failed_hash"
	assert_success
	assert_output --partial "removed from slot 2"
	run cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	run raidtool deactivate "$NAME"
	assert_success
	start_array
	[[ "$stderr" != *degraded* ]] || fail "degraded after the spare took over: $stderr"
	all_active
	# The slot a removed unit left is taken again, running and stopped: the
	# role table does not grow with every replacement (it was full after 62).
	run raidtool add "$NAME" "$(loop_of "${UNITS[0]}")"
	assert_success
	assert_output --partial "added as a spare (slot 2)"
	run raidtool remove "$NAME" "$(loop_of "${UNITS[0]}")"
	assert_success
	run raidtool deactivate "$NAME"
	assert_success
	extra=$(make_image extra.img 64M)
	run raidtool add "$NAME" "$extra"
	assert_success
	[ "$(examined_slot "$extra" 2)" = spare ]
	[ "$(raidtool examine --json "$extra" | jq '.roles | length')" = 3 ]
}

@test "add of a device that hangs its I/O holds up neither a unit failing meanwhile nor status; it is then refused, changing nothing" {
	local new t0 t1 pid
	require_python
	new_faulty_array 1 2 32M
	head -c 4M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	# The device offered: every read and write of it waits 25 s. Sent on
	# the engine's socket: the command line's own scan of block devices
	# would wait on the device first (as blkid would).
	faulty_unit 2 32M
	new=${UNITS[2]}
	echo "delay 25000" > "$TESTDIR/ffs2/ctl"
	control_raw "add $new" > "$TESTDIR/add.out" 2>&1 &
	pid=$!
	BGPIDS+=("$pid")
	sleep 1	# the engine is in its probe: opened, reading its superblock
	run timeout 5 bash -c "$(declare -f control_raw); RAIDTOOL_RUNDIR=$RAIDTOOL_RUNDIR NAME=$NAME control_raw status"
	assert_success
	[ "$(jq -r .health <<<"$output")" = clean ]
	# Role 0 fails a write now: the failure is recorded in the superblocks
	# (under the lock the probe used to hold) and the write completes on
	# role 1, well within the device's delay.
	echo "fail write" > "$TESTDIR/ffs0/ctl"
	t0=$(date +%s%N)
	timeout 30 dd if="$TESTDIR/data" of="$DEV" bs=64K count=1 oflag=direct conv=fsync \
		status=none
	t1=$(date +%s%N)
	[ ! -s "$TESTDIR/add.out" ] || fail "add ended before the write: $(cat "$TESTDIR/add.out")"
	[ $(((t1 - t0) / 1000000)) -lt 5000 ] ||
		fail "the write waited $(((t1 - t0) / 1000000)) ms: held up by add's probe"
	# A stop waits a while for the add before it, then is refused naming it
	# (status would wait behind it again); the array runs on. (The socket
	# again: the command line's scan would wait for the device.)
	run control_raw stop
	[ "$(jq -r .errno <<<"$output")" = 16 ] || fail "stop: not refused busy: $output"
	[[ "$(jq -r .message <<<"$output")" == *"'add' is still running"* ]] ||
		fail "stop: $output"
	[ ! -s "$TESTDIR/add.out" ] || fail "add ended before the stop: $(cat "$TESTDIR/add.out")"
	run control_raw status
	[ "$(jq -r .state <<<"$output")" = active ]
	[ "$(jq -r '.units[] | select(.slot == 0) | .state' <<<"$output")" = faulty ] ||
		fail "role 0 not faulty: $output"
	[ "$(examined_slot "${UNITS[1]}" 0)" = faulty ]
	# The add, once the device answers: its place (a spare) is not what it
	# was when it began; refused, nothing written on the device.
	echo clear > "$TESTDIR/ffs2/ctl"
	wait "$pid"
	run cat "$TESTDIR/add.out"
	[ "$(jq -r .errno <<<"$output")" = 16 ] || fail "add: not refused busy: $output"
	[[ "$(jq -r .message <<<"$output")" == *"role 0 is faulty and still holds"* ]] ||
		fail "add: $output"
	run raidtool examine "$new"
	assert_failure
	assert_output --partial "holds no raidtool superblock"
	# Removed, the failed role takes the device and is rebuilt onto it.
	echo clear > "$TESTDIR/ffs0/ctl"
	run raidtool remove "$NAME" 0
	assert_success
	run raidtool add "$NAME" "$new"
	assert_success
	assert_output --partial "added to role 0"
	run raidtool wait "$NAME"
	assert_success
	run cmp <(dd if="$DEV" bs=1M count=4 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	same_data_area "${UNITS[1]}" "$new" $((4 << 20))
}

@test "raid1 x3: a second role failing during a spare's rebuild takes the other spare when that rebuild ends" {
	local sa sb slots
	new_array 1 3 32M
	start_array
	sa=$(make_image sa.img 32M)
	sb=$(make_image sb.img 32M)
	run raidtool add "$NAME" "$sa" "$sb"
	assert_success
	head -c 16M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	# Slow, so that role 2 fails while role 1 is being rebuilt.
	raidtool tune --speed-limit 2 "$NAME" >/dev/null
	raidtool fail "$NAME" 1 >/dev/null
	raidtool fail "$NAME" 2 >/dev/null
	grep -q "role 2 failed; the spare waits for the rebuild of role 1 and takes it when" \
		"$RAIDTOOL_RUNDIR/$NAME/log" || fail "$(cat "$RAIDTOOL_RUNDIR/$NAME/log")"
	raidtool tune --speed-limit 0 "$NAME" >/dev/null
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 2 done; the array is clean"
	run status_json
	slots=$(jq -r '[.units[] | select(.slot < 3) | .state] | join(" ")' <<<"$output")
	[ "$slots" = "active active active" ] || fail "roles: $slots"
	[ "$(examined_slot "$sa" 1)" = active ]
	[ "$(examined_slot "$sa" 2)" = active ]
	check_clean
	run cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	# Both spares hold the copy the failed units held, byte for byte.
	same_data_area "${UNITS[0]}" "$sa" $((16 << 20))
	same_data_area "${UNITS[0]}" "$sb" $((16 << 20))
}

# add_refused_ran_apart WHY: add of unit 2 is refused as run apart, saying
# WHY, and no unit changes.
add_refused_ran_apart() {
	local sums
	sums=$(checksums "${UNITS[@]}")
	run raidtool add "$NAME" "${UNITS[2]}"
	assert_failure
	assert_output --partial "$1"
	assert_output --partial "ran apart"
	[ "$(checksums "${UNITS[@]}")" = "$sums" ]
}

@test "a unit whose role table contradicts the freshest one is refused by activate and by add, nothing changed" {
	local sbedit=$TOP/build/tests/rt-sbedit u2 sums ev
	[ -x "$sbedit" ] || fail "build rt-sbedit first (make all)"
	new_array 5 3 64M
	start_array
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	run raidtool deactivate "$NAME"
	assert_success
	# Unit 2 believes role 0 failed, at the same events as the others: as if
	# it had run without unit 0 while unit 0 ran without it.
	u2=$(loop_of "${UNITS[2]}")
	run "$sbedit" "$u2" slot.0.state=faulty
	assert_success
	[ "$(examined_slot "${UNITS[2]}" 0)" = faulty ]
	[ "$(raidtool examine --json "${UNITS[2]}" | jq .events)" = \
		"$(raidtool examine --json "${UNITS[0]}" | jq .events)" ]
	sums=$(checksums "${UNITS[@]}")
	run raidtool activate "$NAME"
	assert_failure
	assert_output --partial "contradicts the freshest one"
	assert_output --partial "'$u2'"
	assert_output --partial "Nothing was written"
	[ "$(checksums "${UNITS[@]}")" = "$sums" ]
	[ ! -e "$RAIDTOOL_RUNDIR/$NAME/pid" ]

	# Put right again, it starts. Then unit 2 leaves, and comes back ahead of
	# the array (it ran elsewhere meanwhile): add refuses to overwrite it.
	run "$sbedit" "$u2" slot.0.state=active
	assert_success
	start_array
	raidtool fail "$NAME" 2
	raidtool remove "$NAME" 2
	run "$sbedit" "$u2" events=999 slot.1.state=faulty
	assert_success
	add_refused_ran_apart "contradicts the running array"
	# Behind the array, but it ran without unit 0, which the array has
	# active: each side ran alone (a degraded start of each on another
	# boot), its writes are in no log of the array's. Refused too.
	ev=$(raidtool examine --json "${UNITS[0]}" | jq .events)
	run "$sbedit" "$u2" events=$((ev - 1)) slot.1.state=active slot.0.state=missing
	assert_success
	add_refused_ran_apart "ran without a unit that the running array"
	[ "$(status_json | jq -r .health)" = degraded ]
	run cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
}

# role_on_every_unit UNIT...: every UNIT lists role $SLOT with $STATE and
# $HASH in its role table.
role_on_every_unit() {
	local u
	for u in "$@"; do
		run raidtool examine --json "$u"
		assert_success
		[ "$(jq -r ".roles[$SLOT].state" <<<"$output")" = "$STATE" ] ||
			fail "$u: role $SLOT is $(jq -c ".roles[$SLOT]" <<<"$output"), not $STATE"
		[ "$(jq -r ".roles[$SLOT].hashcode" <<<"$output")" = "$HASH" ] ||
			fail "$u: role $SLOT is $(jq -c ".roles[$SLOT]" <<<"$output"), not $HASH"
	done
}

@test "raid5: remove of the unit being rebuilt is refused, writing nothing; fail stops the rebuild, then remove works; engine and superblocks agree throughout" {
	local spare spare_hash fresh fresh_hash SLOT=1 STATE HASH
	new_array 5 4 64M
	start_array
	head -c 24M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	run raidtool fail "$NAME" 1
	assert_success
	run raidtool remove "$NAME" 1
	assert_success
	# The spare answers slowly and its rebuild is held to 2 MiB/s, so that it
	# is still running below (the delay alone was not enough on a loaded machine).
	faulty_unit 9 64M
	spare=${UNITS[4]}
	echo "delay 40" > "$TESTDIR/ffs9/ctl"
	run raidtool add --speed-limit 2 "$NAME" "$spare"
	assert_success
	assert_output --partial "added to role 1; rebuilding"
	spare_hash=$(raidtool examine --json "$spare" | jq -r .this_unit.hashcode)
	[ "$(status_json | jq -r .walk.kind)" = rebuilding ]

	# Refused while it rebuilds, and nothing written: the role table still
	# names the spare, rebuilding, on every unit.
	run raidtool remove "$NAME" 1
	assert_failure
	assert_output --partial "role 1 ('$spare') is being rebuilt"
	assert_output --partial "fail it first"
	STATE=rebuilding HASH=$spare_hash role_on_every_unit "${UNITS[0]}" "${UNITS[2]}" \
		"${UNITS[3]}" "$spare"
	run status_json
	[ "$(jq -r '.units[] | select(.slot == 1) | .device' <<<"$output")" = "$spare" ]
	[ "$(jq -r '.units[] | select(.slot == 1) | .state' <<<"$output")" = rebuilding ]

	# fail stops the rebuild; then remove does what it says.
	run raidtool fail "$NAME" 1
	assert_success
	run raidtool remove "$NAME" 1
	assert_success
	assert_output --partial "removed from slot 1"
	echo clear > "$TESTDIR/ffs9/ctl"
	STATE=missing HASH=00000000 role_on_every_unit "${UNITS[0]}" "${UNITS[2]}" "${UNITS[3]}"
	run status_json
	[ "$(jq -r .health <<<"$output")" = degraded ]
	[ "$(jq -r '[.units[] | select(.device == "'"$spare"'")] | length' <<<"$output")" = 0 ]

	# A fresh unit rebuilt to the end: active everywhere, also after a restart.
	run raidtool tune --speed-limit 0 "$NAME"
	assert_success
	fresh=$(make_image fresh.img 64M)
	run raidtool add "$NAME" "$fresh"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 1 done"
	fresh_hash=$(raidtool examine --json "$fresh" | jq -r .this_unit.hashcode)
	all_active
	STATE=active HASH=$fresh_hash role_on_every_unit "${UNITS[0]}" "$fresh" "${UNITS[2]}" \
		"${UNITS[3]}"
	run raidtool deactivate "$NAME"
	assert_success
	start_array
	[[ "$stderr" != *degraded* ]] || fail "degraded after the rebuild: $stderr"
	all_active
	check_clean
	[ "$(dd if="$DEV" bs=1M count=24 iflag=direct status=none | sha256sum)" = \
		"$(sha256sum < "$TESTDIR/data")" ]
}

@test "forced assembly: raid5 losing two units at once starts with --force once they are back, data intact; plain activate names --force and its risk" {
	new_faulty_array 5 3 24M
	head -c 4M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	# Two disks go one right after the other (a shared cable, a controller):
	# the first failure is recorded on units 0 and 2, the second on unit 0.
	fail_disk 1
	run dd if="$DEV" of=/dev/null bs=1M count=4 iflag=direct status=none
	fail_disk 2
	run dd if=/dev/zero of="$DEV" bs=64k count=64 seek=256 oflag=direct conv=fsync status=none
	assert_failure
	run status_json
	[ "$(jq -r .health <<<"$output")" = failed ]
	run raidtool deactivate "$NAME"
	# The disks are back (a loose cable, a controller reset).
	echo clear > "$TESTDIR/ffs1/ctl"
	echo clear > "$TESTDIR/ffs2/ctl"
	sums=$(checksums "${UNITS[@]}")
	run --separate-stderr raidtool activate "$NAME"
	assert_failure
	stderr_has "cannot start"
	stderr_has "activate --force"
	stderr_has "can be lost"
	[ "$(checksums "${UNITS[@]}")" = "$sums" ]
	run --separate-stderr raidtool activate --force "$NAME"
	assert_success
	stderr_has "--force: unit"
	stderr_has "brought to current"
	run cmp <(dd if="$DEV" bs=1M count=4 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	# The unit left out is rebuilt; then the array is whole and clean again:
	# a plain activate after a clean stop.
	run raidtool add "$NAME" "${UNITS[1]}"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	[ "$(status_json | jq -r .health)" = clean ] || fail "after the rebuild: $(status_json)"
	deactivate_settled "$NAME"
	run --separate-stderr raidtool activate "$NAME"
	[ "$status" -eq 0 ] || fail "plain activate after the forced start: $stderr"
	[ "$(status_json | jq -r .health)" = clean ]
	run cmp <(dd if="$DEV" bs=1M count=4 iflag=direct status=none) "$TESTDIR/data"
	assert_success
}
