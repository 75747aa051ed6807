# bench/cluster-bench-worker.sh: worker credits/s on a backlog piled up in Kafka while it was
# stopped, against plain batched INSERTs of the same rows.
# Sourced by bench/cluster-bench (its variables and functions are this file's); not run alone.
# shellcheck shell=bash

# ---- worker credits/s vs batched INSERTs ------------------------------------------------------
topic_events() {  # the sum of the topic's end offsets (every record ever written to it)
  kafka_tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$kafka_bootstrap" --topic "$topic" 2>/dev/null |
    awk -F: '{ s += $NF } END { print s + 0 }'
}
progress "stopping the worker (SIGTERM) so that one round piles up in Kafka"
code=0
stop_process "$worker_pid" || code=$?
worker_pid=""
[[ $code == 0 ]] || failures+=("first worker exited $code on SIGTERM")
events_before=$(topic_events)
next_users
run_hot_round backlog 0 "${connections[0]}" "$users"
backlog=$ok
deadline=$((SECONDS + lag_timeout_s))
while in_topic=$(($(topic_events) - events_before)) && ((in_topic < backlog)); do
  ((SECONDS < deadline)) || die "Kafka holds $in_topic of the backlog round's $backlog grabs after $lag_timeout_s s"
  sleep 1
done
progress "backlog round: $rps grabs/s, $backlog grabs, $in_topic records in Kafka; starting a worker"
worker_started=$(now)
start_worker worker-2
first_applied=""
deadline=$((SECONDS + lag_timeout_s + 60))
drain=timeout
while ((SECONDS < deadline)); do
  metrics=$(worker_metrics 2>/dev/null || true)
  applied=$(metric redpacket_worker_applied_events_total <<<"$metrics")
  lag=$(metric redpacket_worker_lag_events <<<"$metrics")
  if [[ -n $applied ]] && [[ -z $first_applied ]] && ((applied > 0)); then first_applied=$(now); fi
  if [[ -n $applied && -n $lag ]] && ((lag == 0 && applied >= backlog)); then
    drain=$(elapsed "$worker_started")
    break
  fi
  sleep 0.1
done
[[ $drain != timeout ]] || die "the new worker did not catch up within $((lag_timeout_s + 60)) s"
drain_from_first=$(elapsed "$first_applied")
applied_total=$(applied_events)
batches=$(worker_metrics | metric redpacket_worker_batches_total)
credits_per_s=$(awk -v n="$backlog" -v s="$drain" 'BEGIN { printf "%.0f", n / s }')
credits_per_s_applying=$(awk -v n="$backlog" -v s="$drain_from_first" 'BEGIN { printf "%.0f", n / s }')
progress "worker: $backlog events in $drain s from its start ($credits_per_s/s), $drain_from_first s from its first applied event ($credits_per_s_applying/s); applied_events_total $applied_total in $batches batches"

progress "baseline: $backlog rows into bench_grabs, 1000 per INSERT and transaction"
sql -e 'DROP TABLE IF EXISTS bench_grabs'
bench_table_created=1
# The ledger's own grabs table (its keys, foreign key and check: what a credit's row costs),
# under another name: SHOW CREATE TABLE, renamed, and without its AUTO_INCREMENT start.
sql -N -s -r -e 'SHOW CREATE TABLE grabs' |
  sed '1s/^[^\t]*\t//; s/`grabs`/`bench_grabs`/; s/`grabs_/`bench_grabs_/g; s/ AUTO_INCREMENT=[0-9]*//' |
  sql || die "creating bench_grabs like grabs failed"
# Rows like the hot packet's grabs: one packet, users counting up, seq 1..n.
next_users
awk -v n="$backlog" -v packet="$hot" -v user="$users" -v t="$(date +%s%3N)" 'BEGIN {
  for (i = 1; i <= n; i++) {
    if (i % 1000 == 1) printf "START TRANSACTION;\nINSERT INTO bench_grabs (packet_id, user_id, amount_cents, seq, grabbed_at_ms) VALUES "
    printf "(%d,%d,%d,%d,%d)", packet, user + i, 1 + (i * 7919) % 199, i, t + i
    if (i % 1000 == 0 || i == n) printf ";\nCOMMIT;\n"; else printf ","
  } }' >"$work/bench-grabs.sql"
insert_started=$(now)
sql <"$work/bench-grabs.sql"
insert_s=$(elapsed "$insert_started")
inserted=$(sql -N -e 'SELECT COUNT(*) FROM bench_grabs')
[[ $inserted == "$backlog" ]] || failures+=("bench_grabs holds $inserted rows, not $backlog")
sql -e 'DROP TABLE bench_grabs'
bench_table_created=0
inserts_per_s=$(awk -v n="$backlog" -v s="$insert_s" 'BEGIN { printf "%.0f", n / s }')
progress "baseline: $backlog rows in $insert_s s ($inserts_per_s rows/s)"
for kv in "backlog $backlog" "credits_per_s $credits_per_s" "credits_per_s_applying $credits_per_s_applying" \
  "inserts_per_s $inserts_per_s" "drain_s $drain" "insert_s $insert_s"; do
  fact value "worker.${kv% *}" "${kv#* }"
done
