#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# The torture run, in the manner of ZFS's ztest: passes of a random workload
# (tests/helpers/rt-torture: every block's content kept in a model) on arrays
# of random level and geometry over rt-faultyfs disks, with random faults
# within the level's redundancy: unit I/O errors (transient ones that the
# retries absorb, persistent ones over a range, a whole disk going dead), a
# unit failed by hand, a unit absent at a start, kill -9 of the engine
# during the workload, while idle, during a resync or a rebuild. raid1 and
# raid5 arrays sometimes have a hot spare, and sometimes a role is being
# replaced (raidtool replace) through the workload, the fault and the kill. After every pass the lost units
# are added back and rebuilt (sometimes under a second workload), every
# block is verified against the model and, for raid1 and raid5, check must
# find 0 mismatches.
#
# RAIDTOOL_TORTURE_SECONDS (default 120) is how long passes keep starting;
# SEED replays a run (the driver's choices and the workload's; timing still
# varies). Every step goes to a log (its path is printed), kept on failure
# (or with RAIDTOOL_TORTURE_KEEP=1) with the model and the engines' logs.
# make torture SECONDS=600 runs longer. TORTURE_REPLACE (percent, default 25)
# is how often a raid1/raid5 pass runs a replace.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	fuse_setup jq
	faulty_setup
	TORTURE=$(test_helper rt-torture)
	BGPIDS=()
	TLOG=$(mktemp -d /tmp/raidtool-torture.XXXXXX)
	A=
}

teardown() {
	reap_bgpids
	faulty_units_clear
	if [ -z "${BATS_TEST_COMPLETED:-}" ] || [ "${RAIDTOOL_TORTURE_KEEP:-0}" = 1 ]; then
		keep_evidence
	else
		rm -rf "$TLOG"
	fi
	stop_arrays "${A:-}"
	scratch_teardown
	faulty_units_stop
}

# save_engine_log NAME: what NAME's engines logged so far, into TLOG (a
# clean stop removes the log).
save_engine_log() {
	local f=$RAIDTOOL_RUNDIR/$1/log
	[ -f "$f" ] || return 0
	cat "$f" >> "$TLOG/engine-$1.log"
	: > "$f"
}

# The engines' logs and the model, beside the step log, for a failed run.
keep_evidence() {
	local d
	for d in "$RAIDTOOL_RUNDIR"/*/; do
		[ -d "$d" ] && save_engine_log "$(basename "$d")"
	done
	[ -f "$TESTDIR/model" ] && cp "$TESTDIR/model" "$TLOG/model"
	cp "$TESTDIR"/ffs*.log "$TLOG/" 2>/dev/null
	# Each disk's fault counters and rules left: an EIO that no rule served
	# came from below rt-faultyfs (the loop device, the kernel).
	for d in "$TESTDIR"/ffs*/; do
		[ -e "$d/ctl" ] && cat "$d/ctl" > "$TLOG/$(basename "$d").ctl" 2>&1
	done
	losetup -l 2>/dev/null | grep -F "$TESTDIR" > "$TLOG/losetup" || true
	echo "# torture log kept in $TLOG (seed $SEED)" >&3
}

# log TEXT: one line in the step log, with the time and the pass.
log() {
	echo "$(date +%T.%3N) pass ${PASS:-0}: $*" >> "$TLOG/log"
}

# step CMD...: run CMD (a program, not a function) with a time limit; its
# command line and output go to the log, OUT holds the output, RC the status.
step() {
	log "$*"
	RC=0
	OUT=$(timeout -k 5 "${STEP_LIMIT:-180}" "$@" 2>&1) || RC=$?
	[ -z "$OUT" ] || printf '%s\n' "$OUT" | sed 's/^/        /' >> "$TLOG/log"
	[ "$RC" = 0 ] || log "-> exit $RC"
	return 0
}

# must CMD...: step, and the run fails unless CMD succeeds.
must() {
	step "$@"
	[ "$RC" = 0 ] || torture_fail "'$*' failed ($RC): $OUT"
}

torture_fail() {
	log "FAILED: $1"
	tail -n 40 "$TLOG/log" >&2
	fail "seed $SEED, pass $PASS: $1 (log: $TLOG/log)"
}

# pick VAR WORD...: VAR is set to one of the words, from the seeded RANDOM
# (not in a subshell: bash seeds a subshell's RANDOM afresh).
pick() {
	local -n var=$1
	shift
	local words=("$@")
	# shellcheck disable=SC2034  # a nameref
	var=${words[RANDOM % ${#words[@]}]}
}

# chance PERCENT: true that often.
chance() {
	[ $((RANDOM % 100)) -lt "$1" ]
}

engine_pid() {
	cat "$RAIDTOOL_RUNDIR/$A/pid" 2>/dev/null
}

health() {
	"$RAIDTOOL_BIN" status --json "$A" 2>/dev/null | jq -r .health
}

# units_failed: how many of the running array's units are not active, spare,
# a replacement being filled or a unit a replace released.
units_failed() {
	"$RAIDTOOL_BIN" status --json "$A" 2>/dev/null | jq -r '[.units[] | select(.state !=
		"active" and .state != "spare" and .state != "replacing" and .state != "replaced")] |
		length'
}

# kill_engine: SIGKILL the array's engine, wait until it is gone.
kill_engine() {
	local pid
	pid=$(engine_pid)
	[ -n "$pid" ] || torture_fail "no engine to kill"
	log "kill -9 engine $pid"
	sigkill_wait "$pid"
}

# new_array: retire the current array, make one of random level and geometry
# on new rt-faultyfs disks, start it and give it a fresh model.
new_array() {
	local n i size='' bs chunk spare=0
	[ -z "$A" ] || retire_array
	ARRAYS=$((ARRAYS + 1))
	A="${NAME}a$ARRAYS"
	pick LEVEL 5 5 5 1 1 1 0 linear
	case "$LEVEL" in
	1) n=$((2 + RANDOM % 2)) ;;
	5) n=$((3 + RANDOM % 2)) ;;
	0) n=$((2 + RANDOM % 2)) ;;
	linear) n=$((1 + RANDOM % 3)) ;;
	esac
	pick bs 4096 4096 4096 512
	pick chunk 4K 16K 64K 64K 128K 512K
	# UNITS: the array's disks (roles, then a spare), FFIDX: their rt-faultyfs numbers.
	UNITS=() FFIDX=()
	# With a hot spare, every disk of one size: once a spare took a smaller
	# role, the disk that left it is smaller than the smallest role now, and
	# add refuses it (raidtool(8), add).
	case "$LEVEL" in
	1|5) if chance 35; then
		spare=1
		pick size 24M 32M 40M
	fi ;;
	esac
	for ((i = 0; i < n; i++)); do
		new_disk "$size"
	done
	NROLES=$n
	log "new array $A: level $LEVEL, $n units (${UNITS[*]}), block size $bs, chunk $chunk"
	# Zeroed sparse images: the model's unwritten blocks are zeros.
	must "$RAIDTOOL_BIN" create "$A" --level "$LEVEL" --chunk "$chunk" --blocksize "$bs" \
		--assume-clean "${UNITS[@]}"
	must "$RAIDTOOL_BIN" activate "$A"
	# A hot spare: a failed role is rebuilt onto it at once.
	if [ "$spare" = 1 ]; then
		new_disk "$size"
		must "$RAIDTOOL_BIN" add "$A" "${UNITS[-1]}"
		[[ "$OUT" == *spare* ]] || torture_fail "not added as a spare: $OUT"
	fi
	must "$TORTURE" init --seed "$SEED" "/dev/raidtool/$A" "$TESTDIR/model"
	# Sometimes every block written first: then no block may read as zeros.
	if chance 30; then
		must "$TORTURE" fill "/dev/raidtool/$A" "$TESTDIR/model"
	fi
}

# new_disk [SIZE]: one more rt-faultyfs disk (of random size), appended to UNITS.
new_disk() {
	local size=${1:-}
	[ -n "$size" ] || pick size 24M 32M 40M
	UIDX=$((UIDX + 1))
	faulty_unit "$UIDX" "$size"
	FFIDX+=("$UIDX")
}

# disk_of_role ROLE: DISK = the index in UNITS of the disk in ROLE ('' if none).
disk_of_role() {
	local dev i
	DISK=
	dev=$("$RAIDTOOL_BIN" status --json "$A" 2>/dev/null |
		jq -r ".units[] | select(.slot == $1) | .device // empty")
	for i in "${!UNITS[@]}"; do
		[ "${UNITS[$i]}" != "$dev" ] || DISK=$i
	done
}

# drop_disk I: let go of disk I (UNITS, FFIDX), no longer the array's.
drop_disk() {
	log "disk ${UNITS[$1]} leaves the array's disks"
	losetup -d "${UNITS[$1]}" 2>/dev/null || true
	umount "$TESTDIR/ffs${FFIDX[$1]}" 2>/dev/null || true
	rm -f "$TESTDIR/back${FFIDX[$1]}.img"
	unset "UNITS[$1]" "FFIDX[$1]"
}

# replace_begin ROLE: a hot replace of ROLE onto a new disk as large as any,
# slow enough to run through the workload, the fault and the kill (REPL: the
# new disk's index in UNITS, REPL_OLD the one it replaces).
replace_begin() {
	local idx
	disk_of_role "$1"
	[ -n "$DISK" ] || return 0
	REPL_OLD=$DISK REPL_ROLE=$1
	new_disk 40M
	idx=("${!UNITS[@]}")
	REPL=${idx[-1]}
	must "$RAIDTOOL_BIN" replace "$A" "$1" --with "${UNITS[REPL]}" \
		--speed-limit $((2 + RANDOM % 6))
}

# replace_end: the replace done (settled), the new disk holds the role; the
# one it replaced is let go.
replace_end() {
	[ -n "${REPL:-}" ] || return 0
	disk_of_role "$REPL_ROLE"
	[ "$DISK" = "$REPL" ] || torture_fail "the replace of role $REPL_ROLE did not end with \
${UNITS[REPL]} in it: $("$RAIDTOOL_BIN" status --json "$A" 2>/dev/null | jq -c .units)"
	drop_disk "$REPL_OLD"
	REPL=
}

# stop_array: deactivate (a clean stop, or the cleanup after a kill).
stop_array() {
	save_engine_log "$A"
	must "$RAIDTOOL_BIN" deactivate "$A"
}

# retire_array: stop the current array, let go of its disks.
retire_array() {
	local i
	stop_array
	for i in "${!UNITS[@]}"; do
		losetup -d "${UNITS[$i]}" 2>/dev/null || true
		umount "$TESTDIR/ffs${FFIDX[$i]}" 2>/dev/null || true
		rm -f "$TESTDIR/back${FFIDX[$i]}.img"
	done
	A=
}

# workload SECONDS THREADS: rt-torture write in the background (WPID), once
# it has made writes.
workload() {
	local before now rc=0 seed=$((SEED * 1000 + PASS * 2 + ${WORKLOAD_SECOND:-0}))
	before=$("$TORTURE" ops "$TESTDIR/model")
	log "workload: $TORTURE write --seed $seed --seconds $1 --threads $2"
	timeout -k 5 $(($1 + 120)) "$TORTURE" write --seed "$seed" \
		--seconds "$1" --threads "$2" "/dev/raidtool/$A" "$TESTDIR/model" \
		>> "$TLOG/log" 2>&1 &
	WPID=$!
	BGPIDS+=("$WPID")
	for _ in $(seq 200); do
		now=$("$TORTURE" ops "$TESTDIR/model")
		[ "$now" -gt "$before" ] && return 0
		kill -0 "$WPID" 2>/dev/null || break
		sleep 0.1
	done
	wait "$WPID" || rc=$?
	torture_fail "the workload made no write (exit $rc)"
}

# workload_end KILLED: wait for the workload; a failed I/O is expected only
# when the engine was killed, a model mismatch never.
workload_end() {
	local rc=0
	wait "$WPID" || rc=$?
	log "workload ended: exit $rc"
	case "$rc" in
	0) ;;
	3) [ "$1" = 1 ] || torture_fail "the workload saw an I/O error with the engine running" ;;
	1) torture_fail "the workload read back something it did not write" ;;
	*) torture_fail "the workload failed (exit $rc)" ;;
	esac
}

# Random sleep of 0 to $1 tenths of a second: when a fault strikes.
pause() {
	local t=$((RANDOM % ($1 + 1)))
	log "pause $((t / 10)).$((t % 10)) s"
	sleep "$((t / 10)).$((t % 10))"
}

# unit_fault KIND ROLE: what happens to the unit of ROLE.
unit_fault() {
	local ctl size start len io
	disk_of_role "$2"
	if [ -z "$DISK" ]; then
		log "role $2 has no unit: no fault"
		return 0
	fi
	ctl=$TESTDIR/ffs${FFIDX[$DISK]}/ctl
	size=$(stat -c %s "$TESTDIR/back${FFIDX[$DISK]}.img")
	start=$(( (RANDOM * 32768 + RANDOM) % size / 4096 * 4096 ))
	len=$(( (1 + RANDOM % 64) * 65536 ))
	case "$1" in
	transient) pick io read write
		log "unit $2: the next 2 ${io}s fail"
		echo "fail $io 0 0 2" > "$ctl" ;;
	readerr) log "unit $2: reads of $start+$len fail"
		echo "fail read $start $len" > "$ctl" ;;
	writeerr) log "unit $2: writes of $start+$len fail"
		echo "fail write $start $len" > "$ctl" ;;
	vanish) log "unit $2: the disk is gone (every I/O fails)"
		echo "fail rw" > "$ctl" ;;
	adminfail) must "$RAIDTOOL_BIN" fail "$A" "$2" ;;
	esac
}

# unit_absent ROLE: the array stops and starts again without ROLE's unit
# (its loop device detached), degraded; unit_back attaches it again.
unit_absent() {
	local dev
	disk_of_role "$1"
	ABSENT=$DISK
	dev=${UNITS[$ABSENT]}
	stop_array
	log "losetup -d $dev (role $1)"
	losetup -d "$dev"
	# Gone once nobody holds it (other tests' scans may, for a moment).
	for _ in $(seq 100); do
		[ -e "/sys/block/${dev#/dev/}/loop/backing_file" ] || break
		sleep 0.1
	done
	[ ! -e "/sys/block/${dev#/dev/}/loop/backing_file" ] || torture_fail "$dev stays attached"
	must "$RAIDTOOL_BIN" activate "$A"
	[[ "$OUT" == *"starting degraded"* ]] || torture_fail "started without role $1, not degraded"
}

unit_back() {
	UNITS[ABSENT]=$(losetup --direct-io=on --find --show "$TESTDIR/ffs${FFIDX[ABSENT]}/disk")
	log "the absent disk is back as ${UNITS[ABSENT]}"
}

# restart: after a kill, clean up and start the array again. A raid5 that
# lost a unit before the kill is refused for the write hole: then --force,
# legitimate only because no write was in flight ($1 = 1).
restart() {
	stop_array
	step "$RAIDTOOL_BIN" activate "$A"
	if [ "$RC" != 0 ] && [[ "$OUT" == *"write hole"* ]] && [ "$1" = 1 ]; then
		must "$RAIDTOOL_BIN" activate --force "$A"
	fi
	[ "$RC" = 0 ] || torture_fail "the array does not start again after kill -9: $OUT"
}

# readd: every disk the array lost (its faults cleared: the disk was
# replaced) is removed if still listed faulty and added back: into a role
# without a unit, or as a spare; a rebuild runs in the background.
readd() {
	local st dev i
	st=$("$RAIDTOOL_BIN" status --json "$A" 2>/dev/null)
	log "units: $(jq -c '[.units[] | {slot, state, device}]' <<<"$st")"
	for dev in $(jq -r '.units[] | select(.state == "faulty") | .device // empty' <<<"$st"); do
		# The unit being replaced: the replace's end releases it (maybe now).
		[ -z "${REPL:-}" ] || [ "$dev" != "${UNITS[REPL_OLD]}" ] || continue
		must "$RAIDTOOL_BIN" remove "$A" "$dev"
	done
	st=$("$RAIDTOOL_BIN" status --json "$A" 2>/dev/null)
	READDED=0
	for i in "${!UNITS[@]}"; do
		jq -e --arg d "${UNITS[$i]}" 'any(.units[]; .device == $d)' <<<"$st" >/dev/null &&
			continue
		# The unit being replaced, failed: the replacement takes its role.
		[ -z "${REPL:-}" ] || [ "$i" != "$REPL_OLD" ] || continue
		must "$RAIDTOOL_BIN" add "$A" "${UNITS[$i]}"
		READDED=1
	done
}

# settle: wait for the background walk, then every block against the model.
settle() {
	must "$RAIDTOOL_BIN" wait "$A"
	must "$TORTURE" verify "/dev/raidtool/$A" "$TESTDIR/model"
}

# check_zero: raid1 and raid5 must be whole, and check find nothing.
check_zero() {
	[ "$LEVEL" = 1 ] || [ "$LEVEL" = 5 ] || return 0
	[ "$(health)" = clean ] || torture_fail "not clean after recovery: $(health)"
	# A resync owed (regions a forced start left) may begin once the array
	# is whole, beside the check: wait then reports the later walk, and the
	# check is made again.
	for _ in 1 2 3; do
		step "$RAIDTOOL_BIN" check "$A"
		[ "$RC" = 0 ] || [[ "$OUT" == *"busy: "*" is running"* ]] ||
			torture_fail "check did not start: $OUT"
		must "$RAIDTOOL_BIN" wait "$A"
		[[ "$OUT" != *"check done:"* ]] || break
	done
	[[ "$OUT" == *"check done: 0 mismatches"* ]] || torture_fail "check: $OUT"
}

torture_pass() {
	local redundant=0 fault=none kill=none role killed=0 left
	if [ -z "$A" ] || chance 25; then
		new_array
	fi
	case "$LEVEL" in 1|5) redundant=1 ;; esac
	if [ "$redundant" = 1 ]; then
		pick fault none transient readerr writeerr vanish adminfail absent
	else
		pick fault none none transient
	fi
	pick kill none none mid mid mid mid idle
	# A raid5 that lost a unit and is killed with writes in flight may lose
	# blocks no one wrote (the write hole): beyond its redundancy.
	[ "$LEVEL" = 5 ] && [ "$fault" != none ] && [ "$fault" != transient ] &&
		[ "$kill" = mid ] && kill=idle
	role=$((RANDOM % NROLES))
	log "== level $LEVEL, fault $fault on role $role, kill $kill"

	[ "$fault" != absent ] || unit_absent "$role"
	REPL=
	if [ "$redundant" = 1 ] && [ "$fault" != absent ] && chance "${TORTURE_REPLACE:-25}"; then
		replace_begin $((RANDOM % NROLES))
	fi
	workload $((2 + RANDOM % 3)) $((1 + RANDOM % 6))
	pause 10
	case "$fault" in
	none|absent) ;;
	*) unit_fault "$fault" "$role" ;;
	esac
	if [ "$kill" = mid ]; then
		pause 15
		kill_engine
		killed=1
	fi
	workload_end "$killed"
	faulty_units_clear
	# A rule left in place would fail the next start's superblock reads
	# ("the next 2 reads fail" is exactly both copies of one unit).
	left=$(faulty_units_left)
	[ -z "$left" ] || torture_fail "fault rules outlived the clear: $left"
	log "faults served so far: $(faulty_units_counters)"
	if [ "$fault" = transient ] && [ "$killed" = 0 ] && [ "$(units_failed)" != 0 ]; then
		torture_fail "a transient error (within the retries) failed a unit"
	fi
	if [ "$kill" = idle ]; then
		kill_engine
		killed=1
	fi
	if [ "$killed" = 1 ]; then
		restart "$([ "$kill" = idle ] && echo 1 || echo 0)"
		# Killed again during the resync of the first kill's regions.
		if [[ "$OUT" == *resyncing* ]] && chance 30; then
			kill_engine
			restart 1
		fi
		settle
	fi
	[ "$fault" != absent ] || unit_back "$role"
	# The replace's rate limit lifted: the rest of it at full speed.
	[ -z "$REPL" ] || step "$RAIDTOOL_BIN" tune "$A" --speed-limit 0

	if [ "$redundant" = 1 ]; then
		readd
		if [ "$READDED" = 1 ]; then
			# The rebuild under a second workload, or killed and resumed.
			if chance 50; then
				# Settle the first workload's writes (reads during the rebuild).
				must "$TORTURE" verify "/dev/raidtool/$A" "$TESTDIR/model"
				WORKLOAD_SECOND=1 workload $((1 + RANDOM % 3)) $((1 + RANDOM % 4))
				if [ "$LEVEL" = 1 ] && chance 40; then
					pause 10
					kill_engine
					workload_end 1
					restart 0
				else
					workload_end 0
				fi
			elif chance 40; then
				pause 10
				kill_engine
				restart 1
			fi
		fi
	fi
	settle
	replace_end
	check_zero
	if chance 15; then
		stop_array
		must "$RAIDTOOL_BIN" activate "$A"
		settle
	fi
}

@test "torture: random workload, faults within the redundancy, kill -9; every block matches the model, check 0" {
	local secs=${RAIDTOOL_TORTURE_SECONDS:-120} end
	SEED=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
	RANDOM=$SEED
	echo "# torture: seed $SEED, ${secs} s, log $TLOG/log" >&3
	log "seed $SEED, $secs s"
	PASS=0 ARRAYS=0 UIDX=0
	end=$(($(date +%s) + secs))
	while [ "$(date +%s)" -lt "$end" ]; do
		PASS=$((PASS + 1))
		torture_pass
	done
	log "done: $PASS passes on $ARRAYS arrays"
	echo "# torture: $PASS passes on $ARRAYS arrays, seed $SEED" >&3
}

@test "torture model: a lost write and a misplaced one are found and named" {
	local dataoff
	faulty_unit 1 24M
	A="${NAME}m"
	run raidtool create "$A" --level linear --assume-clean "${UNITS[@]}"
	assert_success
	run raidtool activate "$A"
	assert_success
	run "$TORTURE" init --seed 5 "/dev/raidtool/$A" "$TESTDIR/model"
	assert_success
	run "$TORTURE" fill "/dev/raidtool/$A" "$TESTDIR/model"
	assert_success
	run "$TORTURE" write --seed 6 --seconds 1 --threads 2 "/dev/raidtool/$A" "$TESTDIR/model"
	assert_success
	run "$TORTURE" verify "/dev/raidtool/$A" "$TESTDIR/model"
	assert_success
	assert_output --partial " 0 wrong"
	run raidtool deactivate "$A"
	assert_success
	# Behind the array's back: block 1 given block 2's bytes (a misplaced
	# write), block 3 zeroed (a lost one: every block was written).
	dataoff=$(raidtool examine --json "${UNITS[0]}" | jq -r .this_unit.data_offset)
	dd if="${UNITS[0]}" of="$TESTDIR/b2" bs=4096 skip=$((dataoff / 4096 + 2)) count=1 \
		iflag=direct status=none
	dd if="$TESTDIR/b2" of="${UNITS[0]}" bs=4096 seek=$((dataoff / 4096 + 1)) count=1 \
		oflag=direct conv=notrunc status=none
	dd if=/dev/zero of="${UNITS[0]}" bs=4096 seek=$((dataoff / 4096 + 3)) count=1 \
		oflag=direct conv=notrunc status=none
	run raidtool activate "$A"
	assert_success
	run "$TORTURE" verify "/dev/raidtool/$A" "$TESTDIR/model"
	[ "$status" -eq 1 ] || fail "verify did not fail: $output"
	assert_output --partial "MISMATCH block 1 (byte 4096): holds the content of block 2 gen "
	assert_output --regexp "MISMATCH block 3 \(byte 12288\): holds gen 0; the model allows gen [1-9]"
	assert_output --partial " 2 wrong"
}
