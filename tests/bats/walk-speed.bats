#!/usr/bin/env bats
# The speed limit of background walks (issue 11, point 2): --speed-limit on
# check/repair, add (the rebuild it starts) and tune, shown in status, and
# held: a walk over a known size takes the time the limit says, within 20%.

load helpers

setup() {
	fuse_setup
}

teardown() {
	scratch_teardown
}

now() {
	date +%s.%N
}

# within_20 SECONDS BYTES MIB_PER_SEC: the walk took what the limit says, +-20%.
within_20() {
	local ratio
	ratio=$(awk -v t="$1" -v b="$2" -v l="$3" 'BEGIN { printf "%.3f", t / (b / (l * 1048576)) }')
	echo "took $1 s for $2 bytes at $3 MiB/s: $ratio of the expected time"
	awk -v r="$ratio" 'BEGIN { exit !(r >= 0.8 && r <= 1.2) }'
}

@test "check --speed-limit: status shows the limit, and the walk takes the time it says" {
	local t0 t1 total
	start_zeroed 1 2 40M
	t0=$(now)
	run raidtool check --speed-limit 6 "$NAME"
	assert_success
	run status_json
	assert_success
	[ "$(jq -r .walk_speed_limit <<<"$output")" -eq $((6 << 20)) ]
	total=$(jq -r .walk.total <<<"$output")
	[ "$total" -gt $((30 << 20)) ]
	run raidtool status "$NAME"
	assert_output --partial "limit 6.00 MiB/s"
	run raidtool wait "$NAME"
	assert_success
	t1=$(now)
	assert_output --partial "check done: 0 mismatches"
	within_20 "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$total" 6
	deactivate_settled "$NAME"
}

@test "add --speed-limit: the rebuild it starts holds the limit; tune --speed-limit 0 lifts it" {
	local t0 t1 total fresh
	start_zeroed 5 3 40M
	run raidtool fail "$NAME" 1
	assert_success
	run raidtool remove "$NAME" 1
	assert_success
	fresh=$(make_image fresh.img 40M)
	t0=$(now)
	run raidtool add --speed-limit 8 "$NAME" "$fresh"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	t1=$(now)
	assert_output --partial "rebuild of role 1 done"
	total=$(status_json | jq -r .walk.total)
	within_20 "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$total" 8
	# A check at 1 MiB/s would take 40 s; lifting the limit mid-walk ends it in far less.
	run raidtool check --speed-limit 1 "$NAME"
	assert_success
	run raidtool tune --speed-limit 0 "$NAME"
	assert_success
	assert_output --partial "speed limit of background walks: none"
	[ "$(status_json | jq -r .walk_speed_limit)" -eq 0 ]
	t0=$(now)
	run timeout 20 "$RAIDTOOL_BIN" wait "$NAME"
	assert_success
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 20) }'
	assert_output --partial "check done: 0 mismatches"
	deactivate_settled "$NAME"
}

@test "--speed-limit that is not a number of MiB/s: refused, nothing changes" {
	start_zeroed 1 2 16M
	run raidtool check --speed-limit -5 "$NAME"
	assert_failure 2
	assert_output --partial "--speed-limit"
	run raidtool tune --speed-limit 99999999 "$NAME"
	assert_failure 2
	# -1 is a bad value too, not the absence of the option.
	local args
	for args in "check $NAME" "tune $NAME" "replace $NAME 0 --with $TESTDIR/none.img"; do
		# shellcheck disable=SC2086  # the command's words
		run raidtool ${args%% *} --speed-limit -1 ${args#* }
		assert_failure 2
		assert_output --partial "'-1' is not a number of MiB/s"
	done
	run raidtool tune --io-retries -1 "$NAME"
	assert_failure 2
	assert_output --partial "a number of 0 or more"
	run raidtool tune --io-retry-window -1 "$NAME"
	assert_failure 2
	assert_output --partial "a number of 0 or more"
	run raidtool replace --speed-limit -1 "nosuch$NAME" 0 --with "$TESTDIR/none.img"
	assert_failure 2
	run raidtool check --repair --prefer -1 "$NAME"
	assert_failure 2
	assert_output --partial "'-1' is not a role"
	[ "$(status_json | jq -r .walk_speed_limit)" -eq 0 ]
	[ "$(status_json | jq -r .walk)" = null ]
	deactivate_settled "$NAME"
}
