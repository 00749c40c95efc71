# mortar as one system of bench/run: one mortar-mgmtd serving a replica-2 volume of two bricks
# (on one server, like the GlusterFS side), mounted with mount.mortar. Sourced by bench/run.
#
# The caller sets: BENCH_BIN (the build's bin/), BENCH_NETNS (a network namespace it made),
# MORTAR_ADDR (an address inside it), BENCH_TMP (scratch) and BENCH_BRICKS (a directory on
# the XFS file system every system's bricks share). Everything runs inside the namespace, as
# GlusterFS has to, so both systems' traffic takes the same path.

mortar_dir() { echo "$BENCH_TMP/mortar"; }
mortar_in_ns() { nsenter --net="/run/netns/$BENCH_NETNS" "$@"; }
mortar_cli() { "$BENCH_BIN/mortar" --socket="$(mortar_dir)/run/mgmtd.sock" --mode=script "$@"; }
mortar_brick() { echo "$BENCH_BRICKS/m$1"; }

# The PID in `file` if it is alive and still runs `program`.
mortar_live_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && grep -Eqa -- "$2" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

mortar_stop_pid() {
  local pid
  pid=$(mortar_live_pid "$1" "$2") || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

mortar_brick_pidfile() {
  local path
  path=$(mortar_brick "$2")
  echo "$(mortar_dir)/run/bricks/$1${path//\//-}.pid"
}

mortar_mount() {
  local vol=$1 mnt=$2 d
  d=$(mortar_dir)
  mortar_in_ns "$BENCH_BIN/mount.mortar" "$MORTAR_ADDR:/$vol" "$mnt" \
    -o "pid-file=$d/run/fuse.pid,log-file=$d/log/fuse.log"
}

mortar_unmount() {
  local mnt=$1
  if grep -qs " $mnt fuse" /proc/mounts; then fusermount3 -u -z "$mnt"; fi
  # The daemon ends once the kernel lets go of the mount; wait so the next mount is alone.
  local pid
  pid=$(mortar_live_pid "$(mortar_dir)/run/fuse.pid" 'mortar-fuse|mount\.mortar') || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

mortar_up() {
  local vol=$1 mnt=$2 d
  d=$(mortar_dir)
  mkdir -p "$d/run" "$d/log" "$mnt"
  mortar_in_ns "$BENCH_BIN/mortar-mgmtd" --listen "$MORTAR_ADDR" --state-dir "$d/state" \
    --run-dir "$d/run" --log-dir "$d/log" --pid-file "$d/mgmtd.pid" || return 1
  # Both bricks on one server, as on the GlusterFS side: `force` accepts that. A new server
  # founds its one-server cluster a moment after it starts: until then it knows no host.
  local made=0
  for _ in $(seq 100); do
    if mortar_cli volume create "$vol" replica 2 "$MORTAR_ADDR:$(mortar_brick 0)" \
      "$MORTAR_ADDR:$(mortar_brick 1)" force >/dev/null 2>"$d/create.err"; then
      made=1
      break
    fi
    sleep 0.1
  done
  ((made)) || { cat "$d/create.err" >&2; return 1; }
  mortar_cli volume start "$vol" >/dev/null || return 1
  mortar_mount "$vol" "$mnt"
}

mortar_remount() {
  mortar_unmount "$2"
  mortar_mount "$1" "$2"
}

mortar_client_pid() { mortar_live_pid "$(mortar_dir)/run/fuse.pid" 'mortar-fuse|mount\.mortar'; }

mortar_kill_brick() {
  local pid
  pid=$(mortar_live_pid "$(mortar_brick_pidfile "$1" "$2")" mortar-brickd) || return 1
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; do
    sleep 0.01
  done
}

mortar_start_force() { mortar_cli volume start "$1" force >/dev/null; }

# Entries pending heal, summed over the bricks; fails when the count cannot be had.
mortar_pending() {
  local out
  out=$(mortar_cli volume heal "$1" statistics heal-count) || return 1
  awk -F': ' '/^Number of entries: / { n += $2; seen++ } END { if (!seen) exit 1; print n }' \
    <<<"$out"
}

# What to look at when the volume misbehaves.
mortar_diagnose() {
  mortar_cli volume status "$1"
  mortar_cli volume heal "$1" info
  tail -n 20 "$(mortar_dir)/log/mgmtd.log"
}

mortar_down() {
  local vol=$1 mnt=$2 d f
  d=$(mortar_dir)
  [[ -d $d ]] || return 0
  mortar_unmount "$mnt"
  mortar_stop_pid "$d/mgmtd.pid" mortar-mgmtd
  mortar_stop_pid "$d/run/shd.pid" mortar-shd
  for f in "$d/run/bricks/"*.pid; do
    [[ -e $f ]] && mortar_stop_pid "$f" mortar-brickd
  done
  rm -rf "$d" "$(mortar_brick 0)" "$(mortar_brick 1)"
}
