# bench/cluster-processes.sh — sourced by bench/cluster-bench and bench/topology-bench: which
# processes make up a cluster-mode run, and how much CPU each used in a window. Processes are
# found by the pid files of the run directory that scripts/cluster (or scripts/redis-cluster,
# mariadb and kafka under it) wrote, never by program name: other developers run the same
# programs on other ports of this machine. CPU is utime + stime from /proc/<pid>/stat, in clock
# ticks (getconf CLK_TCK), as every bench here reads it.

# A pid file's pid, when that process is alive (else nothing; returns 1).
live_pid() {  # pid-file
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# Prints "pid name kind" for every live process of the scripts/cluster run directory $1:
#   redis-<port>            redis-master | redis-replica (its ROLE, asked now)
#   mariadb-primary/replica mariadb-primary | mariadb-replica
#   kafka                   kafka
#   <name> of <run>/pids/<name>.pid (scripts/cluster's redpacket processes and nginx):
#                           api-* -> api, worker* -> worker, relay* -> relay, nginx -> nginx (its
#                           master, and its workers under the same name), anything else -> other
# Then "pid name kind" lines given on stdin (processes the caller started) are passed through.
cluster_processes() {  # run-dir < extra lines
  local run=$1 dir port pid role kind server file name child
  for dir in "$run"/redis-cluster/*/; do
    port=$(basename "$dir")
    [[ $port =~ ^[0-9]+$ ]] || continue
    pid=$(live_pid "$dir/redis.pid") || continue
    role=$(redis-cli -h 127.0.0.1 -p "$port" ROLE 2>/dev/null | head -n 1 || true)
    case $role in
      master) kind=redis-master ;;
      slave) kind=redis-replica ;;
      *) kind=other ;;
    esac
    echo "$pid redis-$port $kind"
  done
  for server in primary replica; do
    pid=$(live_pid "$run/mariadb/$server/mariadb.pid") && echo "$pid mariadb-$server mariadb-$server"
  done
  pid=$(live_pid "$run/kafka/kafka.pid") && echo "$pid kafka kafka"
  for file in "$run"/pids/*.pid; do
    [[ -e $file ]] || continue
    name=$(basename "$file" .pid)
    pid=$(live_pid "$file") || continue
    case $name in
      api-*) kind=api ;;
      worker*) kind=worker ;;
      relay*) kind=relay ;;
      nginx) kind=nginx ;;
      *) kind=other ;;
    esac
    echo "$pid $name $kind"
    if [[ $name == nginx ]]; then
      for child in $(ps -o pid= --ppid "$pid"); do echo "$child nginx nginx"; done
    fi
  done
  cat
}

# "pid ticks" for every pid of a process list ("pid name kind" lines on stdin); a process that is
# gone reads as nothing.
process_ticks() {
  local pid _
  while read -r pid _; do
    [[ -r /proc/$pid/stat ]] || continue
    awk -v pid="$pid" '{ sub(/^.*\) /, ""); print pid, $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || true
  done
}

# The machine's busy ticks over all CPUs so far (/proc/stat: user nice system irq softirq steal).
machine_busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# Reaped children's CPU of this shell (cutime + cstime): wrk, curl, the probe, once they exited.
children_ticks() { awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"; }

# Facts lines "cpu <case> <round> <name> <kind> <ticks>" (bench/cluster-cpu-report's format): the
# ticks each named process used between two process_ticks snapshots, summed over a name's pids.
cpu_facts() {  # case round processes-file before-file after-file
  awk -v c="$1" -v r="$2" '
    FILENAME == ARGV[1] { name[$1] = $2; kind[$1] = $3; next }
    FILENAME == ARGV[2] { before[$1] = $2; next }
    ($1 in name) && ($1 in before) { used[name[$1]] += $2 - before[$1]; k[name[$1]] = kind[$1] }
    END { for (n in used) printf "cpu\t%s\t%s\t%s\t%s\t%d\n", c, r, n, k[n], used[n] }' "$3" "$4" "$5"
}
