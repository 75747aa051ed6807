# bench/cluster-bench-broker.sh: the broker's CPU per grab against its CPU per record under
# Kafka's ProducerPerformance, on events read back from the topic.
# Sourced by bench/cluster-bench (its variables and functions are this file's); not run alone.
# shellcheck shell=bash

# ---- the broker: CPU per grab vs per record under ProducerPerformance -------------------------
kafka_pid=$(live_pid "$services_dir/kafka/kafka.pid") || die "no live Kafka pid in $services_dir/kafka/kafka.pid"
progress "reading $sampled_events events back from $topic (their sizes, and the payloads for ProducerPerformance)"
kafka_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$kafka_bootstrap" --topic "$topic" \
  --from-beginning --max-messages "$sampled_events" --timeout-ms 20000 --formatter-property print.key=true \
  --formatter-property key.separator=$'\t' >"$work/events.tsv" 2>"$work/consumer.log" || true
cut -f2- "$work/events.tsv" | grep '^{' >"$work/payloads.txt" || true
sampled=$(wc -l <"$work/payloads.txt")
((sampled >= 100)) || die "only $sampled events read back from $topic: $(tail -3 "$work/consumer.log")"
read -r key_bytes value_bytes < <(awk -F'\t' '$2 ~ /^\{/ { k += length($1); v += length($2); n++ } END { printf "%.1f %.1f\n", k / n, v / n }' "$work/events.tsv")
fact value broker.sampled "$sampled"
fact value broker.key_bytes_mean "$key_bytes"
fact value broker.value_bytes_mean "$value_bytes"
idle_before=$(process_ticks <<<"$kafka_pid" | awk '{ print $2 }')
sleep 3
idle_percent=$(awk -v t="$(($(process_ticks <<<"$kafka_pid" | awk '{ print $2 }') - idle_before))" -v hz="$clock_ticks" 'BEGIN { printf "%.1f", 100 * t / hz / 3 }')
fact value broker.idle_percent "$idle_percent"
kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$kafka_bootstrap" --create --if-not-exists \
  --topic "$perf_topic" --partitions 6 --replication-factor 1 --config min.insync.replicas=1 >"$work/topic.log" 2>&1 ||
  die "creating $perf_topic failed: $(tail -3 "$work/topic.log")"
perf_topic_created=1
read -r -a props <<<"$producer_props"
progress "ProducerPerformance: $producer_records records of the sampled values (mean $value_bytes B, keys ~$key_bytes B), ${props[*]}; broker idle $idle_percent% of a CPU"
broker_before=$(process_ticks <<<"$kafka_pid" | awk '{ print $2 }')
kids_before=$(children_ticks)
pp_started=$(now)
"${pin_prefix[@]}" java -Xmx512m -Dlog4j2.configurationFile="$services_dir/kafka/tools-log4j2.properties" -cp "$kafka_libs/*" \
  org.apache.kafka.tools.ProducerPerformance --bootstrap-server "$kafka_bootstrap" --topic "$perf_topic" \
  --num-records "$producer_records" --throughput -1 --payload-file "$work/payloads.txt" \
  --key-distribution random --record-key-range 2000000000 --command-property "${props[@]}" \
  >"$work/producer-perf.txt" 2>&1 || die "ProducerPerformance failed: $(tail -5 "$work/producer-perf.txt")"
pp_seconds=$(elapsed "$pp_started")
broker_after=$(process_ticks <<<"$kafka_pid" | awk '{ print $2 }')
pp_client_ticks=$(($(children_ticks) - kids_before))
pp_line=$(grep 'records sent' "$work/producer-perf.txt" | tail -1)
pp_rate=$(sed -n 's/^[0-9]* records sent, \([0-9.]*\) records\/sec.*/\1/p' <<<"$pp_line")
[[ -n $pp_rate ]] || die "no records/sec in ProducerPerformance's output: $(tail -3 "$work/producer-perf.txt")"
fact value broker.pp_records "$producer_records"
fact value broker.pp_records_per_s "$pp_rate"
fact value broker.pp_seconds "$pp_seconds"
fact value broker.pp_ticks "$((broker_after - broker_before))"
fact value broker.pp_client_ticks "$pp_client_ticks"
progress "ProducerPerformance: $pp_line"
progress "broker: $((broker_after - broker_before)) ticks for $producer_records records ($(awk -v t="$((broker_after - broker_before))" -v hz="$clock_ticks" -v n="$producer_records" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }') µs per record)"
