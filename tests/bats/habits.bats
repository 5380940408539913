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

# one_wording CODE LINE ARGS...: 'raidtool ARGS' exits CODE with LINE, and
# nothing else, on stderr: one cause, one wording, whichever command meets it.
one_wording() {
	local code=$1 line=$2
	shift 2
	run --separate-stderr raidtool "$@"
	[ "$status" = "$code" ] || fail "raidtool $*: exit $status, not $code: $stderr"
	[ "$stderr" = "$line" ] || fail "raidtool $*: not the one wording
want: $line
got:  $stderr"
}

@test "an array that is not running: one wording from every command that needs its engine" {
	local u new hash args
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	hash=$(raidtool lookup --json "$NAME" | jq -r .hashcode)
	new=$(make_image new.img 32M)
	for args in "fail $NAME 1" "fail $hash 1" "remove $NAME 1" "replace $NAME 1 --with $new" \
		"check $NAME" "check --cancel $NAME" "wait $NAME" "tune --speed-limit 1 $NAME" \
		"tune --io-retries 1 $NAME" "deactivate $NAME" "deactivate $hash"; do
		# shellcheck disable=SC2086  # the words of $args are the arguments
		one_wording 3 "raidtool: '$NAME': not running" $args
	done
	# add takes units while it is stopped; only --speed-limit needs the engine.
	run --separate-stderr raidtool add --speed-limit 1 "$NAME" "$new"
	assert_failure 2
	[[ $stderr == "raidtool: '$NAME': not running ("*")" ]] || fail "add: $stderr"
	[ "$(raidtool examine --json "$new" 2>/dev/null | jq -r .this_unit.state)" = "" ] ||
		fail "add --speed-limit changed $new"
}

@test "a unit file that is missing or not a file: one wording from every command that opens units" {
	local u missing
	mapfile -t u < <(make_images u 2 32M)
	missing=$TESTDIR/missing.img
	mkdir "$TESTDIR/dir"
	one_wording 3 "raidtool: '$missing': cannot open: No such file or directory" \
		create "$NAME" --level 1 "${u[0]}" "$missing"
	for args in "create $NAME --level 1 ${u[0]} $TESTDIR/dir" "examine $TESTDIR/dir" \
		"lookup-unit $TESTDIR/dir" "zero $TESTDIR/dir"; do
		# shellcheck disable=SC2086
		one_wording 1 "raidtool: '$TESTDIR/dir': cannot open: not a block device or a regular file" $args
	done
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	one_wording 1 "raidtool: '$TESTDIR/dir': cannot open: not a block device or a regular file" \
		add "$NAME" "$TESTDIR/dir"
	for args in "examine $missing" "lookup-unit $missing" "zero $missing" "add $NAME $missing" \
		"replace $NAME 1 --with $missing"; do
		# shellcheck disable=SC2086
		one_wording 3 "raidtool: '$missing': cannot open: No such file or directory" $args
	done
	# The same once the array runs: add and replace hand the unit to its engine.
	run raidtool activate "$NAME"
	assert_success
	for args in "add $NAME $missing" "replace $NAME 1 --with $missing"; do
		# shellcheck disable=SC2086
		one_wording 3 "raidtool: '$missing': cannot open: No such file or directory" $args
	done
	run raidtool deactivate "$NAME"
	assert_success
	[ ! -e "$missing" ] || fail "a command created $missing"
}

@test "an array no unit names: one wording from every command that takes an array" {
	local nope=${NAME}nope new args
	new=$(make_image new.img 32M)
	for args in "fail $nope 1" "remove $nope 1" "replace $nope 1 --with $new" "status $nope" \
		"check $nope" "wait $nope" "tune --speed-limit 1 $nope" "deactivate $nope" \
		"activate $nope" "add $nope $new" "rename $nope ${nope}2" "rehash $nope" \
		"lookup $nope" "list --units $nope"; do
		# shellcheck disable=SC2086
		one_wording 3 "raidtool: '$nope': no such array (no unit with that name or hashcode found)" $args
	done
}

@test "a user other than root: one wording for the permission refused, whatever the command" {
	local u bin=$TESTDIR/bin/raidtool args
	command -v setpriv >/dev/null || require "needs setpriv (util-linux)"
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	# A copy of the binary that user may run; the scratch directory stays closed to it.
	mkdir -p "$TESTDIR/bin"
	cp "$RAIDTOOL_BIN" "$bin"
	chmod 755 "$TESTDIR/bin" "$bin"
	chmod 711 "$TESTDIR"
	for args in "examine ${u[0]}" "lookup-unit ${u[0]}" "zero ${u[0]}" \
		"create ${NAME}x --level 1 ${u[*]}" "status $NAME" "fail $NAME 1" "list" "status"; do
		# shellcheck disable=SC2086
		run --separate-stderr setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" $args
		[[ $stderr == *": permission denied (raidtool must run as root)"* ]] ||
			fail "raidtool $args as nobody: $stderr"
		# Only the scan's note and the command's own failure.
		[ "$(grep -c '^raidtool: ' <<<"$stderr")" = "$(wc -l <<<"$stderr")" ] ||
			fail "raidtool $args: a line without the prefix: $stderr"
	done
	# Nothing was written.
	run raidtool examine --json "${u[0]}"
	assert_success
}

@test "fail, remove and replace take a unit by its image file, relative or absolute" {
	local u new
	mapfile -t u < <(make_images u 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${u[@]}"
	assert_success
	run raidtool activate "$NAME"
	assert_success
	new=$(make_image new.img 32M)
	run raidtool replace "$NAME" "${u[0]}" --with "$new"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	[ "$(status_json "$NAME" | jq -r '.units[] | select(.role == "0") | .device')" = \
	  "$(loop_of "$new")" ] || fail "the replace did not take role 0: $(raidtool status "$NAME")"
	cd "$TESTDIR"
	run raidtool fail "$NAME" u1.img
	assert_success
	assert_output --partial "role 1 ($(loop_of "${u[1]}")) marked faulty"
	run raidtool remove "$NAME" ./u1.img
	assert_success
	run raidtool deactivate "$NAME"
	assert_success
}
