#!/usr/bin/env bash
# soak.sh - long-running reliability check of a live run (not in CI; see
# docs/RELIABILITY.md for the figures of the last run).
#
# One `sinkstream generate --seconds 0 --rope relative` (absolute RoPE ends at latent
# frame 1023) on the tiny demo model: TAEHV decode,
# x264, RTMP to a local nginx (loopback) that is killed and started again every
# SOAK_RESTART_S seconds, a --tee file that must keep every frame, a prompt
# switch POSTed over the HTTP control API every SOAK_PROMPT_S seconds, and the
# process's RSS and the files' sizes sampled every SOAK_SAMPLE_S seconds. At
# the end the run is stopped with POST /stop and the script checks:
#   - RSS flat after the warm-up (max - min within SOAK_RSS_SLACK_KB),
#   - the tee file has every video frame the run made (ffprobe -count_frames),
#   - every prompt POSTed was accepted (202) and applied (log lines),
#   - the run exited 0.
# Usage: tests/soak/soak.sh [BUILD_DIR] [OUT_DIR]
#   SOAK_SECONDS (3600) SOAK_RESTART_S (300) SOAK_PROMPT_S (4) SOAK_SAMPLE_S (10)
#   SOAK_WARMUP_S (600: two server restarts; the first reconnect allocates) SOAK_RSS_SLACK_KB (1024)
# Needs nginx with libnginx-mod-rtmp, curl, ffprobe (tools/install_deps.sh).
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
out=${2:-$(mktemp -d /tmp/sk_soak.XXXXXX)}
dur=${SOAK_SECONDS:-3600}
restart_s=${SOAK_RESTART_S:-300}
prompt_s=${SOAK_PROMPT_S:-4}
sample_s=${SOAK_SAMPLE_S:-10}
warmup_s=${SOAK_WARMUP_S:-600}
slack_kb=${SOAK_RSS_SLACK_KB:-1024}
bin=$build/sinkstream
fix=tests/fixtures
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -x "$bin" ] || { echo "soak: no $bin (build first)" >&2; exit 2; }

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
module=/usr/lib/nginx/modules/ngx_rtmp_module.so
[ -r "$module" ] || module=/usr/share/nginx/modules/ngx_rtmp_module.so
[ -x "$nginx_bin" ] && [ -r "$module" ] || { echo "soak: needs nginx + libnginx-mod-rtmp" >&2; exit 2; }

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
now() { date +%s; }
rtmp_port=$(free_port)
cat >"$out/nginx.conf" <<EOF
load_module $module;
daemon off;
master_process off;
pid $out/nginx.pid;
error_log $out/nginx_error.log warn;
events { worker_connections 64; }
rtmp { server { listen 127.0.0.1:$rtmp_port; chunk_size 4096;
  application live { live on; } } }
EOF
ng_pid=
start_nginx() {
  "$nginx_bin" -p "$out" -c "$out/nginx.conf" -e "$out/nginx_error.log" >>"$out/nginx.out" 2>&1 &
  ng_pid=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$rtmp_port) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "soak: nginx did not start (see $out/nginx_error.log)" >&2
  return 1
}
stop_nginx() { [ -n "$ng_pid" ] && kill "$ng_pid" 2>/dev/null && wait "$ng_pid" 2>/dev/null; ng_pid=; }
gen_pid=
cleanup() {
  [ -n "$gen_pid" ] && kill "$gen_pid" 2>/dev/null
  stop_nginx
}
trap cleanup EXIT

start_nginx || exit 1
"$bin" generate --dit $fix/demo/dit_demo_c16.safetensors --text-embeds $fix/dit/embeds.safetensors \
  --vae $fix/taehv/taehv_tiny_21.safetensors --height 64 --width 64 --fps 16 --seconds 0 --rope relative \
  -o "rtmp://127.0.0.1:$rtmp_port/live/soak" --tee "$out/tee.mkv" \
  --reconnect-max-ms 2000 --net-timeout-ms 3000 --control-port 0 \
  2>"$out/gen.log" >/dev/null &
gen_pid=$!
ctl_port=
for _ in $(seq 300); do
  ctl_port=$(sed -n 's/.*control: listening on port \([0-9]*\).*/\1/p' "$out/gen.log" | head -1)
  [ -n "$ctl_port" ] && break
  kill -0 "$gen_pid" 2>/dev/null || { echo "soak: generate exited: $(cat "$out/gen.log")" >&2; exit 1; }
  sleep 0.1
done
[ -n "$ctl_port" ] || { echo "soak: no control port in $out/gen.log" >&2; exit 1; }
echo "soak: pid $gen_pid, RTMP 127.0.0.1:$rtmp_port, control 127.0.0.1:$ctl_port, $dur s, out $out"

echo "t_s,rss_kb,tee_bytes,genlog_bytes,video_frames,restarts,prompts_posted" >"$out/samples.csv"
t0=$(now)
next_restart=$((t0 + restart_s))
next_prompt=$((t0 + prompt_s))
next_sample=$t0
restarts=0 posted=0 accepted=0
names=(context.0 context.1 context)
while :; do
  t=$(now)
  [ $((t - t0)) -ge "$dur" ] && break
  kill -0 "$gen_pid" 2>/dev/null || { echo "soak: generate died at $((t - t0)) s" >&2; break; }
  if [ "$t" -ge "$next_restart" ]; then
    stop_nginx
    sleep 2 # the stream is down for a moment: frames queue or drop, the tee keeps them
    start_nginx || break
    restarts=$((restarts + 1))
    next_restart=$((t + restart_s))
  fi
  if [ "$t" -ge "$next_prompt" ]; then
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST \
      -d "{\"embeds\": \"${names[$((posted % 3))]}\"}" "http://127.0.0.1:$ctl_port/prompt")
    posted=$((posted + 1))
    [ "$code" = 202 ] && accepted=$((accepted + 1))
    next_prompt=$((t + prompt_s))
  fi
  if [ "$t" -ge "$next_sample" ]; then
    rss=$(awk '/^VmRSS/{print $2}' /proc/$gen_pid/status 2>/dev/null)
    vf=$(curl -s --max-time 5 "http://127.0.0.1:$ctl_port/status" |
      python3 -c 'import json,sys;print(json.load(sys.stdin).get("video_frames",-1))' 2>/dev/null)
    echo "$((t - t0)),${rss:-0},$(stat -c %s "$out/tee.mkv" 2>/dev/null || echo 0),$(stat -c %s "$out/gen.log"),${vf:--1},$restarts,$posted" >>"$out/samples.csv"
    next_sample=$((t + sample_s))
  fi
  sleep 0.5
done

# a last prompt would race the stop; let the queued one apply, then stop
sleep $((prompt_s + 2))
curl -s -o /dev/null --max-time 5 -X POST "http://127.0.0.1:$ctl_port/stop"
rc=1
for _ in $(seq 600); do
  if ! kill -0 "$gen_pid" 2>/dev/null; then wait "$gen_pid"; rc=$?; break; fi
  sleep 0.1
done
gen_pid=
stop_nginx

applied=$(grep -c "prompt switch #[0-9]* (live" "$out/gen.log")
replaced=$(grep -c "replaces #" "$out/gen.log")
made=$(sed -n 's/.*generated [0-9]* latent frames (\([0-9]*\) video frames).*/\1/p' "$out/gen.log" | tail -1)
tee_frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
  -of csv=p=0 "$out/tee.mkv" 2>/dev/null)
read -r rss_min rss_max rss_n < <(awk -F, -v w="$warmup_s" 'NR>1 && $1>=w && $2>0 {
  if (n==0||$2<mn) mn=$2; if ($2>mx) mx=$2; n++ } END {print mn+0, mx+0, n+0}' "$out/samples.csv")
reconnects=$(grep -c "reconnected after" "$out/gen.log")
{
  echo "duration_s=$dur exit=$rc"
  echo "nginx_restarts=$restarts reconnects_logged=$reconnects"
  echo "video_frames_made=${made:-?} tee_frames=${tee_frames:-?} tee_bytes=$(stat -c %s "$out/tee.mkv")"
  echo "prompts_posted=$posted accepted_202=$accepted applied=$applied replaced_before_applied=$replaced"
  echo "rss_after_warmup_kb min=$rss_min max=$rss_max spread=$((rss_max - rss_min)) samples=$rss_n"
  echo "rss_first_kb=$(awk -F, 'NR==2{print $2}' "$out/samples.csv") genlog_bytes=$(stat -c %s "$out/gen.log")"
} | tee "$out/summary.txt"

ok=1
[ "$rc" = 0 ] || { echo "FAIL: generate exited $rc"; ok=0; }
[ -n "$made" ] && [ "$made" = "$tee_frames" ] || { echo "FAIL: tee has ${tee_frames:-?} of ${made:-?} frames"; ok=0; }
[ "$accepted" = "$posted" ] && [ "$applied" -ge $((posted - replaced)) ] ||
  { echo "FAIL: prompts posted $posted, accepted $accepted, applied $applied"; ok=0; }
[ $((rss_max - rss_min)) -le "$slack_kb" ] || { echo "FAIL: RSS grew by $((rss_max - rss_min)) kB after warm-up"; ok=0; }
[ "$ok" = 1 ] && echo "soak: PASS" || echo "soak: FAIL (files in $out)"
[ "$ok" = 1 ]
