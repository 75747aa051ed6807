# bench/grab-script-call.sh — sourced by bench/redis-grab-bench. The one place where the benches
# name the interface of the store's Lua scripts (src/store/redis/lua/): the KEYS and ARGV that
# create.lua, append.lua and grab.lua take, for a bench packet of 1-cent shares under a hash tag
# of its own ({rpbench:<id>}, never a packet of the system's).
#
# When a script's KEYS or ARGV change, change the lists below, and nothing else:
#  - check_script_arity compares each list with the highest KEYS[n] and ARGV[n] the script reads
#    (comments stripped) and stops the bench naming this file when they disagree;
#  - redis-grab-bench then makes one grab with these arguments and requires the reply "ok" before
#    it runs redis-benchmark, so a call that the script refuses never becomes a number.
# A key the grab writes besides the packet's own (e.g. the slot's outbox stream) must be named
# under the bench packet's tag, so that it is in the same slot and nothing of the system's (a relay
# looking for pending events) ever reads it; add it to bench_keys so that it is deleted at the end.

# Sets the arrays below for the bench packet with hash tag $1 (e.g. {rpbench:42}) holding $2
# shares, created at $3 (ms since the epoch), open until $4 (ms).
#   bench_keys                 every key the calls touch (DEL at the end)
#   shares_key, grabs_key      LLEN / HLEN of these count the shares left and the grabs made
#   create_keys, create_args   create.lua, before the first shares (the bench passes none there)
#   append_keys, append_args   append.lua, before the chunk's offset and its amounts
#   grab_keys, grab_args       grab.lua; the user is redis-benchmark's __rand_int__ (a random
#                              12-digit id per call; every occurrence is drawn anew, so use it once)
grab_script_calls() {
  local tag=$1 shares=$2 now_ms=$3 expires_ms=$4
  local meta="$tag:meta" list="$tag:shares" grabs="$tag:grabs" outbox="$tag:outbox"
  bench_keys=("$meta" "$list" "$grabs" "$outbox")
  shares_key=$list
  grabs_key=$grabs

  # create.lua ARGV: sender total count kind greeting receiver('' = anyone) created_ms expires_ms
  #                  keys_expire_at_ms shares_to_load grabs_to_load [first shares...]
  create_keys=("$meta" "$list" "$grabs")
  create_args=(1 "$shares" "$shares" equal bench "" "$now_ms" "$expires_ms"
    "$((expires_ms + 3600000))" "$shares" 0)
  # append.lua ARGV: 'shares' offset amounts...
  append_keys=("$meta" "$list" "$grabs")
  append_args=(shares)
  # grab.lua KEYS: meta shares grabs, and the outbox stream of the slot (here one under the
  # bench packet's own tag: same slot, and no relay ever reads it).
  # grab.lua ARGV: user now_ms request_token want_meta('1' = append the immutable metadata)
  #                packet_id (written into the recorded event)
  grab_keys=("$meta" "$list" "$grabs" "$outbox")
  grab_args=(__rand_int__ "$now_ms" bench 0 1)
}

# The highest literal KEYS[n] or ARGV[n] index a Lua file reads, comments stripped (0: none).
highest_index() {  # file KEYS|ARGV
  sed 's/--.*$//' "$1" | grep -o "$2\[[0-9]*\]" | tr -dc '0-9\n' | sort -n | tail -n 1 | grep . || echo 0
}

# Dies unless `script` reads exactly `keys` keys and exactly `args` fixed arguments (the highest
# literal ARGV[n]; arguments a script reads in a loop past it are not counted).
check_script_arity() {  # script.lua keys args
  local file=$1 keys=$2 args=$3 script_keys script_args
  script_keys=$(highest_index "$file" KEYS)
  script_args=$(highest_index "$file" ARGV)
  if [[ $script_keys != "$keys" || $script_args != "$args" ]]; then
    echo "redis-grab-bench: $(basename "$file") reads KEYS[1..$script_keys] and ARGV[1..$script_args]," \
      "but bench/grab-script-call.sh passes $keys keys and $args arguments: update its lists" \
      "(grab_script_calls) to the script's new interface" >&2
    exit 1
  fi
}
