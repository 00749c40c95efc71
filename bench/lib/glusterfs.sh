# GlusterFS 10 as one system of bench/run: one glusterd serving a replica-2 volume of two
# bricks (on one server, hence `force`), default options, mounted with mount.glusterfs.
# Sourced by bench/run.
#
# The caller sets: BENCH_NETNS (a network namespace it made), BENCH_ADDR (an address inside
# it), BENCH_TMP (scratch) and BENCH_BRICKS (the XFS directory every system's bricks share).
# GlusterFS refuses loopback brick addresses, so it runs in the namespace on a veth address;
# `nsenter --net` rather than `ip netns exec`, which would give it its own mount namespace and
# hide the mount from the host.
#
# glusterd's state goes to a private working directory. What GlusterFS will only put in fixed
# places (the CLI's socket /var/run/glusterd.socket, the bricks' pid files and sockets under
# /var/run/gluster, brick and heal-daemon logs under /var/log/glusterfs) is removed by
# gluster_down, file by file, for this volume only; GlusterFS's shared logs (cli.log,
# glustershd.log) are appended to as by any use of GlusterFS. A glusterd already running on
# the machine would own that socket: gluster_up refuses then.

gluster_dir() { echo "$BENCH_TMP/gluster"; }
gluster_in_ns() { nsenter --net="/run/netns/$BENCH_NETNS" "$@"; }
gluster_cli() { gluster_in_ns gluster --mode=script "$@"; }
gluster_brick() { echo "$BENCH_BRICKS/g$1"; }
# The pid file glusterd gives brick N: its address and path, slashes made dashes.
gluster_brick_pidfile() {
  local path
  path=$(gluster_brick "$2")
  path=${path#/}
  echo "/var/run/gluster/vols/$1/$BENCH_ADDR-${path//\//-}.pid"
}

# The PID in `file` if it is alive and still runs `program`.
gluster_live_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && grep -qa -- "$2" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

gluster_stop_pid() {
  local pid=$1
  [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

gluster_mount() {
  gluster_in_ns mount -t glusterfs -o "log-file=$(gluster_dir)/client.log" \
    "$BENCH_ADDR:/$1" "$2"
}

gluster_unmount() {
  local mnt=$1 pid
  pid=$(gluster_client_pid "$mnt") || pid=
  if grep -qs " $mnt fuse" /proc/mounts; then fusermount3 -u -z "$mnt"; fi
  [[ -n $pid ]] || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

gluster_up() {
  local vol=$1 mnt=$2 d
  d=$(gluster_dir)
  if [[ -e /var/run/glusterd.socket ]] && pgrep -x glusterd >/dev/null; then
    echo "a glusterd runs on this machine already: it owns /var/run/glusterd.socket" >&2
    return 1
  fi
  mkdir -p "$d/state" "$mnt"
  # The bricks' and heal daemon's sockets have random names: those not here yet are ours.
  ls /var/run/gluster/*.socket >"$d/sockets.before" 2>/dev/null || true
  cat >"$d/glusterd.vol" <<EOF
volume management
    type mgmt/glusterd
    option working-directory $d/state
    option transport-type socket
    option transport.socket.bind-address $BENCH_ADDR
    option transport.socket.listen-port 24007
    option ping-timeout 0
    option event-threads 1
end-volume
EOF
  gluster_in_ns glusterd -f "$d/glusterd.vol" -p "$d/glusterd.pid" -l "$d/glusterd.log" ||
    return 1
  local ok=0
  for _ in $(seq 100); do
    gluster_cli peer status >/dev/null 2>&1 && { ok=1; break; }
    sleep 0.1
  done
  ((ok)) || { echo "glusterd does not answer (see $d/glusterd.log)" >&2; return 1; }
  gluster_cli volume create "$vol" replica 2 "$BENCH_ADDR:$(gluster_brick 0)" \
    "$BENCH_ADDR:$(gluster_brick 1)" force >/dev/null || return 1
  gluster_cli volume start "$vol" >/dev/null || return 1
  gluster_mount "$vol" "$mnt"
}

gluster_remount() {
  gluster_unmount "$2"
  gluster_mount "$1" "$2"
}

gluster_client_pid() {
  local p
  for p in /proc/[0-9]*; do
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "--process-name fuse .* $1 *$"; then
      echo "${p#/proc/}"
      return 0
    fi
  done
  return 1
}

gluster_kill_brick() {
  local pid
  pid=$(gluster_live_pid "$(gluster_brick_pidfile "$1" "$2")" glusterfsd) || return 1
  local losses
  losses=$(gluster_brick_losses "$1" "$2")
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; do
    sleep 0.01
  done
  for _ in $(seq 300); do
    (($(gluster_brick_losses "$1" "$2") > losses)) && return 0
    sleep 0.1
  done
  echo "glusterd did not notice brick $2's death in 30 s" >&2
  return 1
}

# How often glusterd logged that brick N's daemon went away. glusterd learns of a brick's
# death a moment after it, and until then ignores `volume start force` for that brick.
gluster_brick_losses() {
  grep -cF "Brick $BENCH_ADDR:$(gluster_brick "$2") has disconnected from glusterd" \
    "$(gluster_dir)/glusterd.log" || true
}

# `volume start VOL force`, until both bricks' daemons run. Shortly after a brick died,
# glusterd answers success without restarting it: the command is repeated.
gluster_start_force() {
  local b up
  for _ in $(seq 30); do
    gluster_cli volume start "$1" force >/dev/null || return 1
    for _ in $(seq 10); do
      up=0
      for b in 0 1; do
        gluster_live_pid "$(gluster_brick_pidfile "$1" "$b")" glusterfsd >/dev/null && ((++up))
      done
      ((up == 2)) && return 0
      sleep 0.1
    done
  done
  echo "glusterd did not restart the bricks of $1" >&2
  return 1
}

# Entries pending heal, summed over both bricks. heal-count leaves out a brick it cannot
# reach (and would then say 0 too early): with fewer than two counts, it fails.
gluster_pending() {
  local out
  out=$(gluster_cli volume heal "$1" statistics heal-count) || return 1
  awk -F': ' '/^Number of entries: / { n += $2; seen++ } END { if (seen != 2) exit 1; print n }' \
    <<<"$out"
}

# What to look at when the volume misbehaves.
gluster_diagnose() {
  gluster_cli volume status "$1"
  grep -E '\] [EW] \[' "$(gluster_dir)/glusterd.log" | tail -n 20
  local b
  for b in 0 1; do
    tail -n 5 "/var/log/glusterfs/bricks/$(gluster_brick "$b" | sed 's|^/||; s|/|-|g').log"
  done
}

gluster_down() {
  local vol=$1 mnt=$2 d pid f
  d=$(gluster_dir)
  [[ -d $d ]] || return 0
  gluster_unmount "$mnt"
  if pid=$(gluster_live_pid "$d/glusterd.pid" glusterd); then
    gluster_cli volume stop "$vol" force >/dev/null 2>&1
    gluster_stop_pid "$pid"
  fi
  # The bricks and the heal daemon outlive glusterd; their pid files name them.
  for f in /var/run/gluster/vols/"$vol"/*.pid /var/run/gluster/shd/"$vol"/*.pid; do
    [[ -e $f ]] || continue
    pid=$(gluster_live_pid "$f" glusterfs) && gluster_stop_pid "$pid"
    rm -f "$f"
  done
  rm -rf /var/run/gluster/vols/"$vol" /var/run/gluster/shd/"$vol"
  rm -f /var/log/glusterfs/bricks/"$(gluster_brick 0 | sed 's|^/||; s|/|-|g')".log \
    /var/log/glusterfs/bricks/"$(gluster_brick 1 | sed 's|^/||; s|/|-|g')".log
  for f in /var/run/gluster/*.socket; do
    [[ -e $f ]] && ! grep -qxF -- "$f" "$d/sockets.before" 2>/dev/null && rm -f "$f"
  done
  [[ -S /var/run/glusterd.socket ]] && rm -f /var/run/glusterd.socket
  rm -rf "$d" "$(gluster_brick 0)" "$(gluster_brick 1)"
}
