#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031,SC2153
# The foundation commands of raidtool(8) on inactive arrays: create, add,
# list, lookup, lookup-unit, examine, rename, rehash, zero; every option that
# matters and every refusal. A refusal must exit non-zero, name the unit (or
# the thing refused) and the reason on stderr, and leave every unit
# byte-for-byte as it was.

bats_require_minimum_version 1.5.0

load helpers

setup() {
	require_root
	require_cmds jq
	scratch_setup
	HOLD_PID=
}

teardown() {
	# A holder we started keeps a loop device busy: end it before detaching.
	if [ -n "${HOLD_PID:-}" ]; then
		kill "$HOLD_PID" 2>/dev/null || true
		wait "$HOLD_PID" 2>/dev/null || true
	fi
	scratch_teardown
}

# --- local helpers (candidates for helpers.bash) ---------------------------

# new_array NAME LEVEL COUNT [OPTION...]: COUNT 64M images NAME-u<i>.img and an
# array on them (chunk 64K unless an option says otherwise).
# Sets UNITS (the image paths) and HASH (the array's hashcode).
new_array() {
	local name=$1 level=$2 count=$3
	shift 3
	ARRAYS_MADE=$((${ARRAYS_MADE:-0} + 1))
	mapfile -t UNITS < <(make_images "a${ARRAYS_MADE}-u" "$count" 64M)
	raidtool create "$name" --level "$level" --chunk 64K "$@" "${UNITS[@]}" >/dev/null
	HASH=$(raidtool lookup --json "$name" | jq -r .hashcode)
	[[ $HASH =~ ^[0-9a-f]{8}$ ]]
}

# examine_field UNIT JQ-FILTER: one field of 'examine --json'.
examine_field() {
	raidtool examine --json "$1" | jq -r "$2"
}

# list_field NAME|HASHCODE JQ-FILTER: one field of the array's 'list --json' entry.
list_field() {
	raidtool list --json |
		jq -r --arg id "$1" '.arrays[] | select(.name == $id or .hashcode == $id)' | jq -r "$2"
}

# Overwrite 512 bytes at OFFSET of a block device, bypassing its page cache.
clobber() {
	dd if=/dev/urandom of="$1" bs=512 seek=$(($2 / 512)) count=1 \
		oflag=direct conv=notrunc status=none
}

# A random hashcode no visible array uses.
free_hashcode() {
	local h
	while :; do
		h=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
		raidtool lookup "$h" >/dev/null 2>&1 || break
	done
	echo "$h"
}

# Assert a refusal: exit STATUS, nothing on stdout, stderr naming every WORD.
# Call right after 'run --separate-stderr'.
assert_refused() {
	local code=$1 word
	shift
	if [ "$status" -ne "$code" ]; then
		fail "expected exit $code, got $status; stderr: $stderr"
	fi
	assert_equal "$output" ""
	for word in "$@"; do
		[[ $stderr == *"$word"* ]] || fail "stderr lacks '$word': $stderr"
	done
}

# --- help and usage ---------------------------------------------------------

@test "raidtool --help lists every command; no command is a usage error" {
	run raidtool --help
	assert_success
	for c in create add list lookup lookup-unit examine rename rehash zero; do
		assert_output --partial "  $c "
	done
	run raidtool
	[ "$status" -eq 2 ]
	run --separate-stderr raidtool frobnicate
	[ "$status" -eq 2 ]
	[[ $stderr == *"'frobnicate' is not a raidtool command"* ]]
}

@test "--help on every command exits 0 and mentions its options" {
	local -A opts=(
		[create]="--level --chunk --blocksize --desc --force --json"
		[add]="--force"
		[list]="--units --json"
		[lookup]="--json"
		[lookup-unit]="--json"
		[examine]="--json --export"
		[rename]="NEWNAME"
		[rehash]="NEWHASH"
		[zero]="--force"
	)
	local c o
	for c in "${!opts[@]}"; do
		run raidtool "$c" --help
		[ "$status" -eq 0 ] || fail "$c --help exited $status"
		assert_line --regexp "^Usage: .*$c "
		for o in ${opts[$c]}; do
			[[ $output == *"$o"* ]] || fail "$c --help does not mention $o"
		done
	done
}

@test "--help's usage line names the command as typed: 'raidtool COMMAND'" {
	local c
	for c in create add list lookup lookup-unit examine rename rehash zero; do
		run raidtool "$c" --help
		assert_success
		assert_line --regexp "^Usage: raidtool $c( |$)"
	done
}

@test "every command takes -h, and -v or -q after its name" {
	local c
	for c in create add list lookup lookup-unit examine rename rehash zero activate \
		deactivate status fail remove tune check wait incremental; do
		run raidtool "$c" -h
		assert_success
		assert_line --regexp "^Usage: raidtool $c( |$)"
		assert_output --partial "--quiet"
	done
	local s
	for s in "pool create" "pool status" "pool check" "pool dump" "pool abort" \
		"pool set-transaction-id" "pool set" "pool reserve-metadata-snap" \
		"pool release-metadata-snap" "vol create" "vol snapshot" "vol delete" \
		"vol resize" "vol list"; do
		# shellcheck disable=SC2086  # the command and its subcommand
		run raidtool $s -h
		assert_success
		assert_line --regexp "^Usage: raidtool $s( |$)"
		assert_output --partial "--quiet"
	done
	run --separate-stderr raidtool list -q
	assert_success
	run --separate-stderr raidtool list -v --json
	assert_success
	jq -e '.arrays | type == "array"' <<<"$output"
}

@test "-f means --force in every command that has it (activate's --foreground is -F)" {
	local c line n=0
	for c in $(raidtool --help | awk '/^Commands:/ {on = 1; next} on && !NF {exit} on {print $1}'); do
		run raidtool "$c" --help
		assert_success
		while IFS= read -r line; do
			case "$line" in
			*"-f, --"*)
				n=$((n + 1))
				[[ "$line" == *"-f, --force "* ]] ||
					fail "raidtool $c: -f is not --force: $line" ;;
			esac
		done <<<"$output"
	done
	[ "$n" -ge 5 ] || fail "only $n commands list -f; the command list was not read"
	run raidtool activate --help
	assert_line --regexp '^ +-F, --foreground'
}

@test "output that cannot be written is a failure: raidtool list > /dev/full" {
	run --separate-stderr bash -c "'$RAIDTOOL_BIN' list > /dev/full"
	[ "$status" -eq 1 ]
	[[ $stderr == *"cannot write to standard output: No space left on device"* ]]
	run --separate-stderr bash -c "'$RAIDTOOL_BIN' list --help > /dev/full"
	[ "$status" -eq 1 ]
}

@test "an unknown option or a missing argument is a usage error (exit 2)" {
	run --separate-stderr raidtool list --bogus
	[ "$status" -eq 2 ]
	[[ $stderr == *"--bogus"* ]]
	run --separate-stderr raidtool lookup
	[ "$status" -eq 2 ]
	[[ $stderr == *"missing argument"* ]]
	run --separate-stderr raidtool rename onlyone
	[ "$status" -eq 2 ]
	# Two names without --scan: not two starts, not a scan of units named 'b'.
	run --separate-stderr raidtool activate a b
	[ "$status" -eq 2 ]
	[[ $stderr == *"one array at a time: 2 names given ('a', 'b')"* ]] || fail "$stderr"
	run --separate-stderr raidtool examine --json --export /dev/null
	[ "$status" -eq 2 ]
	[[ $stderr == *"exclude each other"* ]]
}

# --- create -------------------------------------------------------------------

@test "create raid5 on files: prints hashcode and size, keeps the files attached" {
	mapfile -t u < <(make_images u 3 64M)
	run --separate-stderr raidtool create "$NAME" --level 5 --chunk 64K "${u[@]}"
	assert_success
	[[ ${lines[0]} =~ ^created\ array\ \'$NAME\':\ raid5,\ 3\ units,\ [0-9.]+\ MiB,\ hashcode\ ([0-9a-f]{8})$ ]]
	local hash=${BASH_REMATCH[1]}
	[[ ${lines[1]} == "not yet synced: the initial sync runs in the background"* ]]
	for f in "${u[@]}"; do
		[ -n "$(loop_of "$f")" ] || fail "$f is not attached to a loop device"
	done
	run raidtool lookup --json "$hash"
	assert_success
	[ "$(jq -r .name <<<"$output")" = "$NAME" ]
	[ "$(jq -r .level <<<"$output")" = raid5 ]
	[ "$(jq -r .n_devices <<<"$output")" -eq 3 ]
	[ "$(jq -r .chunk_size <<<"$output")" -eq 65536 ]
	[ "$(jq -r .blocksize <<<"$output")" -eq 4096 ]
	[ "$(jq -r .units_present <<<"$output")" -eq 3 ]
	[ "$(jq -r .events <<<"$output")" -eq 1 ]
	[ "$(jq -r .state <<<"$output")" = clean ]
	[ "$(jq -r '.unit_hashcodes | length' <<<"$output")" -eq 3 ]
	# raid5 offers n-1 units' data areas.
	local ds
	ds=$(examine_field "${u[0]}" .this_unit.data_size)
	[ "$ds" -gt 0 ]
	[ "$(jq -r .size <<<"$output")" -eq $((2 * ds)) ]
}

@test "create --json prints the new array's descriptor" {
	mapfile -t u < <(make_images u 2 64M)
	run --separate-stderr raidtool create "$NAME" --level 1 --json "${u[@]}"
	assert_success
	jq -e . <<<"$output" >/dev/null
	[ "$(jq -r .name <<<"$output")" = "$NAME" ]
	[ "$(jq -r .level <<<"$output")" = raid1 ]
	[ "$(jq -r .n_devices <<<"$output")" -eq 2 ]
	[[ $(jq -r .hashcode <<<"$output") =~ ^[0-9a-f]{8}$ ]]
	[ "$(jq -r .size <<<"$output")" -gt 0 ]
	# Default chunk: 512K.
	[ "$(jq -r .chunk_size <<<"$output")" -eq 524288 ]
	# raid1 offers one unit's data area.
	local ds hash
	hash=$(jq -r .hashcode <<<"$output")
	ds=$(examine_field "${u[1]}" .this_unit.data_size)
	[ "$(jq -r .size <<<"$output")" -eq "$ds" ]
	# The printed hashcode is the one scanning finds.
	run raidtool lookup --json "$NAME"
	assert_success
	[ "$(jq -r .hashcode <<<"$output")" = "$hash" ]
}

@test "create linear, 'none' and raid0: levels and sizes" {
	local ds
	mapfile -t a < <(make_images a 2 64M)
	mapfile -t b < <(make_images b 1 64M)
	mapfile -t c < <(make_images c 3 64M)
	run raidtool create "${NAME}a" --level linear --chunk 64K --json "${a[@]}"
	assert_success
	ds=$(examine_field "${a[0]}" .this_unit.data_size)
	[ "$(jq -r .level <<<"$output")" = linear ]
	[ "$(jq -r .size <<<"$output")" -eq $((2 * ds)) ]
	# 'none' is RAID.LEVEL.NONE, the same as linear; one unit is enough.
	run raidtool create "${NAME}b" --level none --chunk 64K --json "${b[@]}"
	assert_success
	[ "$(jq -r .level <<<"$output")" = linear ]
	[ "$(jq -r .n_devices <<<"$output")" -eq 1 ]
	[ "$(jq -r .size <<<"$output")" -eq "$ds" ]
	run raidtool create "${NAME}c" --level 0 --chunk 64K --json "${c[@]}"
	assert_success
	[ "$(jq -r .level <<<"$output")" = raid0 ]
	[ "$(jq -r .n_devices <<<"$output")" -eq 3 ]
	[ "$(jq -r .size <<<"$output")" -eq $((3 * ds)) ]
	run raidtool list --json
	[ "$(jq --arg n "${NAME}c" '[.arrays[] | select(.name == $n)] | length' <<<"$output")" -eq 1 ]
}

@test "create on block devices, with --blocksize 512 and --desc" {
	mapfile -t f < <(make_images u 2 64M)
	local l0 l1
	l0=$(attach "${f[0]}")
	l1=$(attach "${f[1]}")
	run raidtool create "$NAME" --level 0 --blocksize 512 --desc "test array" --json "$l0" "$l1"
	assert_success
	[ "$(jq -r .blocksize <<<"$output")" -eq 512 ]
	[ "$(jq -r .description <<<"$output")" = "test array" ]
	[ "$(jq -r '.nblocks * 512 == .size' <<<"$output")" = true ]
	run raidtool lookup-unit --json "$l1"
	assert_success
	[ "$(jq -r .array <<<"$output")" = "$NAME" ]
	[ "$(jq -r .role <<<"$output")" = 1 ]
	[ "$(jq -r .blocksize <<<"$output")" -eq 512 ]
	run raidtool lookup "$NAME"
	assert_output --partial "description: test array"
	# Our loop devices are still the units (no second loop on the files).
	[ "$(losetup -j "${f[0]}" | wc -l)" -eq 1 ]
}

@test "create accepts a 63-byte name and a unit just big enough" {
	local name63
	name63=$(printf '%s%0*d' "$NAME" $((63 - ${#NAME})) 0)
	[ ${#name63} -eq 63 ]
	# 1 MiB data offset + 4 KiB superblock copy 1 + one 4K chunk.
	local f
	f=$(make_image u0.img $((1048576 + 4096 + 4096)))
	run --separate-stderr raidtool create "$name63" --level linear --chunk 4K --json "$f"
	assert_success
	[ "$(jq -r .name <<<"$output")" = "$name63" ]
	[ "$(jq -r .size <<<"$output")" -eq 4096 ]
}

# --- create refusals ------------------------------------------------------------

@test "create refuses an unknown level (exit 2)" {
	mapfile -t u < <(make_images u 3 64M)
	local before
	before=$(checksums "${u[@]}")
	run --separate-stderr raidtool create "$NAME" --level 7 "${u[@]}"
	assert_refused 2 "'7'" "unknown level"
	run --separate-stderr raidtool create "$NAME" "${u[@]}"
	assert_refused 2 "--level is required"
	[ "$(checksums "${u[@]}")" = "$before" ]
	[ -z "$(loop_of "${u[0]}")" ]
}

@test "create refuses too few units: raid1 with 1, raid5 with 2, linear/raid0 with 0" {
	mapfile -t u < <(make_images u 2 64M)
	local before
	before=$(checksums "${u[@]}")
	run --separate-stderr raidtool create "$NAME" --level 1 "${u[0]}"
	assert_refused 2 "raid1 needs at least 2 units, 1 given"
	run --separate-stderr raidtool create "$NAME" --level 5 "${u[@]}"
	assert_refused 2 "raid5 needs at least 3 units, 2 given"
	run --separate-stderr raidtool create "$NAME" --level linear
	assert_refused 2 "missing argument"
	run --separate-stderr raidtool create "$NAME" --level 0
	assert_refused 2 "missing argument"
	[ "$(checksums "${u[@]}")" = "$before" ]
	[ -z "$(loop_of "${u[0]}")" ]
	[ -z "$(loop_of "${u[1]}")" ]
}

@test "create refuses more than 64 units" {
	mapfile -t u < <(make_images u 65 2M)
	local before
	before=$(checksums "${u[@]}")
	run --separate-stderr raidtool create "$NAME" --level 0 --chunk 4K "${u[@]}"
	assert_refused 2 "too many units" "65 given" "at most 64"
	[ "$(checksums "${u[@]}")" = "$before" ]
	[ -z "$(loop_of "${u[0]}")" ]
	# 64 such units are fine.
	run raidtool create "$NAME" --level 0 --chunk 4K --json "${u[@]:0:64}"
	assert_success
	[ "$(jq -r .n_devices <<<"$output")" -eq 64 ]
}

@test "create refuses the same unit twice (same path; file and its loop device)" {
	mapfile -t u < <(make_images u 3 64M)
	local before loop
	before=$(checksums "${u[@]}")
	run --separate-stderr raidtool create "$NAME" --level 5 "${u[0]}" "${u[1]}" "${u[0]}"
	assert_refused 2 "'${u[0]}': named twice"
	loop=$(attach "${u[1]}")
	run --separate-stderr raidtool create "$NAME" --level 5 "${u[0]}" "${u[1]}" "$loop"
	assert_refused 2 "'$loop': named twice" "'${u[1]}'"
	run --separate-stderr raidtool create "$NAME" --level 5 --force "$loop" "${u[0]}" "${u[1]}"
	assert_refused 2 "'${u[1]}': named twice" "'$loop'"
	[ "$(checksums "${u[@]}")" = "$before" ]
}

@test "create refuses a unit too small for the metadata plus one chunk" {
	local big small before
	big=$(make_image big.img 64M)
	small=$(make_image small.img 1M)
	before=$(checksums "$big" "$small")
	run --separate-stderr raidtool create "$NAME" --level 0 "$big" "$small"
	assert_refused 1 "'$small'" "too small"
	# Metadata fits, but not one 512K chunk.
	small=$(make_image small2.img 1300K)
	run --separate-stderr raidtool create "$NAME" --level linear --force "$small"
	assert_refused 1 "'$small'" "too small"
	[ "$(checksums "$big" "$TESTDIR/small.img")" = "$before" ]
	[ -z "$(loop_of "$big")" ]
}

@test "create refuses a unit holding a filesystem unless --force" {
	mapfile -t u < <(make_images u 2 64M)
	mkfs.ext4 -q -F "${u[1]}"
	local before
	before=$(checksums "${u[@]}")
	run --separate-stderr raidtool create "$NAME" --level 1 "${u[@]}"
	assert_refused 5 "'${u[1]}'" "ext4" "--force"
	[ "$(checksums "${u[@]}")" = "$before" ]
	[ -z "$(loop_of "${u[0]}")" ]
	run raidtool create "$NAME" --level 1 --force "${u[@]}"
	assert_success
	[ "$(examine_field "${u[1]}" .array.name)" = "$NAME" ]
}

@test "create refuses a unit of another array unless --force" {
	new_array "${NAME}a" 1 2
	local other=("${UNITS[@]}")
	local fresh before
	fresh=$(make_image fresh.img 64M)
	before=$(checksums "$fresh" "${other[@]}")
	run --separate-stderr raidtool create "$NAME" --level 1 "$fresh" "${other[1]}"
	assert_refused 5 "'${other[1]}'" "is a unit of array '${NAME}a'" "--force"
	[ "$(checksums "$fresh" "${other[@]}")" = "$before" ]
	run raidtool create "$NAME" --level 1 --force "$fresh" "${other[1]}"
	assert_success
	[ "$(examine_field "${other[1]}" .array.name)" = "$NAME" ]
	[ "$(list_field "${NAME}a" .units_present)" -eq 1 ]
}

@test "create refuses a unit with a damaged raidtool superblock unless --force" {
	new_array "${NAME}a" 1 2
	local loop sb1 before
	loop=$(loop_of "${UNITS[0]}")
	sb1=$(examine_field "${UNITS[0]}" .this_unit.sb_offset_1)
	clobber "$loop" $((4096 + 512))
	clobber "$loop" $((sb1 + 512))
	before=$(checksums "${UNITS[@]}")
	run --separate-stderr raidtool create "$NAME" --level linear "${UNITS[0]}"
	assert_refused 5 "'${UNITS[0]}'" "damaged raidtool superblock" "--force"
	[ "$(checksums "${UNITS[@]}")" = "$before" ]
	run raidtool create "$NAME" --level linear --force "${UNITS[0]}"
	assert_success
}

@test "create refuses a device someone holds (mounted), even with --force (exit 4)" {
	local f loop before
	f=$(make_image fs.img 64M)
	mkfs.ext4 -q -F "$f"
	loop=$(attach "$f")
	mkdir "$TESTDIR/mnt"
	mount -o ro "$loop" "$TESTDIR/mnt"
	before=$(checksums "$f")
	run --separate-stderr raidtool create "$NAME" --level linear --force "$loop"
	assert_refused 4 "'$loop'" "in use"
	run --separate-stderr raidtool create "$NAME" --level linear --force "$f"
	assert_refused 4 "'$f'" "in use"
	[ "$(checksums "$f")" = "$before" ]
	umount "$TESTDIR/mnt"
}

@test "create refuses a chunk that is not a power of two or below 4K (exit 2)" {
	mapfile -t u < <(make_images u 2 64M)
	local before
	before=$(checksums "${u[@]}")
	run --separate-stderr raidtool create "$NAME" --level 0 --chunk 12K "${u[@]}"
	assert_refused 2 "chunk size 12288" "power of two"
	run --separate-stderr raidtool create "$NAME" --level 0 --chunk 2K "${u[@]}"
	assert_refused 2 "chunk size 2048"
	run --separate-stderr raidtool create "$NAME" --level 0 --chunk lots "${u[@]}"
	assert_refused 2 "--chunk 'lots'" "not a size"
	run --separate-stderr raidtool create "$NAME" --level 0 --blocksize 1024 "${u[@]}"
	assert_refused 2 "--blocksize '1024'" "512 or 4096"
	[ "$(checksums "${u[@]}")" = "$before" ]
	[ -z "$(loop_of "${u[0]}")" ]
}

@test "create refuses an empty, too long or malformed name, and a long description (exit 2)" {
	mapfile -t u < <(make_images u 2 64M)
	local before long64 desc128
	before=$(checksums "${u[@]}")
	long64=$(printf 'n%063d' 0)
	desc128=$(printf 'd%0127d' 0)
	run --separate-stderr raidtool create "" --level 1 "${u[@]}"
	assert_refused 2 "not a valid name"
	run --separate-stderr raidtool create "$long64" --level 1 "${u[@]}"
	assert_refused 2 "'$long64'" "name too long"
	run --separate-stderr raidtool create "a/b" --level 1 "${u[@]}"
	assert_refused 2 "'a/b'" "not a valid name"
	run --separate-stderr raidtool create "$NAME" --level 1 --desc "$desc128" "${u[@]}"
	assert_refused 2 "description too long"
	[ "$(checksums "${u[@]}")" = "$before" ]
}

@test "create refuses a name already taken by a visible array (exit 5)" {
	new_array "$NAME" linear 1
	mapfile -t u < <(make_images v 2 64M)
	local before
	before=$(checksums "${u[@]}")
	run --separate-stderr raidtool create "$NAME" --level 1 "${u[@]}"
	assert_refused 5 "'$NAME'" "already taken" "$HASH"
	[ "$(checksums "${u[@]}")" = "$before" ]
	[ -z "$(loop_of "${u[0]}")" ]
}

@test "create refuses a missing path (exit 3) and a path that is no file or device" {
	local f before
	f=$(make_image u0.img 64M)
	before=$(checksums "$f")
	run --separate-stderr raidtool create "$NAME" --level 0 "$f" "$TESTDIR/nonexistent.img"
	assert_refused 3 "'$TESTDIR/nonexistent.img'" "No such file"
	mkdir "$TESTDIR/dir"
	run --separate-stderr raidtool create "$NAME" --level 0 "$f" "$TESTDIR/dir"
	assert_refused 1 "'$TESTDIR/dir'" "not a block device or a regular file"
	run --separate-stderr raidtool create "$NAME" --level 0 "$f" /dev/null
	assert_refused 1 "'/dev/null'" "not a block device or a regular file"
	ln -s "$TESTDIR/gone" "$TESTDIR/dangling"
	run --separate-stderr raidtool create "$NAME" --level 0 "$f" "$TESTDIR/dangling"
	assert_refused 3 "'$TESTDIR/dangling'"
	[ "$(checksums "$f")" = "$before" ]
	[ -z "$(loop_of "$f")" ]
}

@test "a failed check on the last unit leaves the earlier units untouched" {
	mapfile -t u < <(make_images u 3 64M)
	mkfs.ext4 -q -F "${u[2]}"
	local before
	before=$(checksums "${u[@]}")
	run --separate-stderr raidtool create "$NAME" --level 5 "${u[@]}"
	assert_refused 5 "'${u[2]}'"
	[ "$(checksums "${u[@]}")" = "$before" ]
	run --separate-stderr raidtool examine "${u[0]}"
	[ "$status" -eq 3 ]
	run raidtool lookup "$NAME"
	[ "$status" -eq 3 ]
}

# --- list, lookup, lookup-unit ---------------------------------------------------

@test "list shows name, hashcode, level, units present, size and state" {
	new_array "$NAME" 5 3
	run --separate-stderr raidtool list
	assert_success
	[[ ${lines[0]} == NAME*HASHCODE*LEVEL*UNITS*SIZE*STATE*HEALTH*DEVICE ]]
	local line
	line=$(grep "^$NAME " <<<"$output")
	# A new raid5 (no --assume-clean) owes its initial sync.
	[[ $line =~ ^$NAME\ +$HASH\ raid5\ +3/3\ +[0-9.]+\ MiB\ +unsynced\ +clean\ +-$ ]] || fail "line: $line"
	run raidtool list --json
	assert_success
	local e
	e=$(jq --arg n "$NAME" '.arrays[] | select(.name == $n)' <<<"$output")
	[ "$(jq -r .hashcode <<<"$e")" = "$HASH" ]
	[ "$(jq -r .level <<<"$e")" = raid5 ]
	[ "$(jq -r .n_devices <<<"$e")" -eq 3 ]
	[ "$(jq -r .units_present <<<"$e")" -eq 3 ]
	[ "$(jq -r .units_found <<<"$e")" -eq 3 ]
	[ "$(jq -r .units_stale <<<"$e")" -eq 0 ]
	[ "$(jq -r .status <<<"$e")" = unsynced ]
	[ "$(jq -r .synced <<<"$e")" = false ]
	[ "$(jq -r .name_shared <<<"$e")" = false ]
	[ "$(jq -r .size <<<"$e")" -gt 0 ]
}

@test "list counts the units present: a unit gone makes the array incomplete" {
	new_array "$NAME" 5 3
	losetup -d "$(loop_of "${UNITS[2]}")"
	[ "$(list_field "$NAME" .units_present)" -eq 2 ]
	[ "$(list_field "$NAME" .status)" = incomplete ]
	run raidtool list
	[[ $(grep "^$NAME " <<<"$output") =~ \ 2/3\ .*incomplete\ +degraded\ +-$ ]]
}

@test "list --units NAME|HASHCODE shows each unit's role, state and backing file" {
	new_array "$NAME" 5 3
	run --separate-stderr raidtool list --units "$NAME" --json
	assert_success
	[ "$(jq length <<<"$output")" -eq 3 ]
	for i in 0 1 2; do
		[ "$(jq -r ".[$i].backing_file" <<<"$output")" = "${UNITS[$i]}" ]
		[ "$(jq -r ".[$i].role" <<<"$output")" = "$i" ]
		[ "$(jq -r ".[$i].state" <<<"$output")" = active ]
		[ "$(jq -r ".[$i].events" <<<"$output")" -eq 1 ]
		[ "$(jq -r ".[$i].device" <<<"$output")" = "$(loop_of "${UNITS[$i]}")" ]
		[[ $(jq -r ".[$i].hashcode" <<<"$output") =~ ^[0-9a-f]{8}$ ]]
	done
	run --separate-stderr raidtool list --units "$HASH"
	assert_success
	[ "${#lines[@]}" -eq 4 ]
	assert_output --partial "${UNITS[1]}"
	run --separate-stderr raidtool list --units "${NAME}nope"
	assert_refused 3 "'${NAME}nope'" "no such array"
}

@test "lookup by NAME and by HASHCODE; a nonexistent array is exit 3" {
	new_array "$NAME" 1 2 --desc "mirror"
	run --separate-stderr raidtool lookup "$NAME"
	assert_success
	assert_output --partial "name: $NAME"
	assert_output --partial "hashcode: $HASH"
	assert_output --partial "level: raid1"
	assert_output --partial "present: 2 of 2 units"
	run raidtool lookup --json "$HASH"
	assert_success
	[ "$(jq -r .name <<<"$output")" = "$NAME" ]
	[ "$(jq -r .description <<<"$output")" = mirror ]
	[ "$(jq -r .units_present <<<"$output")" -eq 2 ]
	[ "$(jq -r '.unit_hashcodes[0]' <<<"$output")" = "$(examine_field "${UNITS[0]}" .this_unit.hashcode)" ]
	run --separate-stderr raidtool lookup "${NAME}nope"
	assert_refused 3 "'${NAME}nope'" "no such array"
	run --separate-stderr raidtool lookup "$(free_hashcode)"
	[ "$status" -eq 3 ]
}

@test "check and tune: a bad command line is exit 2 whatever the array; a missing or stopped array is exit 3" {
	local id
	new_array "$NAME" 1 2
	# The options are checked before the array is looked for.
	for id in "$NAME" "${NAME}nope"; do
		run --separate-stderr raidtool check --repair --cancel "$id"
		assert_refused 2 "exclude each other"
		run --separate-stderr raidtool check --prefer 0 "$id"
		assert_refused 2 "--prefer needs --repair"
		run --separate-stderr raidtool check --speed-limit -5 "$id"
		assert_refused 2 "--speed-limit"
		run --separate-stderr raidtool tune "$id"
		assert_refused 2 "give --io-retries"
		run --separate-stderr raidtool tune --io-retries -2 "$id"
		assert_refused 2 "a number of 0 or more"
		run --separate-stderr raidtool tune --speed-limit 99999999 "$id"
		assert_refused 2 "--speed-limit"
	done
	# Then the array: it must exist and run.
	run --separate-stderr raidtool check "${NAME}nope"
	assert_refused 3 "'${NAME}nope'" "no such array"
	run --separate-stderr raidtool tune --io-retries 2 "${NAME}nope"
	assert_refused 3 "'${NAME}nope'" "no such array"
	run --separate-stderr raidtool check --repair "$HASH"
	assert_refused 3 "'$NAME'" "not running"
	run --separate-stderr raidtool tune --io-retries 2 "$NAME"
	assert_refused 3 "'$NAME'" "not running"
}

@test "lookup-unit shows a unit's descriptor; a non-unit is exit 3" {
	new_array "$NAME" 5 3
	run --separate-stderr raidtool lookup-unit --json "${UNITS[2]}"
	assert_success
	[ "$(jq -r .unit <<<"$output")" = "${UNITS[2]}" ]
	[ "$(jq -r .array <<<"$output")" = "$NAME" ]
	[ "$(jq -r .array_hashcode <<<"$output")" = "$HASH" ]
	[ "$(jq -r .role <<<"$output")" = 2 ]
	[ "$(jq -r .state <<<"$output")" = active ]
	[ "$(jq -r .data_offset <<<"$output")" -eq 1048576 ]
	[ "$(jq -r .data_size <<<"$output")" -gt 0 ]
	run --separate-stderr raidtool lookup-unit "$(loop_of "${UNITS[0]}")"
	assert_success
	assert_output --partial "array: $NAME ($HASH)"
	assert_output --partial "role: 0"
	local f before
	f=$(make_image plain.img 64M)
	before=$(checksums "$f")
	run --separate-stderr raidtool lookup-unit "$f"
	assert_refused 3 "'$f'" "no raidtool superblock"
	run --separate-stderr raidtool lookup-unit "$TESTDIR/missing"
	assert_refused 3 "'$TESTDIR/missing'" "cannot open"
	[ "$(checksums "$f")" = "$before" ]
	[ -z "$(loop_of "$f")" ]
}

@test "two arrays with one name: list reports it, only a hashcode selects" {
	new_array "$NAME" 1 2
	local a_units=("${UNITS[@]}") a_hash=$HASH
	# Hide the first array, so the name is free, and create the second.
	for f in "${a_units[@]}"; do losetup -d "$(loop_of "$f")"; done
	new_array "$NAME" 1 2
	local b_hash=$HASH
	[ "$a_hash" != "$b_hash" ]
	for f in "${a_units[@]}"; do attach "$f" >/dev/null; done

	run --separate-stderr raidtool list
	assert_success
	[ "$(grep -c "^$NAME .*(name shared: use the hashcode)" <<<"$output")" -eq 2 ]
	run raidtool list --json
	[ "$(jq --arg n "$NAME" '[.arrays[] | select(.name == $n and .name_shared)] | length' <<<"$output")" -eq 2 ]

	run --separate-stderr raidtool lookup "$NAME"
	assert_refused 2 "'$NAME'" "several arrays have this name" "hashcode"
	run --separate-stderr raidtool list --units "$NAME"
	[ "$status" -eq 2 ]
	local before
	before=$(checksums "${a_units[@]}" "${UNITS[@]}")
	run --separate-stderr raidtool rename "$NAME" "${NAME}x"
	assert_refused 2 "several arrays have this name"
	[ "$(checksums "${a_units[@]}" "${UNITS[@]}")" = "$before" ]

	run raidtool lookup --json "$a_hash"
	assert_success
	[ "$(jq -r .hashcode <<<"$output")" = "$a_hash" ]
	run raidtool lookup --json "$b_hash"
	assert_success
	[ "$(jq -r .hashcode <<<"$output")" = "$b_hash" ]
	# Renaming one by its hashcode settles it.
	run raidtool rename "$a_hash" "${NAME}x"
	assert_success
	run raidtool lookup --json "$NAME"
	assert_success
	[ "$(jq -r .hashcode <<<"$output")" = "$b_hash" ]
}

# --- examine ----------------------------------------------------------------------

@test "examine shows both copies and the role table; --json fields" {
	new_array "$NAME" 5 3
	run --separate-stderr raidtool examine "${UNITS[1]}"
	assert_success
	assert_output --partial "superblock copy 0 (offset 4096): valid, events 1 (used)"
	[[ $output =~ superblock\ copy\ 1\ \(offset\ [0-9]+\):\ valid,\ events\ 1 ]]
	assert_output --partial "name: $NAME"
	assert_output --partial "<- this unit"
	run raidtool examine --json "${UNITS[1]}"
	assert_success
	[ "$(jq -r '.copies | length' <<<"$output")" -eq 2 ]
	[ "$(jq -r '.copies[0].valid' <<<"$output")" = true ]
	[ "$(jq -r '.copies[1].valid' <<<"$output")" = true ]
	[ "$(jq -r '.copies[0].chosen' <<<"$output")" = true ]
	[ "$(jq -r '.copies[0].offset' <<<"$output")" -eq 4096 ]
	[ "$(jq -r '.copies[1].offset' <<<"$output")" -eq $((64 * 1048576 - 4096)) ]
	[ "$(jq -r .events <<<"$output")" -eq 1 ]
	[ "$(jq -r .array.name <<<"$output")" = "$NAME" ]
	[ "$(jq -r .array.hashcode <<<"$output")" = "$HASH" ]
	[ "$(jq -r .array.level <<<"$output")" = raid5 ]
	[ "$(jq -r .this_unit.role <<<"$output")" = 1 ]
	[ "$(jq -r '.roles | length' <<<"$output")" -eq 3 ]
	[ "$(jq -r '[.roles[].state] | unique | join(",")' <<<"$output")" = active ]
}

@test "examine --export prints RAIDTOOL_* lines, and nothing for a non-unit" {
	new_array "$NAME" 1 2
	run --separate-stderr raidtool examine --export "${UNITS[1]}"
	assert_success
	assert_line "RAIDTOOL_NAME=$NAME"
	assert_line "RAIDTOOL_HASHCODE=$HASH"
	assert_line "RAIDTOOL_LEVEL=raid1"
	assert_line "RAIDTOOL_N_DEVICES=2"
	assert_line "RAIDTOOL_ROLE=1"
	assert_line "RAIDTOOL_UNIT_STATE=active"
	assert_line "RAIDTOOL_EVENTS=1"
	assert_line "RAIDTOOL_STATE=clean"
	assert_line --regexp '^RAIDTOOL_UNIT_HASHCODE=[0-9a-f]{8}$'
	assert_line --regexp '^RAIDTOOL_UUID=[0-9a-f-]{36}$'
	local bad
	bad=$(grep -cv '^RAIDTOOL_[A-Z_]*=[A-Za-z0-9._-]*$' <<<"$output" || true)
	[ "$bad" -eq 0 ]
	local f
	f=$(make_image plain.img 64M)
	run --separate-stderr raidtool examine --export "$f"
	assert_success
	assert_output ""
	[ -z "$stderr" ]
	run --separate-stderr raidtool examine --export "$(attach "$f")"
	assert_success
	assert_output ""
}

@test "examine of a non-unit or a missing path fails clearly" {
	local f before
	f=$(make_image plain.img 64M)
	before=$(checksums "$f")
	run --separate-stderr raidtool examine "$f"
	assert_refused 3 "'$f'" "holds no raidtool superblock"
	run --separate-stderr raidtool examine --json "$f"
	assert_refused 3 "'$f'"
	run --separate-stderr raidtool examine "$TESTDIR/missing"
	assert_refused 3 "'$TESTDIR/missing'" "cannot open"
	run --separate-stderr raidtool examine "$TESTDIR"
	assert_refused 1 "'$TESTDIR'" "not a block device or a regular file"
	[ "$(checksums "$f")" = "$before" ]
	[ -z "$(loop_of "$f")" ]
}

@test "copy fallback: copy 0 corrupt, examine uses copy 1 and the array still lists" {
	new_array "$NAME" 5 3
	local loop
	loop=$(loop_of "${UNITS[0]}")
	clobber "$loop" $((4096 + 512))
	run --separate-stderr raidtool examine "${UNITS[0]}"
	assert_success
	assert_output --partial "superblock copy 0 (offset 4096): checksum mismatch"
	[[ $output =~ superblock\ copy\ 1\ \(offset\ [0-9]+\):\ valid,\ events\ 1\ \(used\) ]]
	# The fallback is reported on stderr; JSON stays clean on stdout.
	[[ $stderr == *"copy 0"*"checksum mismatch"*"using copy 1"* ]] || fail "stderr: $stderr"
	run --separate-stderr raidtool examine --json "${UNITS[0]}"
	assert_success
	[ "$(jq -r '.copies[0].valid' <<<"$output")" = false ]
	[ "$(jq -r '.copies[0].chosen' <<<"$output")" = false ]
	[ "$(jq -r '.copies[1].valid' <<<"$output")" = true ]
	[ "$(jq -r '.copies[1].chosen' <<<"$output")" = true ]
	[ "$(jq -r .array.name <<<"$output")" = "$NAME" ]
	[ "$(list_field "$NAME" .units_present)" -eq 3 ]
	[ "$(list_field "$NAME" .status)" = unsynced ]
	run --separate-stderr raidtool lookup-unit --json "${UNITS[0]}"
	assert_success
	[ "$(jq -r .role <<<"$output")" = 0 ]
	# Copy 0 gone altogether (no magic) is survived the same way.
	dd if=/dev/zero of="$loop" bs=4096 seek=1 count=1 oflag=direct conv=notrunc status=none
	run --separate-stderr raidtool examine --json "${UNITS[0]}"
	assert_success
	[ "$(jq -r '.copies[0].status' <<<"$output")" = "no superblock (magic missing)" ]
	[ "$(jq -r '.copies[1].chosen' <<<"$output")" = true ]
}

@test "copy fallback: both copies corrupt, examine fails clearly" {
	new_array "$NAME" 5 3
	local loop sb1
	loop=$(loop_of "${UNITS[0]}")
	sb1=$(examine_field "${UNITS[0]}" .this_unit.sb_offset_1)
	clobber "$loop" $((4096 + 512))
	clobber "$loop" $((sb1 + 512))
	run --separate-stderr raidtool examine "${UNITS[0]}"
	assert_refused 1 "'${UNITS[0]}'" "no valid raidtool superblock"
	run --separate-stderr raidtool lookup-unit "${UNITS[0]}"
	assert_refused 1 "'${UNITS[0]}'" "no valid raidtool superblock"
	[ "$(list_field "$NAME" .units_present)" -eq 2 ]
}

# --- add ---------------------------------------------------------------------------

@test "add to raid1: into the missing role first, then as a spare" {
	new_array "$NAME" 1 2
	# Role 1 goes missing.
	run raidtool zero "${UNITS[1]}"
	assert_success
	[ "$(list_field "$NAME" .units_present)" -eq 1 ]
	mapfile -t n < <(make_images new 2 64M)
	run --separate-stderr raidtool add "$NAME" "${n[0]}"
	assert_success
	assert_output "added '${n[0]}' to array '$NAME'"
	[ -n "$(loop_of "${n[0]}")" ]
	[ "$(examine_field "${n[0]}" .this_unit.role)" = 1 ]
	[ "$(examine_field "${n[0]}" .this_unit.state)" = rebuilding ]
	[ "$(examine_field "${n[0]}" .events)" -eq 2 ]
	[ "$(examine_field "${UNITS[0]}" .events)" -eq 2 ]
	run raidtool add "$HASH" "${n[1]}"
	assert_success
	[ "$(examine_field "${n[1]}" .this_unit.role)" = spare ]
	[ "$(examine_field "${n[1]}" .this_unit.state)" = spare ]
	run raidtool list --units "$NAME" --json
	[ "$(jq length <<<"$output")" -eq 3 ]
	[ "$(jq -r '[.[].role] | join(",")' <<<"$output")" = "0,1,spare" ]
	[ "$(jq -r '[.[].events] | unique | join(",")' <<<"$output")" = 3 ]
	run raidtool lookup --json "$NAME"
	[ "$(jq -r .n_devices <<<"$output")" -eq 2 ]
	[ "$(jq -r .events <<<"$output")" -eq 3 ]
}

@test "add to a complete raid5 makes spares; several units at once" {
	new_array "$NAME" 5 3
	mapfile -t n < <(make_images new 2 64M)
	run --separate-stderr raidtool add "$NAME" "${n[@]}"
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	[ "$(examine_field "${n[0]}" .this_unit.role)" = spare ]
	[ "$(examine_field "${n[1]}" .this_unit.role)" = spare ]
	[ "$(examine_field "${UNITS[2]}" '.roles | length')" -eq 5 ]
	[ "$(list_field "$NAME" .units_found)" -eq 5 ]
	[ "$(list_field "$NAME" .units_present)" -eq 3 ]
}

@test "add refuses linear and raid0 arrays" {
	new_array "${NAME}l" linear 1
	local lin=("${UNITS[@]}")
	new_array "${NAME}z" 0 2
	local f before
	f=$(make_image new.img 64M)
	before=$(checksums "$f" "${lin[@]}" "${UNITS[@]}")
	run --separate-stderr raidtool add "${NAME}l" "$f"
	assert_refused 1 "'${NAME}l'" "no redundancy"
	run --separate-stderr raidtool add "${NAME}z" "$f"
	assert_refused 1 "'${NAME}z'" "no redundancy"
	[ "$(checksums "$f" "${lin[@]}" "${UNITS[@]}")" = "$before" ]
	[ -z "$(loop_of "$f")" ]
}

@test "add refuses a unit of the array itself, a filesystem, a too-small unit, a missing array" {
	new_array "$NAME" 1 2
	local fs small before
	fs=$(make_image fs.img 64M)
	mkfs.ext4 -q -F "$fs"
	small=$(make_image small.img 32M)
	before=$(checksums "$fs" "$small" "${UNITS[@]}")
	run --separate-stderr raidtool add "$NAME" "${UNITS[1]}"
	assert_refused 5 "'${UNITS[1]}'" "already a unit of array '$NAME'"
	run --separate-stderr raidtool add "$NAME" "$fs"
	assert_refused 5 "'$fs'" "ext4" "--force"
	run --separate-stderr raidtool add "$NAME" "$small"
	assert_refused 1 "'$small'" "too small"
	run --separate-stderr raidtool add "${NAME}nope" "$small"
	assert_refused 3 "'${NAME}nope'" "no such array"
	run --separate-stderr raidtool add "$NAME" "$small" "$small"
	assert_refused 2 "named twice"
	[ "$(checksums "$fs" "$small" "${UNITS[@]}")" = "$before" ]
	[ "$(examine_field "${UNITS[0]}" .events)" -eq 1 ]
	run raidtool add --force "$NAME" "$fs"
	assert_success
	[ "$(examine_field "$fs" .this_unit.role)" = spare ]
}

# --- rename and rehash -----------------------------------------------------------------

@test "rename rewrites every unit's superblock with events bumped" {
	new_array "$NAME" 5 3
	run --separate-stderr raidtool rename "$NAME" "${NAME}r"
	assert_success
	assert_output "renamed array '$NAME' to '${NAME}r'"
	for f in "${UNITS[@]}"; do
		[ "$(examine_field "$f" .array.name)" = "${NAME}r" ]
		[ "$(examine_field "$f" .events)" -eq 2 ]
		[ "$(examine_field "$f" '.copies[0].events')" -eq 2 ]
		[ "$(examine_field "$f" '.copies[1].events')" -eq 2 ]
	done
	run raidtool lookup "$NAME"
	[ "$status" -eq 3 ]
	run raidtool lookup --json "${NAME}r"
	assert_success
	[ "$(jq -r .hashcode <<<"$output")" = "$HASH" ]
	# By hashcode, too.
	run raidtool rename "$HASH" "$NAME"
	assert_success
	[ "$(examine_field "${UNITS[2]}" .array.name)" = "$NAME" ]
	[ "$(examine_field "${UNITS[2]}" .events)" -eq 3 ]
}

@test "rename refuses a taken name, a bad name and a missing array" {
	new_array "${NAME}a" 1 2
	local a=("${UNITS[@]}")
	new_array "${NAME}b" 1 2
	local before
	before=$(checksums "${a[@]}" "${UNITS[@]}")
	run --separate-stderr raidtool rename "${NAME}b" "${NAME}a"
	assert_refused 5 "'${NAME}a'" "already taken"
	run --separate-stderr raidtool rename "${NAME}b" ""
	assert_refused 2 "not a valid name"
	run --separate-stderr raidtool rename "${NAME}b" "$(printf 'n%063d' 0)"
	assert_refused 2 "name too long"
	run --separate-stderr raidtool rename "${NAME}nope" "${NAME}c"
	assert_refused 3 "'${NAME}nope'" "no such array"
	[ "$(checksums "${a[@]}" "${UNITS[@]}")" = "$before" ]
}

@test "rehash NAME NEWHASH and rehash NAME: every unit rewritten, events bumped" {
	new_array "$NAME" 5 3
	local want uuid
	want=$(free_hashcode)
	run --separate-stderr raidtool rehash "$NAME" "$want"
	assert_success
	assert_output "$want"
	for f in "${UNITS[@]}"; do
		[ "$(examine_field "$f" .array.hashcode)" = "$want" ]
		[ "$(examine_field "$f" .events)" -eq 2 ]
	done
	run raidtool lookup --json "$want"
	assert_success
	[ "$(jq -r .name <<<"$output")" = "$NAME" ]
	run raidtool lookup "$HASH"
	[ "$status" -eq 3 ]
	# Without NEWHASH: back to the first 8 hex digits of the array's UUID.
	uuid=$(examine_field "${UNITS[0]}" .array.uuid)
	run --separate-stderr raidtool rehash "$want"
	assert_success
	assert_output "${uuid:0:8}"
	[ "$(examine_field "${UNITS[1]}" .array.hashcode)" = "${uuid:0:8}" ]
	[ "$(examine_field "${UNITS[1]}" .events)" -eq 3 ]
	# Upper case hex is accepted and printed in lower case.
	want=$(free_hashcode)
	run raidtool rehash "$NAME" "${want^^}"
	assert_success
	assert_output "$want"
}

@test "rehash refuses a hashcode that is not 8 hex digits (exit 2)" {
	new_array "$NAME" 1 2
	local before h
	before=$(checksums "${UNITS[@]}")
	for h in xyz 123 1234567 123456789 ghijklmn "12 45678" ""; do
		run --separate-stderr raidtool rehash "$NAME" "$h"
		assert_refused 2 "'$h'" "not a hashcode"
	done
	[ "$(checksums "${UNITS[@]}")" = "$before" ]
}

@test "rehash refuses a hashcode another array has, and a missing array" {
	new_array "${NAME}a" 1 2
	local a=("${UNITS[@]}") a_hash=$HASH
	new_array "${NAME}b" 1 2
	local before
	before=$(checksums "${a[@]}" "${UNITS[@]}")
	run --separate-stderr raidtool rehash "${NAME}b" "$a_hash"
	assert_refused 5 "$a_hash" "already used by array '${NAME}a'"
	run --separate-stderr raidtool rehash "${NAME}nope" "$(free_hashcode)"
	assert_refused 3 "'${NAME}nope'" "no such array"
	[ "$(checksums "${a[@]}" "${UNITS[@]}")" = "$before" ]
	# Its own hashcode again is no clash.
	run raidtool rehash "${NAME}b" "$HASH"
	assert_success
	assert_output "$HASH"
}

@test "rename and rehash refuse while a unit is held (exit 4)" {
	new_array "$NAME" 1 2
	hold_exclusive "$(loop_of "${UNITS[1]}")"
	local before
	before=$(checksums "${UNITS[@]}")
	run --separate-stderr raidtool rename "$NAME" "${NAME}r"
	assert_refused 4 "'$NAME'" "in use"
	run --separate-stderr raidtool rehash "$NAME" "$(free_hashcode)"
	assert_refused 4 "in use"
	[ "$(checksums "${UNITS[@]}")" = "$before" ]
}

# --- zero ---------------------------------------------------------------------------------

@test "zero wipes a unit: examine then finds no superblock" {
	new_array "$NAME" 1 2
	run --separate-stderr raidtool zero "${UNITS[0]}"
	assert_success
	assert_output "wiped raidtool superblocks from '${UNITS[0]}'"
	run --separate-stderr raidtool examine "${UNITS[0]}"
	assert_refused 3 "'${UNITS[0]}'" "holds no raidtool superblock"
	run raidtool examine --export "${UNITS[0]}"
	assert_success
	assert_output ""
	# Both copies are gone from the image itself.
	local sb1
	sb1=$(examine_field "${UNITS[1]}" .this_unit.sb_offset_1)
	[ "$(head -c 4096 <(tail -c +$((4096 + 1)) "${UNITS[0]}") | tr -d '\0' | wc -c)" -eq 0 ]
	[ "$(tail -c +$((sb1 + 1)) "${UNITS[0]}" | tr -d '\0' | wc -c)" -eq 0 ]
	[ "$(list_field "$NAME" .units_present)" -eq 1 ]
	run raidtool zero "$(loop_of "${UNITS[1]}")"
	assert_success
	run raidtool lookup "$NAME"
	[ "$status" -eq 3 ]
}

@test "zero refuses a non-unit without --force (exit 3); --force wipes anyway" {
	local f before
	f=$(make_image plain.img 64M)
	dd if=/dev/urandom of="$f" bs=4096 seek=1 count=1 conv=notrunc status=none
	before=$(checksums "$f")
	run --separate-stderr raidtool zero "$f"
	assert_refused 3 "'$f'" "holds no raidtool superblock"
	[ "$(checksums "$f")" = "$before" ]
	[ -z "$(loop_of "$f")" ]
	run --separate-stderr raidtool zero "$TESTDIR/missing"
	assert_refused 3 "'$TESTDIR/missing'"
	run raidtool zero --force "$f"
	assert_success
	[ "$(checksums "$f")" != "$before" ]
	[ "$(head -c 8192 "$f" | tail -c 4096 | tr -d '\0' | wc -c)" -eq 0 ]
}

@test "zero refuses a damaged superblock without --force" {
	new_array "$NAME" 1 2
	local loop sb1 before
	loop=$(loop_of "${UNITS[0]}")
	sb1=$(examine_field "${UNITS[0]}" .this_unit.sb_offset_1)
	clobber "$loop" $((4096 + 512))
	clobber "$loop" $((sb1 + 512))
	before=$(checksums "${UNITS[0]}")
	run --separate-stderr raidtool zero "${UNITS[0]}"
	assert_refused 1 "'${UNITS[0]}'" "unreadable" "--force"
	[ "$(checksums "${UNITS[0]}")" = "$before" ]
	run raidtool zero --force "${UNITS[0]}"
	assert_success
	run raidtool examine "${UNITS[0]}"
	[ "$status" -eq 3 ]
}

@test "zero refuses a unit while it is held (exit 4)" {
	new_array "$NAME" 1 2
	local loop before
	loop=$(loop_of "${UNITS[0]}")
	hold_exclusive "$loop"
	before=$(checksums "${UNITS[@]}")
	run --separate-stderr raidtool zero "${UNITS[0]}"
	assert_refused 4 "'${UNITS[0]}'" "in use"
	run --separate-stderr raidtool zero --force "$loop"
	assert_refused 4 "'$loop'" "in use"
	[ "$(checksums "${UNITS[@]}")" = "$before" ]
	[ "$(examine_field "${UNITS[0]}" .array.name)" = "$NAME" ]
}
