#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031,SC2154  # each @test is its own subshell on purpose; stderr: set by run --separate-stderr
# Error paths no other suite reaches (issue 10): superblock updates failing
# part way, the failure handler's own update failing, a failed mark-clean at
# shutdown, read errors while writes work, dropped writes, walks that fail,
# dirty-log merges with logs missing or damaged, copied and vanishing units,
# a bad first superblock copy. Faults come from rt-faultyfs disks
# (tests/helpers/rt-faultyfs.c) under direct-I/O loop devices; every test
# ends by comparing the array's bytes with what was written.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	fuse_setup jq
	faulty_setup
	SBEDIT=$(test_helper rt-sbedit)
	BGPIDS=()
}

teardown() {
	reap_bgpids
	faulty_units_clear
	stop_arrays
	scratch_teardown
	faulty_units_stop
}

# new_array KIND LEVEL COUNT SIZE: NAME on COUNT units of SIZE, zeroed
# (--assume-clean: no initial sync beside the test), started. KIND faulty:
# rt-faultyfs disks; image: plain image files (raidtool attaches them).
new_array() {
	local kind=$1 level=$2 count=$3 size=$4 i
	for ((i = 0; i < count; i++)); do
		if [ "$kind" = faulty ]; then
			faulty_unit "$i" "$size"
		else
			UNITS+=("$(make_image "u$i.img" "$size")")
		fi
	done
	run raidtool create "$NAME" --level "$level" --chunk 64K --assume-clean "${UNITS[@]}"
	assert_success
	HASH=$(raidtool examine --json "${UNITS[0]}" 2>/dev/null | jq -r .array.hashcode)
	run raidtool activate "$NAME"
	assert_success
}

faulty_array() {
	new_array faulty "$@"
}

image_array() {
	new_array image "$@"
}

# write_data MIB [FILE]: MIB MiB of random bytes written at the array's start
# (synced), kept in FILE (default $TESTDIR/data).
write_data() {
	local file=${2:-$TESTDIR/data}
	head -c "$(($1 << 20))" /dev/urandom > "$file"
	dd if="$file" of="/dev/raidtool/$NAME" bs=1M oflag=direct conv=fsync status=none
}

# data_ok [FILE]: the array's first bytes are FILE's (default $TESTDIR/data).
data_ok() {
	local file=${1:-$TESTDIR/data} got want
	got=$(dd if="/dev/raidtool/$NAME" bs=1M count=$(($(stat -c %s "$file") >> 20)) \
		iflag=direct status=none | sha256sum)
	want=$(sha256sum < "$file")
	[ "$got" = "$want" ] || fail "the array's bytes differ from what was written"
}

# examined UNIT JQ: one field of the unit's 'examine --json'.
examined() {
	raidtool examine --json "$1" 2>/dev/null | jq -r "$2"
}

# The engine's log of this array (under its UUID: the by-name link goes at a
# stop, the log of a stop that met an error stays).
engine_log() {
	local u uuid=
	if [ -e "$RAIDTOOL_RUNDIR/$NAME/log" ]; then
		cat "$RAIDTOOL_RUNDIR/$NAME/log"
		return 0
	fi
	# A unit that fails its reads cannot be examined: the first that can.
	for u in "${UNITS[@]}"; do
		uuid=$(examined "$u" .array.uuid)
		[ -n "$uuid" ] && [ "$uuid" != null ] && break
	done
	cat "$RAIDTOOL_RUNDIR/$uuid/log" 2>/dev/null
}

# wait_log TEXT: until the engine's log holds TEXT (10 s).
wait_log() {
	for _ in $(seq 100); do
		engine_log | grep -qF -- "$1" && return 0
		sleep 0.1
	done
	fail "the engine never logged '$1': $(engine_log)"
}

# gone PID: the process has exited (a zombie waiting for init counts).
gone() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	st=${st##*) }
	[ "${st%% *}" = Z ]
}

# every_unit_agrees FIELD: every unit's superblock has the same FIELD.
every_unit_agrees() {
	local u vals=()
	for u in "${UNITS[@]}"; do
		vals+=("$(examined "$u" "$1")")
	done
	[ "$(printf '%s\n' "${vals[@]}" | sort -u | wc -l)" = 1 ] ||
		fail "units disagree on $1: ${vals[*]}"
}

# --- 1. a superblock update failing half way -------------------------------

@test "rename failing at the third of four units: refused clearly; activate brings every unit to one superblock; data intact" {
	local old
	faulty_array 5 4 32M
	write_data 8
	run raidtool deactivate "$NAME"
	assert_success
	old=$(examined "${UNITS[0]}" .events)
	# Copy 0 of unit 2 refuses writes: the update reaches units 0 and 1 only.
	echo "fail write 4096 4096" > "$TESTDIR/ffs2/ctl"
	run --separate-stderr raidtool rename "$NAME" "${NAME}r"
	assert_failure
	stderr_has "raidtool: "
	stderr_has "Input/output error"
	stderr_has "${UNITS[2]}"
	grep -q '^failed_writes [1-9]' "$TESTDIR/ffs2/ctl" || fail "no fault injected"
	# Some units took the update (events + 1), the rest did not: at most one apart.
	[ "$(examined "${UNITS[0]}" .events)" = $((old + 1)) ]
	[ "$(examined "${UNITS[3]}" .events)" = "$old" ]
	[ "$(examined "${UNITS[3]}" .array.name)" = "$NAME" ]
	echo clear > "$TESTDIR/ffs2/ctl"
	# The freshest superblock has the new name; the units behind are used.
	run --separate-stderr raidtool activate "$HASH"
	assert_success
	[[ "$stderr" != *degraded* ]] || fail "started degraded: $stderr"
	[ "$(raidtool status --json "$HASH" | jq -r .health)" = clean ]
	[ -b "/dev/raidtool/${NAME}r" ]
	[ "$(dd if="/dev/raidtool/${NAME}r" bs=1M count=8 iflag=direct status=none | sha256sum)" = \
		"$(sha256sum < "$TESTDIR/data")" ] || fail "data differs after the failed rename"
	every_unit_agrees .events
	every_unit_agrees .array.name
	[ "$(examined "${UNITS[3]}" .array.name)" = "${NAME}r" ]
	run raidtool deactivate "$HASH"
	assert_success
	every_unit_agrees .events
	[ "$(examined "${UNITS[0]}" .state)" = clean ]
}

# --- 2. the failure handler's own update failing ----------------------------

@test "a unit fails while the superblock writes of the failure handler fail too: recorded by the next update; the failed unit is never trusted again" {
	local u
	faulty_array 5 4 32M
	write_data 8 "$TESTDIR/old"
	# Unit 1 dies; the next two superblock writes of unit 0 (written first
	# by the failure handler, which tries twice) fail.
	echo "fail write 4096 4096 2" > "$TESTDIR/ffs0/ctl"
	echo "fail rw" > "$TESTDIR/ffs1/ctl"
	write_data 8
	grep -q '^failed_writes 2$' "$TESTDIR/ffs0/ctl" ||
		fail "the handler's writes to unit 0 did not fail: $(cat "$TESTDIR/ffs0/ctl")"
	engine_log | grep -q "role 1) failed, and marking it faulty in the remaining superblocks failed too" ||
		fail "the failed update is not reported: $(engine_log)"
	[ "$(status_json | jq -r '.units[] | select(.slot == 1) | .state')" = faulty ]
	# Unit 1 answers again (a cable put back), holding the old bytes.
	echo clear > "$TESTDIR/ffs1/ctl"
	run raidtool deactivate "$NAME"
	assert_success
	# The clean stop carried the failure to every unit but the failed one.
	for u in 0 2 3; do
		[ "$(examined "${UNITS[$u]}" '.roles[1].state')" = faulty ] ||
			fail "unit $u: role 1 is $(examined "${UNITS[$u]}" '.roles[1].state')"
	done
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	stderr_has "role 1 (faulty) missing"
	[ "$(status_json | jq -r .health)" = degraded ]
	data_ok
}

# --- 3. the mark-clean at shutdown failing -----------------------------------

@test "deactivate whose mark-clean fails: reported; the next start treats the array as dirty; data intact, check 0" {
	local pid
	faulty_array 5 3 32M
	write_data 8
	[ "$(examined "${UNITS[0]}" .state)" = dirty ]
	pid=$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")
	# The first superblock write of the stop (unit 0 is written first) fails.
	echo "fail write 4096 4096 1" > "$TESTDIR/ffs0/ctl"
	run raidtool deactivate "$NAME"
	assert_failure
	assert_output --partial "cannot mark the superblocks clean"
	assert_output --partial "Input/output error"
	# The engine stopped all the same, and is gone when deactivate returns.
	gone "$pid" || fail "the engine $pid is still running"
	[ "$(examined "${UNITS[0]}" .state)" = dirty ]
	# Data flushed and the log cleared before the mark-clean: dirty, with no
	# region to resync.
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	stderr_has "not stopped cleanly, but no region was being written: nothing to resync"
	[ "$(status_json | jq -r .health)" = clean ]
	check_clean
	data_ok
	run raidtool deactivate "$NAME"
	assert_success
	[ "$(examined "${UNITS[0]}" .state)" = clean ]
}

@test "deactivate whose final flush fails on a unit: that unit is failed and recorded, the stop goes on; it starts degraded without it; data intact" {
	local pid
	faulty_array 5 3 32M
	write_data 8
	# Every flush of unit 2 fails (an uncounted write rule over bytes
	# nothing writes: its data writes go through).
	echo "fail write 0 512" > "$TESTDIR/ffs2/ctl"
	pid=$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")
	run raidtool deactivate "$NAME"
	assert_failure
	assert_output --partial "unit '${UNITS[2]}' (role 2) failed the final flush and is marked faulty"
	# Stopped all the same, and gone when deactivate returns.
	gone "$pid" || fail "the engine $pid is still running"
	engine_log | grep -q "role 2) failed; marked faulty" || fail "not in the kept log: $(engine_log)"
	[ "$(examined "${UNITS[0]}" .state)" = clean ]
	[ "$(examined "${UNITS[0]}" '.roles[2].state')" = faulty ]
	[ "$(examined "${UNITS[1]}" '.roles[2].state')" = faulty ]
	echo clear > "$TESTDIR/ffs2/ctl"
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	stderr_has "starting degraded: role 2 (faulty) missing"
	data_ok
}

# --- 12. a bad first superblock copy -----------------------------------------

@test "activate with copy 0 of a unit damaged: starts on copy 1, and the running array rewrites copy 0" {
	local loop
	image_array 5 3 32M
	write_data 8
	run raidtool deactivate "$NAME"
	assert_success
	loop=$(loop_of "${UNITS[1]}")
	dd if=/dev/urandom of="$loop" bs=512 seek=9 count=1 oflag=direct conv=notrunc status=none
	[ "$(examined "${UNITS[1]}" '.copies[0].valid')" = false ]
	[ "$(examined "${UNITS[1]}" '.copies[1].chosen')" = true ]
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	[[ "$stderr" != *degraded* ]] || fail "started degraded: $stderr"
	[ "$(status_json | jq -r .health)" = clean ]
	# The start's own update (marked dirty) wrote both copies again.
	[ "$(examined "${UNITS[1]}" '.copies[0].valid')" = true ]
	[ "$(examined "${UNITS[1]}" '.copies[0].events')" = "$(examined "${UNITS[0]}" .events)" ]
	[ "$(examined "${UNITS[1]}" '.copies[1].events')" = "$(examined "${UNITS[0]}" .events)" ]
	data_ok
	run raidtool deactivate "$NAME"
	assert_success
	[ "$(examined "${UNITS[1]}" '.copies[0].valid')" = true ]
	[ "$(examined "${UNITS[1]}" .state)" = clean ]
}

# --- 10. two devices claiming one unit ---------------------------------------

@test "a copied unit image on a second loop device: activate refuses naming both devices, writes nothing" {
	local copy dev0 devc sums
	image_array 1 2 32M
	write_data 4
	run raidtool deactivate "$NAME"
	assert_success
	copy=$TESTDIR/copy.img
	cp --sparse=always "${UNITS[0]}" "$copy"
	devc=$(attach "$copy")
	dev0=$(loop_of "${UNITS[0]}")
	sums=$(checksums "${UNITS[@]}" "$copy")
	run --separate-stderr raidtool activate "$NAME"
	assert_failure
	stderr_has "'$dev0'"
	stderr_has "'$devc'"
	stderr_has "same unit UUID"
	[ ! -e "$RAIDTOOL_RUNDIR/$NAME/pid" ] || ! kill -0 "$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")" 2>/dev/null ||
		fail "an engine runs"
	[ "$(checksums "${UNITS[@]}" "$copy")" = "$sums" ] || fail "a unit was written"
	# The copy gone, the array starts as before.
	losetup -d "$devc"
	run raidtool activate "$NAME"
	assert_success
	data_ok
}

# --- 11. a unit vanishing between scan and open ------------------------------

# opening_excl PID...: is one of the PIDs stopped in an openat with O_EXCL
# (strace holds it at the syscall's entry)? /proc/PID/syscall: nr, then args.
opening_excl() {
	local p nr flags
	for p in "$@"; do
		read -r nr _ _ flags _ < "/proc/$p/syscall" 2>/dev/null || continue
		[ "$nr" = 257 ] && [ $((flags & 0x80)) != 0 ] && return 0
	done
	return 1
}

@test "a unit detached between activate's scan and its open, another file on its loop device: refused naming it, nothing written" {
	local dev sums spid pids other rc
	require_cmds strace
	image_array 1 2 32M
	write_data 4
	run raidtool deactivate "$NAME"
	assert_success
	dev=$(loop_of "${UNITS[1]}")
	sums=$(checksums "${UNITS[@]}")
	head -c 32M /dev/urandom > "$TESTDIR/other.img"
	other=$(checksums "$TESTDIR/other.img")
	# The engine process opens the device twice: once to scan (sysfs names
	# the candidates, the superblock is read), then for the array (O_EXCL).
	# strace holds that second open (counted per process) at its entry for
	# 5 s, while the device changes under it.
	# (strace -f follows an engine that started: the timeout ends it then.)
	timeout -s KILL 30 strace -f -qq -o /dev/null -P "$dev" -e trace=openat \
		-e inject=openat:delay_enter=5s:when=2 \
		"$RAIDTOOL_BIN" activate "$NAME" > "$TESTDIR/act.out" 2>&1 &
	spid=$!
	BGPIDS+=("$spid")
	for _ in $(seq 300); do
		pids=$(pgrep -f "^$RAIDTOOL_BIN activate $NAME\$" || true)
		# shellcheck disable=SC2086  # one pid per word
		[ -n "$pids" ] && opening_excl $pids && break
		sleep 0.05
	done
	# shellcheck disable=SC2086
	opening_excl $pids || fail "activate never opened '$dev' for the array: $(cat "$TESTDIR/act.out")"
	# Detached, and another file attached at once (another program's losetup).
	losetup -d "$dev"
	for _ in $(seq 40); do
		losetup "$dev" "$TESTDIR/other.img" 2>/dev/null && break
		sleep 0.05
	done
	[ "$(losetup -nO BACK-FILE "$dev")" = "$TESTDIR/other.img" ] ||
		fail "could not attach the other file to '$dev'"
	# shellcheck disable=SC2086
	opening_excl $pids || fail "activate went on before the device changed"
	rc=0
	wait "$spid" || rc=$?
	[ "$rc" != 0 ] || fail "activate took another file for the unit: $(cat "$TESTDIR/act.out")"
	grep -q "'$dev'" "$TESTDIR/act.out" || fail "the unit is not named: $(cat "$TESTDIR/act.out")"
	grep -q "changed since" "$TESTDIR/act.out" || fail "no reason given: $(cat "$TESTDIR/act.out")"
	[ "$(checksums "$TESTDIR/other.img")" = "$other" ] || fail "the other file was written"
	[ "$(checksums "${UNITS[@]}")" = "$sums" ] || fail "a unit was written"
	losetup -d "$dev"
	attach "${UNITS[1]}" >/dev/null
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	[[ "$stderr" != *degraded* ]] || fail "started degraded: $stderr"
	data_ok
}

# --- 6. read errors while writes work; dropped writes -------------------------

# read_errors LEVEL: unit 0 fails every read (its writes still work): reads
# go to the other mirror or are reconstructed, the unit is failed after its
# bounded tries, and every byte reads back.
read_errors() {
	faulty_array "$1" 3 32M
	write_data 8
	echo "fail read" > "$TESTDIR/ffs0/ctl"
	data_ok
	grep -q '^failed_reads [1-9]' "$TESTDIR/ffs0/ctl" || fail "no read reached unit 0"
	[ "$(status_json | jq -r '.units[] | select(.slot == 0) | .state')" = faulty ]
	[ "$(status_json | jq -r .health)" = degraded ]
	engine_log | grep -q "unit 0: read of .* failed: Input/output error; trying again (3 of 3)" ||
		fail "not tried again as documented: $(engine_log)"
	[ "$(examined "${UNITS[1]}" '.roles[0].state')" = faulty ]
	# Writes go on, degraded, and read back.
	write_data 4 "$TESTDIR/more"
	data_ok "$TESTDIR/more"
}

@test "raid1: a mirror whose reads fail (writes still work): reads switch mirror, it is failed after its tries, data intact" {
	read_errors 1
}

@test "raid5: a unit whose reads fail (writes still work): reads are reconstructed, it is failed after its tries, data intact" {
	read_errors 5
}

# A raid5 write served on the FUSE ring (4 KiB, inside a chunk, its log
# region already marked) whose data or parity write fails once: its stripe is
# owed a resync before the write is done again synchronously (a
# read-modify-write there would trust a parity that may not match), the
# resync runs, the bytes read back and check finds nothing. Five units, so
# the synchronous redo would be read-modify-write.
@test "raid5: a write mapped on the ring whose unit write fails once: redone, its stripe resynced, data intact, check 0" {
	# With gathering on, small raid5 writes take the ring only after waits
	# in vain (the first ones here would not): no window, every one does.
	RAIDTOOL_STRIPE_WAIT_US=0 faulty_array 5 5 32M
	write_data 1
	cp "$TESTDIR/data" "$TESTDIR/want"
	head -c 65536 /dev/urandom > "$TESTDIR/blocks"
	# The next write reaching unit 0 fails, once; 16 blocks of 4 KiB over
	# four stripes (256 KiB each) reach every unit.
	echo "fail write 0 0 1" > "$TESTDIR/ffs0/ctl"
	for i in $(seq 0 15); do
		dd if="$TESTDIR/blocks" of="/dev/raidtool/$NAME" bs=4k skip="$i" seek=$((i * 16 + 3)) \
			count=1 oflag=direct conv=notrunc status=none
		dd if="$TESTDIR/blocks" of="$TESTDIR/want" bs=4k skip="$i" seek=$((i * 16 + 3)) \
			count=1 conv=notrunc status=none
	done
	grep -q '^failed_writes 1' "$TESTDIR/ffs0/ctl" ||
		fail "no write failed on unit 0: $(cat "$TESTDIR/ffs0/ctl")"
	data_ok "$TESTDIR/want"
	[ "$(status_json | jq -r .health)" = clean ] || fail "a unit was failed: $(status_json)"
	run raidtool wait "$NAME"
	check_clean
	data_ok "$TESTDIR/want"
}

@test "raid5: a flush whose fsync fails on one unit: that unit is failed, the flush succeeds from the others, data intact" {
	local before
	faulty_array 5 3 32M
	write_data 8
	before=$(status_json | jq -r .stats.flushes)
	# Every fsync of unit 1 fails (an uncounted write rule over bytes
	# nothing writes). Over FUSE's io_uring transport the flush's fsyncs run
	# on the queue's ring, and the failure is judged by a worker.
	echo "fail write 0 512" > "$TESTDIR/ffs1/ctl"
	run dd if=/dev/urandom of="/dev/raidtool/$NAME" bs=1M seek=8 count=1 oflag=direct \
		conv=notrunc,fsync status=none
	assert_success
	engine_log | grep -q "unit 1: flush of 0 bytes at 0 failed: Input/output error" ||
		fail "no failed flush of unit 1 in the log: $(engine_log)"
	[ "$(status_json | jq -r '.units[1].state')" = faulty ] ||
		fail "unit 1 is not faulty: $(status_json)"
	[ "$(status_json | jq -r .stats.flushes)" -gt "$before" ]
	echo clear > "$TESTDIR/ffs1/ctl"
	data_ok
}

@test "raid1: writes silently dropped by a mirror: check counts the mismatch, repair mends it" {
	faulty_array 1 2 32M
	echo "drop" > "$TESTDIR/ffs1/ctl"
	write_data 4
	grep -q '^dropped_writes [1-9]' "$TESTDIR/ffs1/ctl" || fail "no write dropped"
	echo clear > "$TESTDIR/ffs1/ctl"
	run raidtool check "$NAME"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --regexp "check done: [1-9][0-9]* mismatches"
	# Role 0 took every write: its copy is the one to keep.
	run raidtool check --repair --prefer 0 "$NAME"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --regexp "repair done: [1-9][0-9]* mismatches, [1-9][0-9]* repaired"
	check_clean
	data_ok
}

# --- 7. walks that fail ------------------------------------------------------

# degraded_with_spare LEVEL COUNT: role 1 failed and removed, data written;
# SPARE is a faulty unit to add.
degraded_with_spare() {
	faulty_array "$1" "$2" 48M
	write_data 16
	run raidtool fail "$NAME" 1
	assert_success
	run raidtool remove "$NAME" 1
	assert_success
	faulty_unit "$2" 48M
	SPARE=${UNITS[$2]}
}

@test "raid5: the rebuild target fails its checkpoint flush: the walk stops, role faulty in status; a later rebuild completes, data intact" {
	degraded_with_spare 5 3
	# Slow, so that the walk is still short of its first checkpoint below.
	echo "delay 20" > "$TESTDIR/ffs3/ctl"
	run raidtool add "$NAME" "$SPARE"
	assert_success
	# From now on every flush of the new unit fails (an uncounted write
	# rule over bytes nothing writes: the rebuild's writes go through).
	echo "fail write 0 512" > "$TESTDIR/ffs3/ctl"
	echo "delay 0" > "$TESTDIR/ffs3/ctl"
	wait_log "rebuilding failed"
	engine_log | grep -q "unit 1: flush of .* failed: Input/output error" ||
		fail "not stopped by the failed flush: $(engine_log)"
	run status_json
	[ "$(jq -r .health <<<"$output")" = degraded ] || fail "not degraded: $output"
	[ "$(jq -r '.units[] | select(.slot == 1) | .state' <<<"$output")" = faulty ]
	[ "$(jq -r '.walk.running' <<<"$output")" = false ]
	[ "$(jq -r '.walk.result' <<<"$output")" != 0 ]
	data_ok
	# The unit answers again: out, and in again (in full: it failed an I/O).
	echo clear > "$TESTDIR/ffs3/ctl"
	run raidtool remove "$NAME" 1
	assert_success
	run raidtool add "$NAME" "$SPARE"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 1 done"
	[ "$(status_json | jq -r .health)" = clean ]
	check_clean
	data_ok
}

@test "raid1 x3: the rebuild's source mirror fails its reads mid-rebuild: the walk goes on from the other mirror and completes, data intact" {
	degraded_with_spare 1 3
	# Slow, so that the walk still has reads ahead when the fault lands.
	echo "delay 100" > "$TESTDIR/ffs3/ctl"
	run raidtool add "$NAME" "$SPARE"
	assert_success
	# Role 0 is the source (the first working mirror); it fails mid-walk.
	status_until_above .walk.done 0 || true
	echo "fail read" > "$TESTDIR/ffs0/ctl"
	echo "delay 0" > "$TESTDIR/ffs3/ctl"
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 1 done"
	grep -q '^failed_reads [1-9]' "$TESTDIR/ffs0/ctl" || fail "the source was not read after the fault"
	run status_json
	[ "$(jq -r '.units[] | select(.slot == 0) | .state' <<<"$output")" = faulty ]
	[ "$(jq -r '.units[] | select(.slot == 1) | .state' <<<"$output")" = active ]
	data_ok
	# The rebuilt mirror alone holds the bytes too.
	run raidtool fail "$NAME" 2
	assert_success
	data_ok
}

@test "raid1 x2: the rebuild's only source fails mid-rebuild: the rebuild fails once and is not restarted, wait returns" {
	degraded_with_spare 1 2
	# Slow, so that the walk still has reads ahead when the fault lands.
	echo "delay 100" > "$TESTDIR/ffs2/ctl"
	run raidtool add "$NAME" "$SPARE"
	assert_success
	status_until_above .walk.done 0 || true
	echo "fail read" > "$TESTDIR/ffs0/ctl"
	echo "delay 0" > "$TESTDIR/ffs2/ctl"
	run timeout 30 "$RAIDTOOL_BIN" wait "$NAME"
	[ "$status" -ne 124 ] || fail "wait did not return: the rebuild runs again and again"
	sleep 2
	n=$(engine_log | grep -c "rebuilding failed")
	[ "$n" -eq 1 ] || fail "the rebuild failed $n times (restarted after it failed): $(engine_log | tail -n 5)"
	[ "$(status_json | jq -r .walk.running)" = false ]
}

# --- 8. dirty-log merges ------------------------------------------------------

# log_area UNIT: "OFFSET SIZE" of the unit's dirty-region log area.
log_area() {
	raidtool examine --json "$1" 2>/dev/null | jq -r '"\(.this_unit.log_offset) \(.this_unit.log_size)"'
}

# dirty_stop: writes spread over the array, then the engine killed (an
# unclean stop: the log holds the regions written).
dirty_stop() {
	write_data 8
	dd if=/dev/urandom of="/dev/raidtool/$NAME" bs=1M seek=40 count=2 oflag=direct conv=fsync \
		status=none
	dd if="/dev/raidtool/$NAME" of="$TESTDIR/tail" bs=1M skip=40 count=2 iflag=direct status=none
	kill_engine
	run raidtool deactivate "$NAME"
	assert_success
}

# full_resync_ok: the start finds no valid dirty-region log and resyncs the
# whole array; afterwards parity agrees and the data reads back.
full_resync_ok() {
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	stderr_has "(no valid dirty-region log)"
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "resync done"
	check_clean
	data_ok
}

@test "dirty log: one unit's log damaged, one's gone: the start resyncs the regions of the valid log; with no valid log, everything" {
	local off size dirty loop
	image_array 5 3 48M
	dirty_stop
	dirty=$(examined "${UNITS[2]}" .dirty_log.dirty)
	[ "$dirty" -gt 0 ] || fail "no region dirty after the unclean stop"
	read -r off size < <(log_area "${UNITS[0]}")
	# Unit 0: a byte of its bitmap flipped (CRC mismatch). Unit 1: zeroed.
	loop=$(loop_of "${UNITS[0]}")
	dd if=/dev/urandom of="$loop" bs=512 seek=$((off / 512)) count=1 oflag=direct conv=notrunc status=none
	loop=$(loop_of "${UNITS[1]}")
	dd if=/dev/zero of="$loop" bs=4096 seek=$((off / 4096)) count=$((size / 4096)) oflag=direct \
		conv=notrunc status=none
	[ "$(examined "${UNITS[0]}" .dirty_log.status)" != valid ]
	[ "$(examined "${UNITS[1]}" .dirty_log.status)" = absent ]
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	stderr_has "not stopped cleanly: resyncing $dirty of "
	[[ "$stderr" != *"no valid dirty-region log"* ]] || fail "the valid log was not used: $stderr"
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "resync done"
	check_clean
	data_ok
	# Every unit has the merged log again.
	[ "$(examined "${UNITS[1]}" .dirty_log.status)" = valid ]
	# Unclean again, and now no unit has a valid log: a full resync.
	dirty_stop
	for i in 0 1 2; do
		loop=$(loop_of "${UNITS[$i]}")
		dd if=/dev/urandom of="$loop" bs=512 seek=$((off / 512)) count=1 oflag=direct \
			conv=notrunc status=none
	done
	full_resync_ok
	[ "$(dd if="/dev/raidtool/$NAME" bs=1M skip=40 count=2 iflag=direct status=none | sha256sum)" = \
		"$(sha256sum < "$TESTDIR/tail")" ]
}

@test "dirty log: the logs hold another region size than the superblocks: not merged, a full resync; data intact, check 0" {
	local region u loop
	image_array 5 3 48M
	dirty_stop
	region=$(examined "${UNITS[0]}" .dirty_log.region_size)
	[ "$region" -gt 0 ] || fail "no dirty-region log on ${UNITS[0]}"
	# Every superblock now says regions twice as large: each log, valid in
	# itself, is of another geometry and must not be read as this one.
	for u in "${UNITS[@]}"; do
		loop=$(loop_of "$u")
		run "$SBEDIT" "$loop" "array.region_size=$((region * 2))"
		assert_success
	done
	[ "$(examined "${UNITS[0]}" .dirty_log.status)" = valid ]
	full_resync_ok
	# The log is written again in the superblocks' geometry.
	[ "$(examined "${UNITS[0]}" .dirty_log.region_size)" = $((region * 2)) ]
}

@test "dirty log: a unit's log write fails: that unit is failed, the write goes on, data intact" {
	local off size
	faulty_array 5 3 32M
	read -r off size < <(log_area "${UNITS[1]}")
	# The first write to a clean region marks it in the log of every unit first.
	echo "fail write $off $size" > "$TESTDIR/ffs1/ctl"
	write_data 4
	grep -q '^failed_writes [1-9]' "$TESTDIR/ffs1/ctl" || fail "no log write failed"
	run status_json
	[ "$(jq -r '.units[] | select(.slot == 1) | .state' <<<"$output")" = faulty ]
	[ "$(examined "${UNITS[0]}" '.roles[1].state')" = faulty ]
	[ "$(examined "${UNITS[0]}" .dirty_log.status)" = valid ]
	[ "$(examined "${UNITS[0]}" .dirty_log.dirty)" -gt 0 ]
	data_ok
}
