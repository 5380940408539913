#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# Admin commands in turn and on the right array: concurrent creates of one
# name, a deactivate racing status, a hashcode naming a stopped array whose
# name a running one shares.

load helpers
bats_require_minimum_version 1.5.0

setup() {
	BGPIDS=()
	require_fuse
	command -v jq >/dev/null || require "needs jq"
	scratch_setup
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
		if grep -Ev $'^0\t|^3\t.*(is stopping|stopped while answering)' \
			"$TESTDIR/status$round.out"; then
			fail "round $round: a status failed otherwise (above)"
		fi
		grep -qi "reset" "$TESTDIR/status$round.out" && fail "round $round: connection reset seen"
		run raidtool zero "${u[@]}"
		assert_success
	done
}

# hashcode_of UNIT: the hashcode of the array UNIT belongs to.
hashcode_of() {
	raidtool examine --json "$1" 2>/dev/null | jq -r .array.hashcode
}

@test "two arrays of one name, one running: a hashcode acts on exactly its array" {
	local x y hx hy ux sums
	require_python
	# X is created, then hidden (loop devices detached) while Y takes its name.
	mapfile -t x < <(make_images x 2 32M)
	mapfile -t y < <(make_images y 2 32M)
	run raidtool create "$NAME" --level 1 "${x[@]}"
	assert_success
	hx=$(hashcode_of "${x[0]}")
	ux=$(raidtool examine --json "${x[0]}" 2>/dev/null | jq -r .array.uuid)
	for f in "${x[@]}"; do losetup -d "$(loop_of "$f")"; done
	run raidtool create "$NAME" --level 1 "${y[@]}"
	assert_success
	hy=$(hashcode_of "${y[0]}")
	for f in "${x[@]}"; do attach "$f" >/dev/null; done
	[ "$hx" != "$hy" ]
	# The shared name is refused, naming both arrays.
	run raidtool activate "$NAME"
	assert_failure 2
	assert_output --partial "several arrays have this name"
	assert_output --partial "$hx"
	assert_output --partial "$hy"
	run --separate-stderr raidtool activate "$hy"
	assert_success
	DEV=$output
	sums=$(checksums "${x[@]}")
	# X's hashcode: X is inactive, whatever runs under the name.
	run --separate-stderr raidtool status --json "$hx"
	assert_success
	[ "$(jq -r .state <<<"$output")" = inactive ]
	[ "$(jq -r .hashcode <<<"$output")" = "$hx" ]
	run raidtool deactivate "$hx"
	assert_failure 3
	assert_output --partial "not active"
	run raidtool check "$hx"
	assert_failure 3
	assert_output --partial "not active"
	run raidtool activate "$hx"
	assert_failure
	assert_output --partial "another array of that name runs"
	run --separate-stderr raidtool list --json
	assert_success
	[ "$(jq -r --arg h "$hx" '.[] | select(.hashcode == $h) | .active' <<<"$output")" = false ]
	[ "$(jq -r --arg h "$hy" '.[] | select(.hashcode == $h) | .active' <<<"$output")" = true ]
	# The engine itself refuses a request meant for another array (ESTALE).
	run control_raw "uuid=$ux check"
	assert_success
	[ "$(jq -r .errno <<<"$output")" = 116 ] || fail "engine served X's request: $output"
	# Y ran throughout, X's units were not touched.
	run --separate-stderr raidtool status --json "$hy"
	[ "$(jq -r .state <<<"$output")" = active ]
	[ -b "$DEV" ]
	[ "$(checksums "${x[@]}")" = "$sums" ]
	run raidtool deactivate "$hy"
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
			[ "$rd" = 3 ] && grep -q "not active" "$TESTDIR/d.out" ||
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
	grep -q "not active (it stopped while this command waited" "$TESTDIR/remove.out" ||
		fail "remove: $(cat "$TESTDIR/remove.out")"
	grep -q "No such file" "$TESTDIR/remove.out" && fail "remove: $(cat "$TESTDIR/remove.out")"
	return 0
}
