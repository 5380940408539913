#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# The admin stress test (issue 10): four loops run random admin commands
# (create, add, fail, remove, status, list, activate, deactivate, rename) on
# three arrays at once for RAIDTOOL_STRESS_SECONDS (default 60), while a
# fifth writes known data to whichever array runs. Every command must exit
# with a documented code (0, or a refusal or busy with a reason raidtool(8)
# gives for it) within a time limit, and never report a reset connection. Afterwards every unit's superblock is examined
# (the units of one array agree, stale ones are not listed in use), and every
# array, made whole again, holds the data last written to it.

load helpers

bats_require_minimum_version 1.5.0

# Data is written in slots of 768 KiB: a whole number of data stripes of
# every array here (raid5 of 4 with 64K chunks: 192K; raid0 of 2: 128K), so
# that a write that fails (the array failed under it) leaves no other
# slot's stripes inconsistent.
SLOT_KIB=768
NSLOTS=16
# Every command is given this long before it counts as hung.
CMD_TIMEOUT=120

setup() {
	BGPIDS=()
	fuse_setup jq
	# A command waiting for another's lock gives up (busy, exit 4) well
	# before it counts as hung.
	export RAIDTOOL_LOCK_TIMEOUT=30
	STRESS_SECONDS=${RAIDTOOL_STRESS_SECONDS:-60}
	BAD=$TESTDIR/bad
	: > "$BAD"
	mkdir -p "$TESTDIR/expect"
}

teardown() {
	local keep
	# The loops end at their next command; each command is bounded.
	[ -n "${TESTDIR:-}" ] && touch "$TESTDIR/stop" 2>/dev/null
	stop_loops
	# Kept on failure, or always where RAIDTOOL_STRESS_LOG names a file.
	if { [ -z "${BATS_TEST_COMPLETED:-}" ] || [ -n "${RAIDTOOL_STRESS_LOG:-}" ]; } &&
		[ -d "${TESTDIR:-}" ]; then
		keep=${RAIDTOOL_STRESS_LOG:-$(mktemp /tmp/raidtool-stress.XXXXXX.log)}
		cat "$TESTDIR"/loop*.log "$TESTDIR"/data.log "$BAD" > "$keep" 2>/dev/null
		echo "# stress log kept in $keep" >&3
	fi
	scratch_teardown
}

# stop_loops: wait for the loops (they stop at $TESTDIR/stop), killing
# those that outlive the longest command they can be in.
stop_loops() {
	local p deadline=$(($(date +%s) + CMD_TIMEOUT + 10))
	for p in "${BGPIDS[@]}"; do
		while kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
			sleep 0.2
		done
	done
	reap_bgpids
}

# bad MESSAGE: a finding; the test fails on any.
bad() {
	printf '%s\n' "$*" >> "$BAD"
}

# cmd LOG ARGS...: run one raidtool command, bounded in time; log it and
# its output to LOG; check that it ended with a documented exit code. The
# output is left in $OUT, the exit code in $RC.
cmd() {
	local log=$1
	shift
	RC=0
	OUT=$(timeout -k 5 "$CMD_TIMEOUT" "$RAIDTOOL_BIN" "$@" 2>&1) || RC=$?
	printf '%s %s -> %s\n%s\n' "$(date +%T.%N)" "$*" "$RC" "${OUT//$'\n'/$'\n'    }" >> "$log"
	case "$RC" in
	0) ;;
	1 | 3 | 4 | 5)
		# A refusal says why, in the words raidtool(8) documents for it.
		grep -qE "${REFUSALS[RC]}" <<<"$OUT" || bad "exit $RC, not for a known reason: raidtool $*: $OUT" ;;
	124 | 137) bad "hung (killed after ${CMD_TIMEOUT}s): raidtool $*" ;;
	*) bad "exit $RC: raidtool $*: $OUT" ;;
	esac
	if grep -qi "connection reset\|broken pipe" <<<"$OUT"; then
		bad "reset: raidtool $*: $OUT"
	fi
}

# The reasons a command of the storm may give for each refusal (exit code):
# what the state of the moment explains. Anything else is a finding (e.g. a
# deactivate whose loop device did not detach, an add told ENOENT).
REFUSALS=(
	[1]="has no redundancy|too small for array"
	[3]="not running|is stopping|has no unit to remove|not a unit of this array"
	[4]="already active|already faulty|is working; fail it first|is being rebuilt|still holds|in use|is open in process|cannot stop|busy:"
	[5]="name already taken|is a unit of array|already a unit of array|could not take writes without it"
)

# pick WORD...: one of the words, at random.
pick() {
	local a=("$@")
	echo "${a[RANDOM % ${#a[@]}]}"
}

# A random unit image: a member, a spare, or a create-pool image (too small
# for the arrays: add must refuse it).
any_image() {
	pick "${IMAGES[@]}"
}

# storm_step LOOP LOG: one random admin command on one of the three arrays.
storm_step() {
	local id=$1 log=$2 a h roles u v w m try
	a=$((RANDOM % 3))
	h=${HASHES[a]}
	roles=${ROLES[a]}
	case $((RANDOM % 16)) in
	0) cmd "$log" status "$h" ;;
	1) cmd "$log" list ;;
	2) cmd "$log" list --units="$h" --json ;;
	3 | 4)
		# Whichever changes the array's state, as far as status knows.
		if "$RAIDTOOL_BIN" status "$h" 2>/dev/null | grep -q "state *: active"; then
			cmd "$log" deactivate "$h"
		else
			cmd "$log" activate "$h"
		fi
		# An array failed beyond its level: forced assembly, as an admin would.
		if [ "$RC" = 3 ] && [[ "$OUT" == *"activate --force"* ]]; then
			cmd "$log" activate --force "$h"
		fi ;;
	5) cmd "$log" activate "$h" ;;
	6) cmd "$log" deactivate "$h" ;;
	7) cmd "$log" fail "$h" $((RANDOM % roles)) ;;
	8) cmd "$log" remove "$h" $((RANDOM % roles)) ;;
	9)
		# By the loop device of any unit (a spare's, another array's).
		u=$(loop_of "$(any_image)")
		cmd "$log" remove "$h" "${u:-0}" ;;
	10)
		# A spare, or one of the array's own units (back after fail and remove).
		read -r -a m <<<"${MEMBERS[a]}"
		cmd "$log" add "$h" "$(pick "${SPARES[@]}" "${m[@]}")" ;;
	11) cmd "$log" add "$h" "$(any_image)" ;;
	12) cmd "$log" rename "$h" "${NAME}a${a}n$((RANDOM % 2))" ;;
	13)
		# The anchor's name is taken all along: create must refuse it,
		# whatever the units.
		u=$(any_image)
		v=$(any_image)
		if [ "$u" != "$v" ]; then
			cmd "$log" create "${NAME}anchor" --level 1 "$u" "$v"
			if [ "$RC" = 0 ]; then
				bad "create took the name ${NAME}anchor, which is in use: $OUT"
			fi
		fi ;;
	14 | 15)
		# A scratch array on this loop's own units, under the one name all
		# loops use: while another loop's exists, create must refuse it.
		u=${CPOOL[2 * id]}
		v=${CPOOL[2 * id + 1]}
		cmd "$log" create "${NAME}scratch" --level 1 --assume-clean "$u" "$v"
		if [ "$RC" = 0 ]; then
			cmd "$log" lookup "${NAME}scratch"
			[ "$RC" = 0 ] || bad "two arrays named ${NAME}scratch: $OUT"
			# Another loop's create or add may hold one of these images
			# open for a moment (any_image picks them too): zero refuses
			# it "in use", rightly. A refusal that lasts is a leak.
			for w in "$u" "$v"; do
				for try in 1 2 3 4 5 6 7 8 9 10; do
					cmd "$log" zero "$w"
					if [ "$RC" = 0 ] || [[ "$OUT" != *"in use"* ]]; then
						break
					fi
					sleep 0.3
				done
				[ "$RC" = 0 ] || bad "zero of the scratch array's unit failed ($try tries): $OUT"
			done
		fi ;;
	esac
	return 0
}

# storm_loop ID END: random admin commands until END (seconds since the
# epoch); notes in its log that it lasted (bats' errexit would end a loop at
# the first refused command).
storm_loop() {
	local id=$1 end=$2 log=$TESTDIR/loop$1.log
	set +e
	RANDOM=$((id * 7919 + $$))
	while [ "$(date +%s)" -lt "$end" ] && [ ! -e "$TESTDIR/stop" ]; do
		storm_step "$id" "$log"
	done
	echo "loop $id done" >> "$log"
}

# write_slot A SLOT DEV: write fresh random data into slot SLOT of array A
# through DEV; what the slot holds is known again only once the write (and
# its flush) succeeded.
write_slot() {
	local a=$1 s=$2 dev=$3 new=$TESTDIR/new$1
	head -c $((SLOT_KIB << 10)) /dev/urandom > "$new"
	rm -f "$TESTDIR/expect/$a.$s"
	timeout -k 5 "$CMD_TIMEOUT" dd if="$new" of="$dev" bs="${SLOT_KIB}K" seek="$s" count=1 \
		oflag=direct conv=fsync,notrunc,nocreat status=none 2>"$TESTDIR/dd.err" || return 1
	mv "$new" "$TESTDIR/expect/$a.$s"
}

# data_loop END: write a known pattern into a random slot of whichever array
# runs, between the admin commands.
data_loop() {
	local end=$1 log=$TESTDIR/data.log a dev s health
	set +e
	RANDOM=$$
	while [ "$(date +%s)" -lt "$end" ] && [ ! -e "$TESTDIR/stop" ]; do
		a=$((RANDOM % 3))
		dev=$("$RAIDTOOL_BIN" status --json "${HASHES[a]}" 2>/dev/null |
			jq -r 'select(.state == "active") | .device')
		if [ -z "$dev" ]; then
			sleep 0.1	# pacing: nothing runs at this moment
			continue
		fi
		s=$((RANDOM % NSLOTS))
		if write_slot "$a" "$s" "$dev"; then
			echo "$(date +%T.%N) array $a slot $s written" >> "$log"
			continue
		fi
		health=$("$RAIDTOOL_BIN" status --json "${HASHES[a]}" 2>/dev/null | jq -r .health)
		echo "$(date +%T.%N) array $a slot $s: write failed (health now $health):" \
			"$(cat "$TESTDIR/dd.err")" >> "$log"
		# The device went away before dd opened it: a deactivate came first.
		# Once open, it cannot be stopped, and no admin command makes an
		# array fail (fail refuses a unit its level cannot spare).
		if ! grep -q "failed to open" "$TESTDIR/dd.err"; then
			bad "array $a slot $s: a write failed (health now $health): $(cat "$TESTDIR/dd.err")"
		fi
	done
	echo "data loop done" >> "$log"
}

# make_array A LEVEL COUNT: array A (0..2) of COUNT 32M units, running,
# every slot written.
make_array() {
	local a=$1 level=$2 count=$3 u s
	mapfile -t u < <(make_images "a${a}u" "$count" 32M)
	run raidtool create "${NAME}a${a}n0" --level "$level" --chunk 64K --assume-clean "${u[@]}"
	assert_success
	HASHES[a]=$(raidtool lookup --json "${NAME}a${a}n0" 2>/dev/null | jq -r .hashcode)
	ROLES[a]=$count
	LEVELS[a]=$level
	IMAGES+=("${u[@]}")
	MEMBERS[a]="${u[*]}"
	run --separate-stderr raidtool activate "${HASHES[a]}"
	assert_success
	for ((s = 0; s < NSLOTS; s++)); do
		write_slot "$a" "$s" "$output" || fail "initial write of array $a slot $s: $(cat "$TESTDIR/dd.err")"
	done
}

# superblocks_agree: after every array stopped, the units of each array
# agree: those at the array's highest events hold the same array
# descriptor, role table and state (clean, unless more roles are down than
# the level survives: then the final flush failed), every slot the table has in use
# has such a unit, and a unit behind is not listed in use.
superblocks_agree() {
	local f problems
	: > "$TESTDIR/examined"
	for f in "${IMAGES[@]}" "${CPOOL[@]}"; do
		run --separate-stderr raidtool examine --json "$f"
		if [ "$status" = 3 ]; then
			continue	# wiped (a scratch array's unit): nothing to agree with
		fi
		[ "$status" = 0 ] || fail "examine $f: status $status: $output"
		echo "$output" >> "$TESTDIR/examined"
	done
	problems=$(jq -rs '
		group_by(.array.uuid)[] |
		(map(.events) | max) as $e |
		map(select(.events == $e)) as $fresh |
		$fresh[0] as $f |
		(map(select(.events < $e))) as $behind |
		def inuse: .state == "active" or .state == "rebuilding" or .state == "spare";
		($fresh[] | select(({a: .array, r: .roles, s: .state} | tostring) !=
			({a: $f.array, r: $f.roles, s: $f.state} | tostring)) |
			"\(.array.name): \(.unit) at events \($e) differs from \($f.unit)"),
		# An array failed beyond its level stops dirty (its final flush fails).
		([$f.roles[] | select(.slot < $f.array.n_devices and .state != "active")] | length)
			as $down |
		({raid0: 0, linear: 0, raid1: ($f.array.n_devices - 1), raid5: 1}[$f.array.level])
			as $spare |
		($fresh[] | select(.state != "clean" and $down <= $spare) |
			"\(.array.name): \(.unit) is \(.state) after a clean stop"),
		($fresh[] | . as $u | select([$f.roles[] | select(.uuid == $u.this_unit.uuid and
			.slot == $u.this_unit.slot and .state == $u.this_unit.state)] | length != 1) |
			"\(.array.name): \(.unit) (slot \(.this_unit.slot), \(.this_unit.state)) is not so in its table"),
		($f.roles[] | select(inuse) | . as $r |
			select([$fresh[] | select(.this_unit.uuid == $r.uuid)] | length != 1) |
			"\($f.array.name): slot \($r.slot) (\($r.state), \($r.hashcode)) has no unit at events \($e)"),
		($behind[] | . as $u | select([$f.roles[] | select(.uuid == $u.this_unit.uuid) |
			select(inuse)] | length > 0) |
			"\(.array.name): \(.unit) is at events \(.events), behind \($e), yet listed in use")
		' "$TESTDIR/examined")
	[ -z "$problems" ] || fail "superblocks disagree: $problems"
}

# verify_slots A DEV: every slot of array A whose last write succeeded holds it.
verify_slots() {
	local a=$1 dev=$2 s n=0
	for ((s = 0; s < NSLOTS; s++)); do
		[ -f "$TESTDIR/expect/$a.$s" ] || continue
		cmp <(dd if="$dev" bs="${SLOT_KIB}K" skip="$s" count=1 iflag=direct status=none) \
			"$TESTDIR/expect/$a.$s" || fail "array $a slot $s differs from what was written"
		n=$((n + 1))
	done
	echo "# array $a: $n of $NSLOTS slots verified" >&3
}

# stop_array H: deactivate array H. One that failed beyond its level stops
# too, but says that its final flush failed (exit 1) and stays dirty.
stop_array() {
	local h=$1 health
	health=$(raidtool status --json "$h" 2>/dev/null | jq -r .health)
	if [ "$health" != failed ]; then
		deactivate_settled "$h"
		return
	fi
	for _ in $(seq 20); do
		run raidtool deactivate "$h"
		[[ "$output" == *"is open in process"* ]] || break
		sleep 0.2
	done
	if [ "$status" != 1 ] || [[ "$output" != *"final flush failed"* ]]; then
		fail "deactivate of failed array $h: status $status: $output"
	fi
	run --separate-stderr raidtool status --json "$h"
	assert_success
	[ "$(jq -r .state <<<"$output")" = inactive ] || fail "array $h still runs: $output"
}

# restore A: start array A (forced where the storm failed it beyond its
# level), make it whole with fresh units, verify its data, check it.
# shellcheck disable=SC2154  # stderr: set by run --separate-stderr
restore() {
	local a=$1 h=${HASHES[$1]} dev i role
	run --separate-stderr raidtool activate "$h"
	if [ "$status" = 3 ] && [[ "$stderr" == *"activate --force"* ]]; then
		run --separate-stderr raidtool activate --force "$h"
	fi
	[ "$status" = 0 ] || fail "activate array $a: $status: $stderr"
	dev=$output
	run raidtool wait "$h"
	assert_success
	if [ "${LEVELS[a]}" = 1 ] || [ "${LEVELS[a]}" = 5 ]; then
		for i in $(seq "${ROLES[a]}"); do
			[ "$(raidtool status --json "$h" | jq -r .health)" = clean ] && break
			# Faulty units out, then a fresh unit for a role without one.
			for role in $(raidtool status --json "$h" |
				jq -r '.units[] | select(.state == "faulty" and .device != "-" and
					.device != null and .device != "") | .role'); do
				run raidtool remove "$h" "$role"
				assert_success
			done
			run raidtool add "$h" "$(make_image "fin$a.$i.img" 32M)"
			assert_success
			run raidtool wait "$h"
			assert_success
		done
		run raidtool status --json "$h"
		[ "$(jq -r .health <<<"$output")" = clean ] || fail "array $a not whole: $output"
	fi
	verify_slots "$a" "$dev"
	if [ "${LEVELS[a]}" = 1 ] || [ "${LEVELS[a]}" = 5 ]; then
		run raidtool check "$h"
		assert_success
		run raidtool wait "$h"
		assert_success
		assert_output --partial "check done: 0 mismatches"
	fi
	deactivate_settled "$h"
}

@test "stress: four loops of random admin commands on three arrays under writes; superblocks agree, data verifies" {
	local a end i
	IMAGES=()
	HASHES=()
	ROLES=()
	LEVELS=()
	MEMBERS=()
	make_array 0 1 3
	make_array 1 5 4
	make_array 2 0 2
	# Spares, and the names' anchor (an array nobody touches).
	mapfile -t SPARES < <(make_images spare 4 32M)
	IMAGES+=("${SPARES[@]}")
	run raidtool create "${NAME}anchor" --level linear "$(make_image anchor.img 8M)"
	assert_success
	# Each loop's own pair of small images for its scratch arrays.
	mapfile -t CPOOL < <(make_images cpool 8 8M)
	IMAGES+=("${CPOOL[@]}")
	end=$(($(date +%s) + STRESS_SECONDS))
	for i in 0 1 2 3; do
		storm_loop "$i" "$end" &
		BGPIDS+=("$!")
	done
	data_loop "$end" &
	BGPIDS+=("$!")
	stop_loops
	[ "$(date +%s)" -ge "$end" ] || fail "the storm ended early"
	for i in 0 1 2 3; do
		grep -q "loop $i done" "$TESTDIR/loop$i.log" || fail "loop $i did not last"
	done
	grep -q "data loop done" "$TESTDIR/data.log" || fail "the data loop did not last"
	echo "# $(cat "$TESTDIR"/loop*.log | grep -cE -- '-> [0-9]+$') commands, $(grep -c written "$TESTDIR/data.log") writes," \
		"$(grep -c 'write failed' "$TESTDIR/data.log") failed writes" >&3
	[ ! -s "$BAD" ] || fail "$(cat "$BAD")"
	# Walks finish, everything stops.
	for a in 0 1 2; do
		run --separate-stderr raidtool status --json "${HASHES[a]}"
		assert_success
		if [ "$(jq -r .state <<<"$output")" = active ]; then
			run raidtool wait "${HASHES[a]}"
			stop_array "${HASHES[a]}"
		fi
	done
	superblocks_agree
	for a in 0 1 2; do
		restore "$a"
	done
}
