#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# One identity per array: the run directory is keyed by the array's UUID,
# so two arrays of one name run at once, each with its own block device and
# data; a hashcode acts on exactly its array, a shared name is refused.
# And scans never open the block devices of running arrays.

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

# write_data DEV TAG: 4 MiB of random bytes through DEV, kept as $TESTDIR/TAG.data.
write_data() {
	head -c 4M /dev/urandom > "$TESTDIR/$2.data"
	dd if="$TESTDIR/$2.data" of="$1" bs=1M oflag=direct conv=fsync status=none
}

# data_sum TAG: the sha256 of what write_data wrote as TAG.
data_sum() {
	sha256sum < "$TESTDIR/$1.data"
}

# read_sum DEV: the sha256 of the first 4 MiB read back from DEV.
read_sum() {
	dd if="$1" bs=1M count=4 iflag=direct status=none | sha256sum
}

# active_of HASHCODE: "true"/"false" and the device `list --json` shows for it.
active_of() {
	raidtool list --json 2>/dev/null |
		jq -r --arg h "$1" '.arrays[] | select(.hashcode == $h) | "\(.active) \(.device)"'
}

# start_both: X and Y of one name both running; their links in DX and DY.
start_both() {
	two_of_one_name
	run --separate-stderr raidtool activate "$HX"
	assert_success
	DX=$output
	run --separate-stderr raidtool activate "$HY"
	assert_success
	DY=$output
	# stderr says which link the second array got, and why.
	stderr_has "another array of that name runs; this one is /dev/raidtool/$HY"
}

@test "two arrays of one name run at once: each its own link, run directory and data" {
	local ux uy
	start_both
	[ "$DX" = "/dev/raidtool/$NAME" ]
	[ "$DY" = "/dev/raidtool/$HY" ]
	[ -b "$DX" ] && [ -b "$DY" ]
	[ "$(readlink -f "$DX")" != "$(readlink -f "$DY")" ]
	# The run directories are the UUIDs'; the by-name link is the first one's.
	ux=$(raidtool examine --json "${X[0]}" 2>/dev/null | jq -r .array.uuid)
	uy=$(raidtool examine --json "${Y[0]}" 2>/dev/null | jq -r .array.uuid)
	[ -S "$RAIDTOOL_RUNDIR/$ux/control.sock" ] && [ -S "$RAIDTOOL_RUNDIR/$uy/control.sock" ]
	[ "$(readlink "$RAIDTOOL_RUNDIR/$NAME")" = "$ux" ]
	[ "$(cat "$RAIDTOOL_RUNDIR/$uy/link")" = "$DY" ]
	# Different bytes through each device, each read back intact.
	write_data "$DX" x
	write_data "$DY" y
	[ "$(data_sum x)" != "$(data_sum y)" ]
	[ "$(read_sum "$DX")" = "$(data_sum x)" ]
	[ "$(read_sum "$DY")" = "$(data_sum y)" ]
	# list shows both running, each with its own device.
	[ "$(active_of "$HX")" = "true $DX" ]
	[ "$(active_of "$HY")" = "true $DY" ]
	# A hashcode reports exactly its array.
	run --separate-stderr raidtool status --json "$HY"
	assert_success
	[ "$(jq -r '.state, .hashcode, .device' <<<"$output" | tr '\n' ' ')" = "active $HY $DY " ] ||
		fail "status $HY: $output"
	run --separate-stderr raidtool status --json "$HX"
	assert_success
	[ "$(jq -r '.state, .hashcode, .device' <<<"$output" | tr '\n' ' ')" = "active $HX $DX " ]
	# The shared name is refused by every command, naming both hashcodes.
	for cmd in status deactivate check wait; do
		run raidtool "$cmd" "$NAME"
		assert_failure 2
		assert_output --partial "several arrays have this name"
		assert_output --partial "$HX"
		assert_output --partial "$HY"
	done
	# What the second array's messages tell an admin to run names it by hashcode.
	run raidtool check "$HY"
	assert_success
	assert_output --partial "'raidtool wait $HY'"
	run raidtool wait "$HY"
	assert_success
	run raidtool deactivate "$HY"
	assert_success
	run raidtool deactivate "$HX"
	assert_success
	[ ! -e "$RAIDTOOL_RUNDIR/$ux" ] && [ ! -e "$RAIDTOOL_RUNDIR/$uy" ]
	[ ! -e "$RAIDTOOL_RUNDIR/$NAME" ] && [ ! -e "$DX" ] && [ ! -e "$DY" ]
}

@test "two arrays of one name: deactivate, status and activate by hashcode act on exactly that array" {
	start_both
	write_data "$DX" x
	write_data "$DY" y
	# deactivate X stops X only.
	run raidtool deactivate "$HX"
	assert_success
	assert_output --partial "stopped"
	[ "$(active_of "$HX")" = "false null" ]
	[ "$(active_of "$HY")" = "true $DY" ]
	[ "$(read_sum "$DY")" = "$(data_sum y)" ]
	# status of Y reports Y, running; of X, X stopped.
	run --separate-stderr raidtool status --json "$HY"
	assert_success
	[ "$(jq -r '.state, .hashcode' <<<"$output" | tr '\n' ' ')" = "active $HY " ]
	run --separate-stderr raidtool status --json "$HX"
	assert_success
	[ "$(jq -r '.state, .hashcode' <<<"$output" | tr '\n' ' ')" = "inactive $HX " ]
	# activate X while Y runs starts X, with its data; Y goes on.
	run --separate-stderr raidtool activate "$HX"
	assert_success
	DX=$output
	[ "$DX" = "/dev/raidtool/$NAME" ]
	[ "$(read_sum "$DX")" = "$(data_sum x)" ]
	[ "$(active_of "$HX")" = "true $DX" ]
	[ "$(active_of "$HY")" = "true $DY" ]
	# Activating a running one again says so, for exactly that one.
	run raidtool activate "$HY"
	assert_failure 4
	assert_output --partial "already active"
	run raidtool deactivate "$HY"
	assert_success
	[ "$(active_of "$HX")" = "true $DX" ]
	[ "$(read_sum "$DX")" = "$(data_sum x)" ]
	run raidtool deactivate "$HX"
	assert_success
}

@test "two arrays of one name: the engine of one killed, the other runs on; recovery cleans up only the dead one's" {
	local px
	start_both
	write_data "$DY" y
	px=$(raidtool status --json "$HX" 2>/dev/null | jq -r .pid)
	[ "$px" -gt 1 ]
	kill -9 "$px"
	for _ in $(seq 100); do kill -0 "$px" 2>/dev/null || break; sleep 0.05; done
	run raidtool deactivate "$HX"
	assert_success
	assert_output --partial "had died; cleaned up"
	[ ! -e "$DX" ]
	[ "$(active_of "$HY")" = "true $DY" ]
	[ "$(read_sum "$DY")" = "$(data_sum y)" ]
	run raidtool deactivate "$HY"
	assert_success
}

# scan_loop DONE: `raidtool list` and `raidtool status NAME` over and over
# until the file DONE exists; counts the rounds in $TESTDIR/rounds.
scan_loop() {
	while [ ! -e "$1" ]; do
		# Their results do not matter here (the array stops under them).
		"$RAIDTOOL_BIN" list >/dev/null 2>&1 || true
		"$RAIDTOOL_BIN" status "$NAME" >/dev/null 2>&1 || true
		echo >> "$TESTDIR/rounds"
	done
	return 0
}

@test "scans skip running arrays' devices: deactivate during status/list loops never refuses or waits" {
	local u round t0 t1 ms
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	for round in 1 2 3 4 5 6; do
		run --separate-stderr raidtool activate "$NAME"
		assert_success
		rm -f "$TESTDIR/done" "$TESTDIR/rounds"
		scan_loop "$TESTDIR/done" &
		BGPIDS+=("$!")
		scan_loop "$TESTDIR/done" &
		BGPIDS+=("$!")
		# Both loops are scanning (several rounds done) before the stop.
		for _ in $(seq 200); do
			[ -e "$TESTDIR/rounds" ] && [ "$(wc -l < "$TESTDIR/rounds")" -ge 4 ] && break
			sleep 0.05
		done
		[ "$(wc -l < "$TESTDIR/rounds")" -ge 4 ] || fail "round $round: the scan loops do not run"
		t0=$(date +%s%N)
		run raidtool deactivate "$NAME"
		t1=$(date +%s%N)
		touch "$TESTDIR/done"
		wait "${BGPIDS[-1]}" "${BGPIDS[-2]}"
		assert_success
		assert_output --partial "stopped"
		ms=$(( (t1 - t0) / 1000000 ))
		# deactivate waits up to 3 s for a device another process holds open.
		[ "$ms" -lt 1500 ] || fail "round $round: deactivate took $ms ms: $output"
	done
}

@test "scans skip running arrays' devices: list, status and lookup never open one" {
	local u loop cmd
	require_cmds strace
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	loop=$(readlink -f "$output")
	[ -b "$loop" ]
	for cmd in list "status $NAME" "lookup $NAME"; do
		# shellcheck disable=SC2086  # the command and its argument
		strace -f -qq -e trace=open,openat -o "$TESTDIR/strace.out" "$RAIDTOOL_BIN" $cmd >/dev/null 2>&1
		grep -q '"/dev/loop' "$TESTDIR/strace.out" || fail "$cmd: scanned no loop device at all"
		if grep -F "\"$loop\"" "$TESTDIR/strace.out"; then
			fail "raidtool $cmd opened the array's device $loop (above)"
		fi
	done
	run raidtool deactivate "$NAME"
	assert_success
}

@test "an array's own block device is refused as a unit (scans would not find it again)" {
	local u v sums
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	DX=$output
	sums=$(dd if="$DX" bs=1M count=1 status=none | sha256sum)
	mapfile -t v < <(make_images v 1 32M)
	run raidtool create "${NAME}n" --level 1 --force "$DX" "${v[0]}"
	assert_failure 2
	assert_output --partial "the block device of a raidtool array"
	[ "$(dd if="$DX" bs=1M count=1 status=none | sha256sum)" = "$sums" ]
	run raidtool lookup "${NAME}n"
	assert_failure 3
	run raidtool deactivate "$NAME"
	assert_success
}
