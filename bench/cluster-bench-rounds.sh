# bench/cluster-bench-rounds.sh: the measurements of bench/cluster-bench and its rounds (a hot
# round of wrk on the API server with every process's CPU over its window, and the baseline round
# of the grab script alone).
# Sourced by bench/cluster-bench (its variables and functions are this file's); not run alone.
# shellcheck shell=bash

# ---- measurements -----------------------------------------------------------------------------
status_counts() {  # "status count" per reply status of the server's grab route(s)
  curl -s "http://127.0.0.1:$server_port/metrics" |
    { grep '^redpacket_http_requests_total{.*grab' || true; } |
    sed -n 's/^redpacket_http_requests_total{.*status="\([0-9]*\)".*} \([0-9.e+]*\)$/\1 \2/p' |
    awk '{ n[$1] += $2 } END { for (s in n) printf "%s %.0f\n", s, n[s] }' | sort
}
status_delta() {  # before-file after-file -> "ok200 gone410 other detail"
  awk 'FILENAME == ARGV[1] { before[$1] = $2; next }
       { d = $2 - before[$1]; if ($1 == 200) ok += d; else if ($1 == 410) gone += d; else if (d > 0) { other += d; detail = detail sep $1 "x" d; sep = "," } }
       END { printf "%d %d %d %s\n", ok, gone, other, detail == "" ? "-" : detail }' "$1" "$2"
}
parse_wrk() {  # -> "rps p50_ms p99_ms non2xx socket_errors requests"
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v
    }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(",", ""); errors = $4 + $6 + $8 + $10 }
    /requests in/ { requests = $1 }
    /^Requests\/sec:/ { rps = $2 }
    END { printf "%.0f %.3f %.3f %d %d %d\n", rps, p50, p99, non2xx, errors, requests }' "$1"
}
# CPU ticks of every process / of one process's threads, "pid comm ticks": the split lines.
cpu_snapshot() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
    awk '{ comm = $0; sub(/^[^(]*\(/, "", comm); sub(/\).*$/, "", comm); gsub(/ /, "_", comm)
           rest = $0; sub(/^.*\) /, "", rest); split(rest, f, " "); print $1, comm, f[12] + f[13] }'
}
thread_snapshot() {
  { cat /proc/"$1"/task/[0-9]*/stat 2>/dev/null || true; } |
    awk '{ comm = $0; sub(/^[^(]*\(/, "", comm); sub(/\).*$/, "", comm); gsub(/ /, "_", comm)
           rest = $0; sub(/^.*\) /, "", rest); split(rest, f, " "); print $1, comm, f[12] + f[13] }'
}
cpu_split() {  # before after seconds [processes-file: names by pid] -> "name percent-of-one-CPU, ..." (above 2%)
  awk -v hz="$clock_ticks" -v s="$3" -v names="${4:-}" '
       BEGIN { if (names != "") while ((getline line < names) > 0) { split(line, f, " "); name[f[1]] = f[2] } }
       FNR == NR { b[$1] = $3; next }
       { d = $3 - ($1 in b ? b[$1] : 0); k = ($1 in name) ? name[$1] : $2; if (k == "java") k = "java(other)"
         if (d > 0) c[k] += d }
       END { for (k in c) printf "%.0f %s\n", 100 * c[k] / hz / s, k }' "$1" "$2" |
    sort -rn | awk '$1 >= 2 { printf "%s%s %s%%", sep, $2, $1; sep = ", " }'
}
applied_events() { worker_metrics | metric redpacket_worker_applied_events_total; }
# Polls until the worker has applied `want` events more than `base`; prints the seconds since
# `since`, or "timeout".
wait_applied() {  # since base want
  local applied deadline=$((SECONDS + lag_timeout_s))
  while ((SECONDS < deadline)); do
    applied=$(applied_events || true)
    if [[ -n $applied ]] && ((applied - $2 >= $3)); then elapsed "$1"; return; fi
    sleep 0.1
  done
  echo timeout
}

# One hot round: wrk on the hot packet, then until every 200 is credited (unless no worker runs).
# Writes the round's facts (case = hot<C>; round 0: warm-up or backlog, not written) and sets rps
# p50 p99 ok gone other split.
run_hot_round() {  # case round connections first-user [probe-first-user]
  local case=$1 n=$2 c=$3 out="$work/wrk-$1-$2.txt" procs="$work/procs-$1-$2" tag="$1-$2"
  local started wrk_ended settled server_before server_after busy_before busy_after kids_before kids_after
  local applied_base settle
  ensure_shares "$duration"
  { echo "$server_pid api-$server_port api"; [[ -z $worker_pid ]] || echo "$worker_pid worker worker"; } |
    cluster_processes "$services_dir" >"$procs"
  if [[ -n $worker_pid ]]; then
    applied_base=$(applied_events)
    [[ -n $applied_base ]] || die "the worker's /metrics has no redpacket_worker_applied_events_total"
  fi
  status_counts >"$work/status-$tag-before"
  thread_snapshot "$server_pid" >"$work/threads-$tag-before"
  cpu_snapshot >"$work/all-$tag-before"
  process_ticks <"$procs" >"$work/ticks-$tag-before"
  busy_before=$(machine_busy_ticks)
  kids_before=$(children_ticks)
  server_before=$(process_ticks <<<"$server_pid" | awk '{ print $2 }')
  if [[ $perf == 1 && $tag == ${case_first}-1 ]]; then
    perf record -q -F 499 -g -p "$server_pid" -o "$work/perf.data" -- sleep "$duration" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  started=$(now)
  if [[ -n ${5:-} ]]; then
    "${pin_prefix[@]}" "$bench_dir/credit-probe" --port "$server_port" --packet "$hot" --first-user "$5" \
      --duration "$duration" --out "$work/probe.txt" 2>>"$work/probe.log" &
    probe_pid=$!
  fi
  RP_PACKET=$hot RP_FIRST_USER=$4 "${pin_prefix[@]}" wrk -t1 "-c$c" "-d${duration}s" --latency \
    -s "$bench_dir/grab.lua" "http://127.0.0.1:$server_port" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
  wrk_ended=$(now)
  server_after=$(process_ticks <<<"$server_pid" | awk '{ print $2 }')
  thread_snapshot "$server_pid" >"$work/threads-$tag-after"
  if [[ -n $probe_pid ]]; then wait "$probe_pid" || failures+=("round $tag: the probe failed ($(tail -2 "$work/probe.log"))"); probe_pid=""; fi
  if [[ -n ${perf_pid:-} ]]; then wait "$perf_pid" || true; perf_pid=""; fi
  status_counts >"$work/status-$tag-after"
  [[ $(head -c 7 "$out") == Running ]] || die "wrk's script failed: $(cat "$out")"
  read -r rps p50 p99 _ socket_errors requests < <(parse_wrk "$out")
  [[ -n $requests && $requests -gt 0 ]] || die "wrk made no requests: $(cat "$out")"
  read -r ok gone other other_detail < <(status_delta "$work/status-$tag-before" "$work/status-$tag-after")
  ((ok + gone + other > 0)) ||
    die "the server's /metrics counted no reply of the grab route (redpacket_http_requests_total{...grab...}) for wrk's $requests requests"
  hot_left=$((hot_left - ok))
  settle=-1
  [[ -z $worker_pid ]] || settle=$(wait_applied "$wrk_ended" "$applied_base" "$ok")
  settled=$(now)
  process_ticks <"$procs" >"$work/ticks-$tag-after"
  busy_after=$(machine_busy_ticks)
  kids_after=$(children_ticks)
  cpu_snapshot >"$work/all-$tag-after"
  echo "0 bench-clients $((kids_after - kids_before))" >>"$work/all-$tag-after"
  local window wrk_s
  window=$(awk -v a="$started" -v b="$settled" 'BEGIN { printf "%.3f", b - a }')
  wrk_s=$(awk -v a="$started" -v b="$wrk_ended" 'BEGIN { printf "%.3f", b - a }')
  split=$(cpu_split "$work/all-$tag-before" "$work/all-$tag-after" "$window" "$procs")
  threads=$(cpu_split "$work/threads-$tag-before" "$work/threads-$tag-after" "$wrk_s")
  server_cpu_us=$(awk -v t="$((server_after - server_before))" -v hz="$clock_ticks" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  if ((rps > best_rps)); then best_rps=$rps; fi
  [[ $other == 0 ]] || failures+=("round $tag: $other replies neither 200 nor 410 (status x count: $other_detail)")
  [[ $gone == 0 ]] || failures+=("round $tag: $gone replies 410: the hot packet ran out (the round measured refusals)")
  [[ $socket_errors == 0 ]] || failures+=("round $tag: $socket_errors socket errors")
  [[ $settle != timeout ]] || failures+=("round $tag: the worker had not applied the round's $ok grabs within $lag_timeout_s s")
  ((n > 0)) || return 0
  local metrics credit_p50 credit_p99
  metrics=$(worker_metrics)
  credit_p50=$(metric redpacket_worker_credit_latency_p50_seconds <<<"$metrics")
  credit_p99=$(metric redpacket_worker_credit_latency_p99_seconds <<<"$metrics")
  for kv in "rps $rps" "p50_ms $p50" "p99_ms $p99" "requests $requests" "ok $ok" "gone $gone" "other $other" \
    "socket_errors $socket_errors" "window_s $window" "wrk_s $wrk_s" "settle_s ${settle/timeout/-1}" \
    "server_cpu_us $server_cpu_us" "machine_busy_ticks $((busy_after - busy_before))" \
    "clients_ticks $((kids_after - kids_before))" "connections $c" "packet $hot"; do
    fact round "$case" "$n" ${kv% *} "${kv#* }"
  done
  # The worker's own grab-to-credit quantiles, when it exports them (absent: "—" in the tables).
  [[ -z $credit_p50 ]] || fact round "$case" "$n" credit_p50_ms "$(awk -v v="$credit_p50" 'BEGIN { printf "%.0f", v * 1000 }')"
  [[ -z $credit_p99 ]] || fact round "$case" "$n" credit_p99_ms "$(awk -v v="$credit_p99" 'BEGIN { printf "%.0f", v * 1000 }')"
  cpu_facts "$case" "$n" "$procs" "$work/ticks-$tag-before" "$work/ticks-$tag-after" >>"$facts"
  progress "$case round $n: $rps grabs/s, p50 $p50 ms, p99 $p99 ms, $ok x 200, $gone x 410, $other other; all credited $settle s after wrk; API server $server_cpu_us µs/grab; worker grab-to-credit p50/p99 ${credit_p50:-?}/${credit_p99:-?} s"
  progress "  CPU (% of one CPU over ${window} s): $split"
  split_lines+=("$case round $n: $split")
  thread_lines+=("$case round $n: $threads")
}

run_baseline() {  # round
  local out="$work/baseline-$1.txt" base
  "$bench_dir/redis-grab-bench" --rounds 1 --requests "$baseline_requests" --pipelined-requests 20000 \
    --pin "$pin" --node "$hot_master" >"$out" 2>&1 || die "redis-grab-bench failed: $(cat "$out")"
  base=$(sed -n 's/.*round 1: unpipelined \([0-9.]*\) ops\/s.*/\1/p' "$out")
  [[ -n $base ]] || die "no ops/s in $(cat "$out")"
  if grep -q 'took a share' "$out"; then failures+=("baseline round $1: $(grep 'took a share' "$out")"); fi
  fact round baseline "$1" ops "$base"
  progress "baseline round $1: the grab script on :$hot_master, $base ops/s unpipelined"
}

failures=()
split_lines=()
thread_lines=()
started_at_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
