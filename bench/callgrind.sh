# Sourced by the benchmark scripts: `instructions BINARY ARGS...` prints the instructions that
# map_corpus's measured pass took under valgrind's callgrind (the same count on a busy or idle
# machine).
instructions() {
  local out
  out=$(mktemp)
  valgrind --tool=callgrind --collect-atstart=no --toggle-collect='map_corpus::measured_pass' \
    --callgrind-out-file="$out" "$@" >/dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
  rm -f "$out"
}
