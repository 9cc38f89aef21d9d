# Sourced by the ladder benchmarks: builds aligntds ($ours), makes $results
# (removed on exit) and defines record LABEL COMMAND...: runs COMMAND once
# under /usr/bin/time; appends "LABEL|tokens/s|peak RSS MB" to $results (LABEL
# is "tool|weights|case") and prints the speed, or says why it failed.
cargo build --release --locked -q -p aligntds
ours=target/release/aligntds
results=$(mktemp)
trap 'rm -f "$results"' EXIT

record() {
  local label=$1 log speed rss
  shift
  log=$(mktemp)
  if /usr/bin/time -f "peak_rss_kb %M" "$@" >"$log" 2>&1; then
    speed=$(grep -oE '= [0-9.]+ tokens/s' "$log" | tail -1 | grep -oE '[0-9.]+')
    rss=$(grep -oE 'peak_rss_kb [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    echo "$label|$speed|$((rss / 1024))" >>"$results"
    printf '%-34s %8s tokens/s\n' "${label//|/ }" "$speed"
  else
    echo "${label//|/ } failed:" >&2
    tail -5 "$log" >&2
  fi
  rm -f "$log"
}
