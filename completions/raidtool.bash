# shellcheck shell=bash
# bash completion for raidtool(8).
#
# Completes commands, each command's options, array names and hashcodes
# where a command takes NAME|HASHCODE (from 'raidtool list', which needs
# root to read the block devices), block devices and files where it takes a
# UNIT, and the values of --level and --blocksize.

# The arrays' names and hashcodes, one per line.
_raidtool_arrays() {
	local rt=$1
	if command -v jq >/dev/null 2>&1; then
		"$rt" list --json 2>/dev/null | jq -r '.arrays[] | .name, .hashcode' 2>/dev/null
	else
		# NAME HASHCODE LEVEL ... after a header line.
		"$rt" list 2>/dev/null | awk 'NR > 1 && NF >= 2 { print $1; print $2 }'
	fi
}

# Block devices and files (directories too, to descend into them).
_raidtool_units() {
	local cur=$1 dev
	compopt -o filenames 2>/dev/null
	mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	# Typing /dev/... completes devices as files; offer them up front too.
	if [ -z "$cur" ]; then
		while IFS= read -r dev; do
			COMPREPLY+=("$dev")
		done < <(lsblk -lnpo NAME 2>/dev/null)
	fi
}

_raidtool_words() {
	local cur=$1
	shift
	mapfile -t COMPREPLY < <(compgen -W "$*" -- "$cur")
}

# pool and vol: SUBCOMMAND, its options, ARRAY, then (vol snapshot/delete/
# resize) a volume of that array's pool. $1: raidtool, $2: the command, $3: the
# index of the first word after it.
_raidtool_thin() {
	local rt=$1 cmd=$2 i=$3 sub='' array='' nargs=0 w
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	for ((; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case "$w" in
		--block-size | -b | --when-full | --low-water | --size | -s) ((i++)) ;;
		-*) ;;
		*)
			if [ -z "$sub" ]; then
				sub=$w
			else
				[ "$nargs" = 0 ] && array=$w
				((nargs++))
			fi ;;
		esac
	done
	if [ -z "$sub" ]; then
		if [ "$cmd" = pool ]; then
			_raidtool_words "$cur" "create status check dump abort set-transaction-id set
				reserve-metadata-snap release-metadata-snap --help -h --usage"
		else
			_raidtool_words "$cur" "create snapshot delete resize list --help -h --usage"
		fi
		return 0
	fi
	case "$prev" in
	--when-full) _raidtool_words "$cur" "error queue"; return 0 ;;
	--block-size | -b) _raidtool_words "$cur" "64K 128K 256K 512K 1M"; return 0 ;;
	--low-water | --size | -s) return 0 ;;
	esac
	if [[ $cur == -* ]]; then
		# $common: the options cli_run gives every (sub)command, set by _raidtool.
		case "$cmd:$sub" in
		pool:create) _raidtool_words "$cur" "--block-size -b --when-full --low-water
			--force -f $common" ;;
		pool:status | vol:list) _raidtool_words "$cur" "--json $common" ;;
		vol:create) _raidtool_words "$cur" "--size -s $common" ;;
		vol:resize) _raidtool_words "$cur" "--size -s --force -f $common" ;;
		pool:set) _raidtool_words "$cur" "--read-only --read-write $common" ;;
		*) _raidtool_words "$cur" "$common" ;;
		esac
		return 0
	fi
	if ((nargs == 0)); then
		_raidtool_words "$cur" "$(_raidtool_arrays "$rt")"
	elif ((nargs == 1)) && [[ $cmd:$sub == vol:snapshot || $cmd:$sub == vol:delete ||
		$cmd:$sub == vol:resize ]] &&
		command -v jq >/dev/null 2>&1; then
		_raidtool_words "$cur" "$("$rt" vol list --json "$array" 2>/dev/null |
			jq -r '.[].name' 2>/dev/null)"
	fi
	return 0
}

_raidtool() {
	local cur prev rt cmd i w opt nargs
	local commands="create add list lookup lookup-unit examine rename rehash zero
		activate deactivate status fail remove replace tune check wait incremental pool vol monitor"
	local global_opts="--verbose -v --quiet -q --help -h --version -V"
	# Every command takes these after its name (cli_run in raidtool/cli.c).
	local common="--help -h --usage --verbose -v --quiet -q"

	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	rt=${COMP_WORDS[0]}
	# The word as typed may be a relative path or an alias; fall back to PATH.
	command -v "$rt" >/dev/null 2>&1 || rt=raidtool

	# The command: the first word after the global options.
	cmd=''
	i=1
	while ((i < COMP_CWORD)); do
		w=${COMP_WORDS[i]}
		if [[ $w != -* ]]; then
			cmd=$w
			break
		fi
		((i++))
	done
	if [ -z "$cmd" ]; then
		if [[ $cur == -* ]]; then
			_raidtool_words "$cur" "$global_opts"
		else
			_raidtool_words "$cur" "$commands"
		fi
		return 0
	fi
	case "$cmd" in
	pool | vol) _raidtool_thin "$rt" "$cmd" $((i + 1)); return 0 ;;
	esac

	# The option whose value is being completed: "--level 5", "--level=5".
	opt=
	if [ "$cur" = "=" ]; then
		opt=$prev
		cur=''
	elif [ "$prev" = "=" ] && ((COMP_CWORD >= 2)); then
		opt=${COMP_WORDS[COMP_CWORD - 2]}
	else
		opt=$prev
	fi
	case "$cmd:$opt" in
	create:-l | create:--level)
		_raidtool_words "$cur" "linear none 0 1 5 raid0 raid1 raid5"
		return 0 ;;
	create:-c | create:--chunk)
		_raidtool_words "$cur" "4K 8K 16K 32K 64K 128K 256K 512K 1M 2M 4M"
		return 0 ;;
	create:-b | create:--blocksize)
		_raidtool_words "$cur" "512 4096"
		return 0 ;;
	create:-d | create:--desc)
		return 0 ;;
	list:-u | list:--units)
		_raidtool_words "$cur" "$(_raidtool_arrays "$rt")"
		return 0 ;;
	list:-o | list:--output)
		# Comma-separated: complete the column after the last comma.
		local done_cols=
		[[ $cur == *,* ]] && done_cols=${cur%,*},
		mapfile -t COMPREPLY < <(compgen -P "$done_cols" -W "NAME HASHCODE LEVEL UNITS SIZE
			STATE HEALTH DEVICE UUID" -- "${cur##*,}")
		return 0 ;;
	incremental:-t | incremental:--timeout)
		_raidtool_words "$cur" "0 10 30 60"
		return 0 ;;
	replace:-w | replace:--with)
		_raidtool_units "$cur"
		return 0 ;;
	monitor:--program)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -c -- "$cur")
		return 0 ;;
	monitor:-d | monitor:--delay)
		_raidtool_words "$cur" "0.5 1 5 60"
		return 0 ;;
	esac

	if [[ $cur == -* ]]; then
		case "$cmd" in
		create)
			_raidtool_words "$cur" "--level -l --chunk -c --blocksize -b --desc -d
				--force -f --assume-clean --json --batch-mode $common" ;;
		add) _raidtool_words "$cur" "--force -f --speed-limit --json $common" ;;
		list)
			_raidtool_words "$cur" "--units -u --json --output -o --noheadings -n --raw
				$common" ;;
		lookup | lookup-unit) _raidtool_words "$cur" "--json $common" ;;
		examine) _raidtool_words "$cur" "--json --export $common" ;;
		rename | rehash) _raidtool_words "$cur" "$common" ;;
		zero) _raidtool_words "$cur" "--force -f --batch-mode $common" ;;
		activate)
			_raidtool_words "$cur" "--foreground -F --force -f --readonly -r --scan -s --run -R --json
				$common" ;;
		fail) _raidtool_words "$cur" "--force -f --json $common" ;;
		remove) _raidtool_words "$cur" "--json $common" ;;
		replace) _raidtool_words "$cur" "--with -w --force -f --speed-limit --json $common" ;;
		tune) _raidtool_words "$cur" "--io-retries --io-retry-window --speed-limit $common" ;;
		check) _raidtool_words "$cur" "--repair -r --prefer --cancel --speed-limit --json $common" ;;
		wait) _raidtool_words "$cur" "--progress -p --json $common" ;;
		deactivate) _raidtool_words "$cur" "--json $common" ;;
		status) _raidtool_words "$cur" "--json --test -t $common" ;;
		monitor)
			_raidtool_words "$cur" "--scan --program --oneshot -1 --json --syslog --delay -d
				$common" ;;
		incremental)
			_raidtool_words "$cur" "--export --json --run -R --no-start --timeout -t
				--remove -r --scan -s $common" ;;
		esac
		return 0
	fi

	# How many positional arguments precede the current word.
	nargs=0
	for ((i = i + 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case "$w" in
		=) ;;
		-l | --level | -c | --chunk | -b | --blocksize | -d | --desc | -u | --units | -o | --output | \
			-t | --timeout | --io-retries | --io-retry-window | --speed-limit | \
			--program | --delay | -w | --with)
			# An option with a separate value: skip the value too.
			if [ "${COMP_WORDS[i + 1]:-}" = "=" ]; then
				((i += 2))
			else
				((i++))
			fi ;;
		-*) ;;
		*) ((nargs++)) ;;
		esac
	done

	case "$cmd" in
	create)
		# NAME is new: nothing to offer. Then units.
		((nargs >= 1)) && _raidtool_units "$cur" ;;
	add)
		if ((nargs == 0)); then
			_raidtool_words "$cur" "$(_raidtool_arrays "$rt")"
		else
			_raidtool_units "$cur"
		fi ;;
	lookup | deactivate | status | tune | check | wait)
		((nargs == 0)) && _raidtool_words "$cur" "$(_raidtool_arrays "$rt")" ;;
	activate)
		# --scan takes units to scan; else one array.
		if [[ " ${COMP_WORDS[*]} " == *" --scan "* || " ${COMP_WORDS[*]} " == *" -s "* ]]; then
			_raidtool_units "$cur"
		elif ((nargs == 0)); then
			_raidtool_words "$cur" "$(_raidtool_arrays "$rt")"
		fi ;;
	monitor)
		# Any number of arrays, none with --scan.
		[[ " ${COMP_WORDS[*]} " == *" --scan "* ]] ||
			_raidtool_words "$cur" "$(_raidtool_arrays "$rt")" ;;
	fail | remove | replace)
		# Then a role number, unit hashcode or device (replace: NEW goes with --with).
		if ((nargs == 0)); then
			_raidtool_words "$cur" "$(_raidtool_arrays "$rt")"
		elif ((nargs == 1)); then
			_raidtool_units "$cur"
		fi ;;
	rename | rehash)
		# The second argument is the new name or hashcode.
		((nargs == 0)) && _raidtool_words "$cur" "$(_raidtool_arrays "$rt")" ;;
	lookup-unit | examine | incremental)
		((nargs == 0)) && _raidtool_units "$cur" ;;
	zero)
		_raidtool_units "$cur" ;;
	esac
	return 0
}

complete -F _raidtool raidtool
