#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# The habits of issue 14: --json on the commands that change an array (add,
# fail, remove, activate, deactivate), and a question before data is
# destroyed on a terminal (zero, create --force), skipped by --batch-mode.

load helpers
bats_require_minimum_version 1.5.0

setup() {
	fuse_setup jq
}

teardown() {
	scratch_teardown
}

@test "add --json to a stopped array: the array and each unit added, with its slot and state" {
	local u hash spare
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	hash=$(raidtool lookup --json "$NAME" | jq -r .hashcode)
	spare=$(make_image spare.img 32M)
	run --separate-stderr raidtool add --json "$NAME" "$spare"
	assert_success
	[ -z "$stderr" ] || fail "stderr: $stderr"
	[ "$(jq -r .name <<<"$output")" = "$NAME" ]
	[ "$(jq -r .hashcode <<<"$output")" = "$hash" ]
	[ "$(jq -r .uuid <<<"$output")" = "$(raidtool lookup --json "$NAME" | jq -r .uuid)" ]
	[ "$(jq -r .running <<<"$output")" = false ]
	[ "$(jq -r '.units | length' <<<"$output")" = 1 ]
	[ "$(jq -r '.units[0].path' <<<"$output")" = "$spare" ]
	[ "$(jq -r '.units[0].unit.state' <<<"$output")" = spare ]
	[ "$(jq -r '.units[0].unit.role' <<<"$output")" = null ]
	[ "$(jq -r '.units[0].unit.slot' <<<"$output")" = 2 ]
	# The unit's identity is the one its superblock now carries.
	[ "$(jq -r '.units[0].unit.hashcode' <<<"$output")" = \
	  "$(raidtool examine --json "$spare" | jq -r .this_unit.hashcode)" ]
	# Errors stay on stderr, with the exit code, and nothing on stdout.
	run --separate-stderr raidtool add --json "${NAME}x" "$(make_image other.img 32M)"
	assert_failure 3
	[ -z "$output" ] || fail "stdout: $output"
	stderr_has "no such array"
}

@test "activate, fail, remove, add and deactivate --json describe what each did" {
	local u hash uuid fresh dev
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	hash=$(raidtool lookup --json "$NAME" | jq -r .hashcode)
	uuid=$(raidtool lookup --json "$NAME" | jq -r .uuid)

	run --separate-stderr raidtool activate --json "$NAME"
	assert_success
	[ "$(jq -r .name <<<"$output")" = "$NAME" ]
	[ "$(jq -r .uuid <<<"$output")" = "$uuid" ]
	[ "$(jq -r .hashcode <<<"$output")" = "$hash" ]
	[ "$(jq -r .device <<<"$output")" = "/dev/raidtool/$NAME" ]
	dev=$(jq -r .loop_device <<<"$output")
	[ "$(readlink "/dev/raidtool/$NAME")" = "$dev" ]
	[ "$(jq -r .state <<<"$output")" = active ]
	[ "$(jq -r .health <<<"$output")" = clean ]
	[ "$(jq -r .pid <<<"$output")" = "$(status_json "$NAME" | jq -r .pid)" ]

	run --separate-stderr raidtool fail --json "$NAME" 1
	assert_success
	[ "$(jq -r .name <<<"$output")" = "$NAME" ]
	[ "$(jq -r .uuid <<<"$output")" = "$uuid" ]
	[ "$(jq -r .hashcode <<<"$output")" = "$hash" ]
	[ "$(jq -r .operation <<<"$output")" = fail ]
	[ "$(jq -r .unit.role <<<"$output")" = 1 ]
	[ "$(jq -r .unit.state <<<"$output")" = faulty ]
	[ "$(jq -r .unit.device <<<"$output")" = "$(loop_of "${u[1]}")" ]
	[ "$(jq -r .health <<<"$output")" = degraded ]
	[[ $(jq -r .message <<<"$output") == *"marked faulty"* ]]

	run --separate-stderr raidtool remove --json "$NAME" 1
	assert_success
	[ "$(jq -r .operation <<<"$output")" = remove ]
	[ "$(jq -r .unit.slot <<<"$output")" = 1 ]
	[ "$(jq -r .unit.state <<<"$output")" = removed ]
	[ "$(jq -r .health <<<"$output")" = degraded ]

	# A refusal: stderr and the exit code, stdout empty.
	run --separate-stderr raidtool remove --json "$NAME" 0
	assert_failure 4
	[ -z "$output" ] || fail "stdout: $output"
	stderr_has "fail it first"

	fresh=$(make_image fresh.img 32M)
	run --separate-stderr raidtool add --json "$NAME" "$fresh"
	assert_success
	[ "$(jq -r .running <<<"$output")" = true ]
	[ "$(jq -r '.units[0].path' <<<"$output")" = "$fresh" ]
	[ "$(jq -r '.units[0].unit.role' <<<"$output")" = 1 ]
	[ "$(jq -r '.units[0].unit.state' <<<"$output")" = rebuilding ]
	[ "$(jq -r '.units[0].unit.device' <<<"$output")" = "$(loop_of "$fresh")" ]
	[[ $(jq -r '.units[0].message' <<<"$output") == *"added to role 1"* ]]
	run raidtool wait "$NAME"
	assert_success

	run --separate-stderr raidtool deactivate --json "$NAME"
	assert_success
	[ "$(jq -r .name <<<"$output")" = "$NAME" ]
	[ "$(jq -r .uuid <<<"$output")" = "$uuid" ]
	[ "$(jq -r .result <<<"$output")" = stopped ]
	[ "$(jq -r .superblocks <<<"$output")" = clean ]
	# Not running any more: the error is on stderr only.
	run --separate-stderr raidtool deactivate --json "$NAME"
	assert_failure 3
	[ -z "$output" ] || fail "stdout: $output"
	run --separate-stderr raidtool activate --json --scan
	assert_failure 2
}

# on_tty ANSWER COMMAND...: run raidtool with a terminal as stdin (script(1)
# gives it a pty) and ANSWER typed into it; sets status and output as run does.
on_tty() {
	local answer=$1 cmd
	shift
	cmd=$(printf '%q ' "$RAIDTOOL_BIN" "$@")
	run bash -c "printf '%s\n' \"\$1\" | script -qec \"\$2\" /dev/null" _ "$answer" "$cmd"
}

@test "zero of a unit with a valid superblock asks on a terminal: anything but YES changes nothing (exit 5)" {
	local u before answer
	require_cmds script
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	before=$(checksums "${u[@]}")
	for answer in no yes "YES please" ""; do
		on_tty "$answer" zero "${u[@]}"
		[ "$status" = 5 ] || fail "answer '$answer': exit $status: $output"
		assert_output --partial "'${u[0]}' is a unit of array '$NAME'"
		assert_output --partial "'${u[1]}' is a unit of array '$NAME'"
		assert_output --partial "Are you sure? (Type 'YES' in capital letters)"
		assert_output --partial "aborted: nothing was changed"
		refute_output --partial "wiped raidtool superblocks"
		[ "$(checksums "${u[@]}")" = "$before" ] || fail "answer '$answer' changed the units"
	done
	on_tty YES zero "${u[@]}"
	assert_success
	assert_output --partial "wiped raidtool superblocks from '${u[0]}'"
	assert_output --partial "wiped raidtool superblocks from '${u[1]}'"
	run --separate-stderr raidtool examine "${u[0]}"
	assert_failure 3
}

@test "zero asks nothing with --batch-mode, when stdin is no terminal, or of a unit without a superblock" {
	local u plain
	require_cmds script
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	# --batch-mode on a terminal: the answer "no" is never read.
	on_tty no zero --batch-mode "${u[0]}"
	assert_success
	refute_output --partial "Are you sure"
	assert_output --partial "wiped raidtool superblocks from '${u[0]}'"
	# Not a terminal: as before, no question.
	run --separate-stderr raidtool zero "${u[1]}" </dev/null
	assert_success
	[[ $stderr != *"Are you sure"* ]] || fail "asked: $stderr"
	# Nothing to destroy: nothing to ask (and the refusal is the old one).
	plain=$(make_image plain.img 32M)
	on_tty YES zero "$plain"
	assert_failure 3
	refute_output --partial "Are you sure"
	assert_output --partial "holds no raidtool superblock"
}

@test "create --force over a filesystem asks on a terminal: a refusal leaves every unit as it was" {
	local u before
	require_cmds script mkfs.ext4
	mapfile -t u < <(make_images u 2 32M)
	mkfs.ext4 -q -F "${u[0]}"
	before=$(checksums "${u[@]}")
	on_tty no create --force --level 1 "$NAME" "${u[@]}"
	assert_failure 5
	assert_output --partial "'${u[0]}' holds a filesystem or other signature (ext4): overwritten"
	refute_output --partial "'${u[1]}'"
	assert_output --partial "Type 'YES' in capital letters"
	[ "$(checksums "${u[@]}")" = "$before" ] || fail "a refused create changed the units"
	run --separate-stderr raidtool lookup "$NAME"
	assert_failure 3
	# Without --force there is nothing to ask: the refusal names --force.
	on_tty YES create --level 1 "$NAME" "${u[@]}"
	assert_failure 5
	refute_output --partial "Are you sure"
	on_tty YES create --force --level 1 "$NAME" "${u[@]}"
	assert_success
	assert_output --partial "created array '$NAME'"
	[ "$(raidtool examine --json "${u[0]}" | jq -r .array.name)" = "$NAME" ]
}

@test "create --force --batch-mode on a terminal asks nothing" {
	local u
	require_cmds script mkfs.ext4
	mapfile -t u < <(make_images u 2 32M)
	mkfs.ext4 -q -F "${u[1]}"
	on_tty no create --force --batch-mode --level 1 "$NAME" "${u[@]}"
	assert_success
	refute_output --partial "Are you sure"
	assert_output --partial "created array '$NAME'"
}
