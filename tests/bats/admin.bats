#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# Admin commands in turn and on the right array: concurrent creates of one
# name, a deactivate racing status, a hashcode naming a stopped array whose
# name a running one shares.

load helpers
bats_require_minimum_version 1.5.0

setup() {
	BGPIDS=()
	fuse_setup jq
}

teardown() {
	reap_bgpids
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

# status_loop OUT: `raidtool status NAME` over and over until the array is
# no longer active; one "exit-code<TAB>output" record per run, in OUT.
status_loop() {
	local out=$1 rc txt
	while :; do
		rc=0
		txt=$("$RAIDTOOL_BIN" status "$NAME" 2>&1) || rc=$?
		printf '%s\t%s\n' "$rc" "$(tr '\n' ' ' <<<"$txt")" >> "$out"
		if [ "$rc" != 0 ] || [[ "$txt" != *"state : active"* ]]; then
			break
		fi
	done
}

@test "deactivate racing status: deactivate succeeds, status never sees a reset, told when stopping" {
	local u round
	for round in 1 2 3; do
		mapfile -t u < <(make_images "r${round}u" 2 32M)
		run raidtool create "$NAME" --level 1 "${u[@]}"
		assert_success
		run --separate-stderr raidtool activate "$NAME"
		assert_success
		: > "$TESTDIR/status$round.out"
		status_loop "$TESTDIR/status$round.out" &
		BGPIDS+=("$!")
		status_loop "$TESTDIR/status$round.out" &
		BGPIDS+=("$!")
		# Both loops are running status against the engine.
		for _ in $(seq 100); do
			[ "$(wc -l < "$TESTDIR/status$round.out")" -ge 2 ] && break
			sleep 0.05
		done
		run raidtool deactivate "$NAME"
		assert_success
		assert_output --partial "stopped"
		wait "${BGPIDS[-1]}" "${BGPIDS[-2]}"
		# Every status either answered, said it is stopping, or found it inactive.
		if grep -Ev $'^0\t|^3\t.*(is stopping|stopped while answering|not running)' \
			"$TESTDIR/status$round.out"; then
			fail "round $round: a status failed otherwise (above)"
		fi
		grep -qi "reset" "$TESTDIR/status$round.out" && fail "round $round: connection reset seen"
		run raidtool zero "${u[@]}"
		assert_success
	done
}

@test "two arrays of one name, one running: a hashcode acts on exactly its array" {
	local ux sums
	require_python
	two_of_one_name
	ux=$(raidtool examine --json "${X[0]}" 2>/dev/null | jq -r .array.uuid)
	# The shared name is refused, naming both arrays.
	run raidtool activate "$NAME"
	assert_failure 2
	assert_output --partial "several arrays have this name"
	assert_output --partial "$HX"
	assert_output --partial "$HY"
	run --separate-stderr raidtool activate "$HY"
	assert_success
	DEV=$output
	sums=$(checksums "${X[@]}")
	# X's hashcode: X is inactive, whatever runs under the name.
	run --separate-stderr raidtool status --json "$HX"
	assert_success
	[ "$(jq -r .state <<<"$output")" = inactive ]
	[ "$(jq -r .hashcode <<<"$output")" = "$HX" ]
	run raidtool deactivate "$HX"
	assert_failure 3
	assert_output --partial "not running"
	run raidtool check "$HX"
	assert_failure 3
	assert_output --partial "not running"
	run --separate-stderr raidtool list --json
	assert_success
	[ "$(jq -r --arg h "$HX" '.arrays[] | select(.hashcode == $h) | .active' <<<"$output")" = false ]
	[ "$(jq -r --arg h "$HY" '.arrays[] | select(.hashcode == $h) | .active' <<<"$output")" = true ]
	# The engine itself refuses a request meant for another array (ESTALE).
	run control_raw "uuid=$ux check"
	assert_success
	[ "$(jq -r .errno <<<"$output")" = 116 ] || fail "engine served X's request: $output"
	# Y ran throughout, X's units were not touched.
	run --separate-stderr raidtool status --json "$HY"
	[ "$(jq -r .state <<<"$output")" = active ]
	[ -b "$DEV" ]
	[ "$(checksums "${X[@]}")" = "$sums" ]
	run raidtool deactivate "$HY"
	assert_success
}

# hold_lock KEY: another command holds lock KEY (under the run directory)
# until the test kills the holder.
hold_lock() {
	mkdir -p "$RAIDTOOL_RUNDIR/lock"
	rm -f "$TESTDIR/held"
	flock "$RAIDTOOL_RUNDIR/lock/$1" -c "touch '$TESTDIR/held'; exec sleep 60" 3>&- &
	BGPIDS+=("$!")
	for _ in $(seq 100); do
		[ -e "$TESTDIR/held" ] && return 0
		sleep 0.05
	done
	fail "the lock holder did not start"
}

@test "admin locks: a command waits for the array's (or the names') lock, then says busy (exit 4)" {
	local u uuid sums
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 "${u[@]}"
	assert_success
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	uuid=$(raidtool lookup --json "$NAME" 2>/dev/null | jq -r .uuid)
	hold_lock "$uuid"
	for cmd in deactivate check; do
		RAIDTOOL_LOCK_TIMEOUT=1 run raidtool "$cmd" "$NAME"
		assert_failure 4
		assert_output --partial "busy: another raidtool command has been working on this array"
	done
	run --separate-stderr raidtool status --json "$NAME"
	assert_success
	[ "$(jq -r .state <<<"$output")" = active ]
	# Once the holder is gone the command goes ahead.
	kill "${BGPIDS[-1]}"
	run raidtool deactivate "$NAME"
	assert_success
	assert_output --partial "stopped"
	# create's name check waits for the names lock the same way.
	mapfile -t u < <(make_images n 2 32M)
	sums=$(checksums "${u[@]}")
	hold_lock names
	RAIDTOOL_LOCK_TIMEOUT=1 run raidtool create "${NAME}n" --level 1 "${u[@]}"
	assert_failure 4
	assert_output --partial "busy"
	[ "$(checksums "${u[@]}")" = "$sums" ]
	kill "${BGPIDS[-1]}"
	run raidtool create "${NAME}n" --level 1 "${u[@]}"
	assert_success
}

@test "admin locks: offline add, rename, rehash, zero and incremental wait, then say busy (exit 4), changing nothing" {
	local u uuid sums s loop
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	uuid=$(raidtool lookup --json "$NAME" 2>/dev/null | jq -r .uuid)
	s=$(make_image spare.img 32M)
	sums=$(checksums "${u[@]}" "$s")
	# The array's lock: every command that changes this array waits for it.
	hold_lock "$uuid"
	for cmd in "add $NAME $s" "rename $NAME ${NAME}x" "rehash $NAME 0badf00d"; do
		# shellcheck disable=SC2086  # the command and its arguments
		RAIDTOOL_LOCK_TIMEOUT=1 run raidtool $cmd
		assert_failure 4
		assert_output --partial "busy: another raidtool command"
	done
	# incremental (the udev path) waits at most 5 s and does not start the array.
	loop=$(loop_of "${u[0]}")
	RAIDTOOL_LOCK_TIMEOUT=1 run raidtool incremental --run "$loop"
	assert_failure 4
	assert_output --partial "busy"
	run --separate-stderr raidtool status --json "$NAME"
	[ "$(jq -r .state <<<"$output")" = inactive ]
	kill "${BGPIDS[-1]}"
	# The names' lock: what writes superblocks of units not running waits for it.
	hold_lock names
	for cmd in "zero ${u[0]}" "add $NAME $s" "rename $NAME ${NAME}x" "rehash $NAME 0badf00d"; do
		# shellcheck disable=SC2086  # the command and its arguments
		RAIDTOOL_LOCK_TIMEOUT=1 run raidtool $cmd
		assert_failure 4
		assert_output --partial "busy: another raidtool command"
	done
	[ "$(checksums "${u[@]}" "$s")" = "$sums" ]
	kill "${BGPIDS[-1]}"
	# Free again: they go ahead.
	run raidtool rehash "$NAME" 0badf00d
	assert_success
	run raidtool add "$NAME" "$s"
	assert_success
}

@test "RAIDTOOL_LOCK_TIMEOUT that is not a number of seconds: refused naming it (exit 2), nothing written" {
	local u sums bad cmd
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	sums=$(checksums "${u[@]}")
	for bad in abc 5s -1 86401 99999999999999999999; do
		for cmd in "rename $NAME ${NAME}x" "activate $NAME" "zero ${u[0]}"; do
			# shellcheck disable=SC2086  # the command and its arguments
			RAIDTOOL_LOCK_TIMEOUT=$bad run raidtool $cmd
			assert_failure 2
			assert_output --partial "RAIDTOOL_LOCK_TIMEOUT='$bad': not a number of seconds"
		done
	done
	[ "$(checksums "${u[@]}")" = "$sums" ]
	run --separate-stderr raidtool status --json "$NAME"
	[ "$(jq -r .state <<<"$output")" = inactive ]
	# Empty is the default; 0 does not wait.
	RAIDTOOL_LOCK_TIMEOUT='' run raidtool rename "$NAME" "${NAME}x"
	assert_success
	RAIDTOOL_LOCK_TIMEOUT=0 run raidtool rename "${NAME}x" "$NAME"
	assert_success
}

@test "activate and deactivate started together: run in turn, never 'still starting'" {
	local u ra rd round
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 "${u[@]}"
	assert_success
	for round in 1 2 3 4 5; do
		"$RAIDTOOL_BIN" activate "$NAME" >"$TESTDIR/a.out" 2>&1 &
		BGPIDS+=("$!")
		"$RAIDTOOL_BIN" deactivate "$NAME" >"$TESTDIR/d.out" 2>&1 &
		BGPIDS+=("$!")
		ra=0; rd=0
		wait "${BGPIDS[-2]}" || ra=$?
		wait "${BGPIDS[-1]}" || rd=$?
		[ "$ra" = 0 ] || fail "round $round: activate: $(cat "$TESTDIR/a.out")"
		if [ "$rd" = 0 ]; then
			grep -q "stopped" "$TESTDIR/d.out" || fail "round $round: $(cat "$TESTDIR/d.out")"
		else
			# It came first and found nothing running: the array runs now.
			[ "$rd" = 3 ] && grep -q "not running" "$TESTDIR/d.out" ||
				fail "round $round: deactivate exit $rd: $(cat "$TESTDIR/d.out")"
			run raidtool deactivate "$NAME"
			assert_success
		fi
		run --separate-stderr raidtool status --json "$NAME"
		assert_success
		[ "$(jq -r .state <<<"$output")" = inactive ]
	done
}

# holds_open PID FILE: process PID has FILE open.
holds_open() {
	local fd
	for fd in /proc/"$1"/fd/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = "$2" ] && return 0
	done
	return 1
}

@test "a command that waited for the lock of an array that stopped meanwhile says so, not ENOENT" {
	local u uuid pid rm_pid rc
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	uuid=$(raidtool lookup --json "$NAME" 2>/dev/null | jq -r .uuid)
	pid=$(raidtool status --json "$NAME" 2>/dev/null | jq -r .pid)
	hold_lock "$uuid"
	"$RAIDTOOL_BIN" remove "$NAME" 0 >"$TESTDIR/remove.out" 2>&1 &
	rm_pid=$!
	BGPIDS+=("$rm_pid")
	# remove has found the array running and waits for its lock.
	for _ in $(seq 200); do
		holds_open "$rm_pid" "$RAIDTOOL_RUNDIR/lock/$uuid" && break
		sleep 0.05
	done
	holds_open "$rm_pid" "$RAIDTOOL_RUNDIR/lock/$uuid" || fail "remove never waited for the lock"
	# The engine stops (as a deactivate holding the lock would stop it).
	kill -TERM "$pid"
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && fail "engine $pid did not stop"
	kill "${BGPIDS[-2]}"
	rc=0
	wait "$rm_pid" || rc=$?
	[ "$rc" = 3 ] || fail "remove: exit $rc: $(cat "$TESTDIR/remove.out")"
	grep -q "not running (it stopped while this command waited" "$TESTDIR/remove.out" ||
		fail "remove: $(cat "$TESTDIR/remove.out")"
	if grep -q "No such file" "$TESTDIR/remove.out"; then
		fail "remove: $(cat "$TESTDIR/remove.out")"
	fi
}

# race OUT_A OUT_B ARGS_A... -- ARGS_B...: two raidtool commands started
# together, their output in OUT_A and OUT_B, their exit codes in RA and RB.
race() {
	local out_a=$1 out_b=$2 i
	shift 2
	for ((i = 1; i <= $#; i++)); do [ "${!i}" = -- ] && break; done
	"$RAIDTOOL_BIN" "${@:1:i-1}" >"$out_a" 2>&1 &
	BGPIDS+=("$!")
	"$RAIDTOOL_BIN" "${@:i+1}" >"$out_b" 2>&1 &
	BGPIDS+=("$!")
	RA=0; RB=0
	wait "${BGPIDS[-2]}" || RA=$?
	wait "${BGPIDS[-1]}" || RB=$?
}

# sb_of UNIT: what a unit's superblock says of its array, one line:
# "events name hashcode uuid unit-hashcodes...".
sb_of() {
	raidtool examine --json "$1" 2>/dev/null |
		jq -r '[.events, .array.name, .array.hashcode, .array.uuid] + .array.unit_hashcodes | join(" ")'
}

# same_sb UNIT...: every unit's superblock says the same; prints it.
same_sb() {
	local first u cur
	first=$(sb_of "$1")
	[ -n "$first" ] || fail "'$1': no superblock"
	for u in "${@:2}"; do
		cur=$(sb_of "$u")
		[ "$cur" = "$first" ] || fail "superblocks differ: '$1': $first; '$u': $cur"
	done
	echo "$first"
}

@test "rehash racing rename, ten times over: both take effect, in turn; every unit agrees" {
	local u i hash newhash rn rh before after events
	mapfile -t u < <(make_images u 3 16M)
	run raidtool create "$NAME" --level 5 --assume-clean "${u[@]}"
	assert_success
	hash=$(hashcode_of "${u[0]}")
	for i in $(seq 10); do
		before=$(same_sb "${u[@]}")
		newhash=$(printf '%08x' $((0x1d000000 + $$ % 4096 * 16 + i)))
		race "$TESTDIR/h.out" "$TESTDIR/n.out" rehash "$hash" "$newhash" -- \
			rename "$hash" "${NAME}r$i"
		rh=$RA; rn=$RB
		[ "$rh" = 0 ] || fail "round $i: rehash exit $rh: $(cat "$TESTDIR/h.out")"
		after=$(same_sb "${u[@]}")
		events=${before%% *}
		if [ "$rn" = 0 ]; then
			# Both took effect: two updates, the name and the hashcode both new.
			[ "${after%% *}" = $((events + 2)) ] || fail "round $i: $before -> $after"
			[ "$(cut -d' ' -f2,3 <<<"$after")" = "${NAME}r$i $newhash" ] ||
				fail "round $i: $before -> $after"
		else
			# Rename came second and no longer found the old hashcode: only the rehash.
			[ "$rn" = 3 ] && grep -q "no such array" "$TESTDIR/n.out" ||
				fail "round $i: rename exit $rn: $(cat "$TESTDIR/n.out")"
			[ "${after%% *}" = $((events + 1)) ] || fail "round $i: $before -> $after"
			run raidtool rename "$newhash" "${NAME}r$i"
			assert_success
		fi
		hash=$newhash
	done
	# The scan agrees: every unit current, none in conflict.
	run --separate-stderr raidtool list --json --units "$hash"
	assert_success
	[ "$(jq -r '[.[] | .state] | join(",")' <<<"$output")" = "active,active,active" ] ||
		fail "units: $output"
}

@test "add racing add of one unit to two stopped arrays, ten times over: exactly one takes it" {
	local a b i s ra rb sa sb_ ua ub
	mapfile -t a < <(make_images a 2 16M)
	mapfile -t b < <(make_images b 2 16M)
	run raidtool create "${NAME}a" --level 1 --assume-clean "${a[@]}"
	assert_success
	run raidtool create "${NAME}b" --level 1 --assume-clean "${b[@]}"
	assert_success
	ua=$(raidtool examine --json "${a[0]}" 2>/dev/null | jq -r .array.uuid)
	ub=$(raidtool examine --json "${b[0]}" 2>/dev/null | jq -r .array.uuid)
	for i in $(seq 10); do
		s=$(make_image "s$i.img" 16M)
		sa=$(same_sb "${a[@]}")
		sb_=$(same_sb "${b[@]}")
		race "$TESTDIR/a.out" "$TESTDIR/b.out" add "${NAME}a" "$s" -- add "${NAME}b" "$s"
		ra=$RA; rb=$RB
		# One loop device for the file, whoever attached it.
		[ "$(losetup -nO NAME -j "$s" | wc -l)" = 1 ] ||
			fail "round $i: $(losetup -nO NAME -j "$s" | wc -l) loop devices on $s"
		if [ "$ra" = 0 ] && [ "$rb" != 0 ]; then
			[ "$(raidtool examine --json "$s" 2>/dev/null | jq -r .array.uuid)" = "$ua" ]
			a+=("$s")
			[ "$(same_sb "${b[@]}")" = "$sb_" ] || fail "round $i: b changed"
		elif [ "$rb" = 0 ] && [ "$ra" != 0 ]; then
			[ "$(raidtool examine --json "$s" 2>/dev/null | jq -r .array.uuid)" = "$ub" ]
			b+=("$s")
			[ "$(same_sb "${a[@]}")" = "$sa" ] || fail "round $i: a changed"
		else
			fail "round $i: exits $ra and $rb: $(cat "$TESTDIR/a.out" "$TESTDIR/b.out")"
		fi
		# The loser was refused for what the unit holds now (exit 5), nothing else.
		[ $((ra + rb)) = 5 ] || fail "round $i: $(cat "$TESTDIR/a.out" "$TESTDIR/b.out")"
		# The winner's units all agree, one update further, the new unit a spare in it.
		same_sb "${a[@]}" >/dev/null
		same_sb "${b[@]}" >/dev/null
	done
	[ $(( ${#a[@]} + ${#b[@]} )) = 14 ]
}

@test "remove: a second role added while stopped, not yet rebuilding after the start, can be taken out" {
	local u s1 s2
	mapfile -t u < <(make_images "u" 3 16M)
	raidtool create "$NAME" --level 1 --assume-clean "${u[@]}" >/dev/null
	raidtool activate "$NAME" >/dev/null
	raidtool fail "$NAME" 1 >/dev/null
	raidtool remove "$NAME" 1 >/dev/null
	raidtool fail "$NAME" 2 >/dev/null
	raidtool remove "$NAME" 2 >/dev/null
	raidtool deactivate "$NAME" >/dev/null
	# Both missing roles take a unit on disk: both REBUILDING in the role table.
	s1=$(make_image "s1.img" 16M)
	s2=$(make_image "s2.img" 16M)
	raidtool add "$NAME" "$s1" "$s2" >/dev/null
	RAIDTOOL_SYNC_SPEED_MAX=1M raidtool activate "$NAME" >/dev/null
	# The start resumes one rebuild; the other role's unit waits outside the engine.
	run --separate-stderr raidtool remove "$NAME" 2
	if [ "$status" != 0 ]; then
		# Role 2 is the one being rebuilt: then role 1 waits.
		run --separate-stderr raidtool remove "$NAME" 1
	fi
	assert_success
	# shellcheck disable=SC2154  # stderr: set by run --separate-stderr
	[[ "$output$stderr" == *removed* ]] || fail "$output $stderr"
	raidtool deactivate "$NAME" >/dev/null
}
