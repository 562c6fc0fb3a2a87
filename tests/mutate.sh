#!/usr/bin/env bash
# tests/mutate.sh - does the CPU suite see the bugs it is meant to see? Applies a list
# of single-line mutations (below) one at a time to a scratch copy of the tree (never
# this tree), builds it CPU-only, runs the tests that should catch each one and prints
# a table: caught (a test failed, named) or MISSED. Runs on demand, not in CI (~1 min
# a mutation on 2 cores). docs/TESTING.md has the latest table.
#
#   bash tests/mutate.sh                 # every mutation
#   bash tests/mutate.sh NAME [NAME...]  # only these (names from the list)
#   SK_MUTATE_DIR=dir                    # scratch copy here (default: a temp dir, removed)
#   SK_MUTATE_KEEP=1                     # keep the scratch copy
# Exit status: 0 when every mutation was caught, 1 when one was missed, 2 on a setup
# error (a mutation that no longer applies is a setup error: fix its line below).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCR=${SK_MUTATE_DIR:-$(mktemp -d /tmp/sk-mutate.XXXXXX)}
JOBS=${SK_MUTATE_JOBS:-2}

# name | file | original text (exactly once in the file, within one line) | replacement |
# test binaries (Criterion filter after ':' ) | what the bug is
MUTATIONS=$(cat <<'EOF'
philox_multiplier | runtime/core/noise.h | 0xD2511F53u | 0xD2511F55u | test_ops_noise | a wrong Philox round multiplier
noise_cos_sin | runtime/core/noise.h | (element & 1) ? r * sin(a) : r * cos(a) | (element & 1) ? r * cos(a) : r * sin(a) | test_ops_noise | Box-Muller parity swapped
rolling_renoise_frame0 | runtime/stream/stream_rolling.c | sk_noise_renoise(s->noise, &s->roll_z, b * n, (int)b, k) | sk_noise_renoise(s->noise, &s->roll_z, 0, (int)b, k) | test_kv_policies:kv_policies/*builtin_noise* | rolling re-noise reuses frame 0's noise for every block
stream_renoise_frame0 | runtime/stream/stream.c | sk_noise_renoise(s->noise, &z, f0, s->chunk_index, k) | sk_noise_renoise(s->noise, &z, 0, s->chunk_index, k) | test_kv_policies:kv_policies/*builtin_noise* | chunk re-noise reuses frame 0's noise for every chunk
renoise_stream_step | sampler/noise_source.c | SK_NOISE_STREAM_RENOISE(step) | SK_NOISE_STREAM_RENOISE(0) | test_kv_policies:kv_policies/*builtin_noise* | every step re-noises with the same draw
renoise_sigma | runtime/stream/stream.c | sk_sched_renoise(be, &x, &x0, &z, sc->sigma[k + 1]) | sk_sched_renoise(be, &x, &x0, &z, sc->sigma[k]) | test_dit_stream | re-noise to the current instead of the next noise level
recompute_query_pos | runtime/kv/kv_cache.c | *q_t0 = L->pos[i] >= nq - 1 ? L->pos[i] - (nq - 1) : 0; | *q_t0 = L->pos[i] >= nq ? L->pos[i] - nq : 0; | test_kv_policies:kv_policies/*switch* | recache queries one position off after a prompt switch
rolling_ignores_relative | runtime/kv/kv_cache.c | if (c->p.rope == SK_KV_ROPE_RELATIVE) { | if (c->p.rope == SK_KV_ROPE_RELATIVE && c->p.policy != SK_KV_ROLLING) { | test_kv_policies:kv_policies/rolling* | rolling silently ignores --rope relative
rope_frequency | runtime/cpu/cpu_rope.c | pow(theta, -(double)(2 * j) / (double)(2 * P)) | pow(theta, -(double)(2 * j + 2) / (double)(2 * P)) | test_ops_torch test_ops_rope | RoPE frequencies shifted by one pair
ema_alpha_swapped | runtime/kv/kv_cache.c | SK_TRY(sk_op_axpby(c->be, &y, a, &y, b, &z)); | SK_TRY(sk_op_axpby(c->be, &y, b, &y, a, &z)); | test_kv_policies:kv_policies/ema* | EMA sink keeps 1-alpha instead of alpha
ema_slot | runtime/kv/kv_cache.c | (c->sink_base[nb] + f % SF) * S | (c->sink_base[nb] + (f + 1) % SF) * S | test_kv_policies:kv_policies/ema* | evicted frame fused into the wrong sink frame
deep_sink_offset | runtime/kv/kv_cache.c | L->pos[i] = anchor - npacked + k++; | L->pos[i] = anchor - npacked - 1 + k++; | test_kv_policies:kv_policies/deep_sink* | Deep Sink re-timed one position early (the paper's literal offset)
pc_recent_frames | runtime/kv/kv_cache.c | want = (c->compress && !pre) ? frame0 - c->recent_committed : c->reg_lo; | want = (c->compress && !pre) ? frame0 - c->recent_committed + 1 : c->reg_lo; | test_kv_policies:kv_policies/*compression* | participative compression keeps one recent frame too few
at_floor_latent | runtime/live/prompts.c | return (v + 3) / 4; | return v / 4; | test_live_prompts | "at": latent frame rounded down instead of up
at_truncate_video | runtime/live/prompts.c | int64_t v = (int64_t)floor(at * fps + 0.5); | int64_t v = (int64_t)floor(at * fps); | test_live_prompts | "at": video frame truncated instead of rounded
no_warp_neighbour | sampler/schedule.c | out->sigma[k] = (float)table_sigma(best, shift); | out->sigma[k] = (float)table_sigma(best + 1, shift); | test_sampler | --no-warp takes the next table entry
vae_decoder_bias | vae/taehv_decode.c | sk_op_conv2d(be, &b, &a, &m->d1_w, &m->d1_b, 1, 1) | sk_op_conv2d(be, &b, &a, &m->d1_w, NULL, 1, 1) | test_vae_tiny:vae_tiny/decode_2* | the VAE decoder's first conv drops its bias
tokenizer_eos_length | text/tokenize_wan.c | *len = (int)keep + 1; | *len = (int)keep; | test_text | the token count leaves out EOS
sink_frame_dropped | runtime/kv/kv_cache.c | int64_t s_lo = 0, s_hi = frame0 < S ? frame0 : S; | int64_t s_lo = 0, s_hi = frame0 < S ? frame0 : S - 1; | test_kv_policies:kv_policies/sink_relative* | the last sink frame drops out of the visible layout
unipc_predictor_rk | sampler/unipc.c | const float k = at * bh * 0.5f / rk; | const float k = at * bh * 0.5f * rk; | test_longlive2 | UniPC's second-order predictor scales D1 by rk instead of 1/rk
wan_vae_first_tap | vae/wan_vae_load.c | v + (r * kt + kt - 1) * kk | v + (r * kt) * kk | test_wan_vae | the Wan VAE's causal convs keep the first temporal tap (a zero frame) instead of the last
wan_vae_avg_pad | vae/wan_vae_load.c | const int64_t idx = c * F + (int64_t)(ft - 1) * fs * fs + k; | const int64_t idx = c * F + k; | test_wan_vae | AvgDown3D's shortcut forgets the zero frame padded in front
wan_vae_patchify | vae/wan_vae_load.c | them = ch * 4 + r * 2 + q; | them = ch * 4 + q * 2 + r; | test_wan_vae | patchify's (q, r) channel order of vae2_2.py swapped
resize_no_antialias | vae/image_prep.c | const double support = scale >= 1.0 ? scale : 1.0, | const double support = 1.0, | test_wan_vae:wan_vae/resize* | the I2V resize shrinks without antialiasing
i2v_frame0_timestep | runtime/stream/stream_unipc.c | s->tbuf[0] = 0.0f; | s->tbuf[0] = tb->t[i]; | test_i2v:i2v/reference* | the image frame runs at the step's t instead of 0
i2v_result_clamp | runtime/stream/stream_unipc.c | if (i2v) SK_TRY(sk_tensor_copy(&x0_f0, &s->image_lat)); | if (0) SK_TRY(sk_tensor_copy(&x0_f0, &s->image_lat)); | test_i2v:i2v/reference* | chunk 0's result keeps the model's frame 0 instead of the image
v2v_strength_truncated | runtime/stream/v2v.c | long r = lround(strength * n_steps); | long r = (long)(strength * n_steps); | test_v2v | video-to-video: steps run = trunc(S N) instead of round(S N)
v2v_noise_sigma | runtime/stream/stream.c | SK_TRY(sk_v2v_noise_input(be, &x, &in, &x, sc->sigma[k0])); | SK_TRY(sk_v2v_noise_input(be, &x, &in, &x, sc->sigma[k0 - 1])); | test_v2v | video-to-video: the input noised to the previous step's sigma
v2v_unipc_no_tail | runtime/stream/stream_unipc.c |         tb = &tail; |         (void)tail; | test_v2v | video-to-video with UniPC: the full solver instead of the one from the start step
v2v_latency_shift | runtime/engine/session_input.c | sk_latency_out(&v->lat, first, n, sk_taehv_get_config(s->e->vae)->frames_to_trim, now); | sk_latency_out(&v->lat, first, n, 0, now); | test_v2v_cli:v2v_cli/lavfi* | latency: output frame j paired with input frame j, not j + 3
v2v_input_holds_frames | runtime/input/ffmpeg_input.c |     return emit_until(in, f, rel + 0.5 * d); |     return 0; | test_v2v_cli:v2v_cli/a_stalled* | an input frame waits for the next one before it leaves (a stalled pipe holds the run)
v2v_session_ignores_strength | runtime/engine/session_input.c | return sk_stream_step_from(s->s, &lat, v->start, x0, f0); | return sk_stream_step_from(s->s, &lat, 0, x0, f0); | test_v2v_cli:v2v_cli/less* | a session with an input always starts from pure noise (the input unused)
i2v_v2v_combined | runtime/engine/session_input.c | SK_CHECK(!s->s->image_lat.data, | SK_CHECK(!s->s->in_lat, | test_i2v:i2v/api_image* | a session with an image latent accepts a video input (the image would replace the input's first frame)
EOF
)

only=" $* "
die() { echo "mutate: $*" >&2; exit 2; }
cleanup() { [ "${SK_MUTATE_KEEP:-0}" = 1 ] || [ -n "${SK_MUTATE_DIR:-}" ] || rm -rf "$SCR"; }
trap cleanup EXIT

echo "== scratch copy of $ROOT in $SCR"
mkdir -p "$SCR/src"
tar -C "$ROOT" --exclude=./.git --exclude='./build*' -cf - . | tar -C "$SCR/src" -xf - ||
  die "copying the tree failed"
SRC=$SCR/src
BLD=$SCR/build
echo "== configure (CPU only) and build the test binaries once"
cmake -S "$SRC" -B "$BLD" -DSK_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$SCR/cmake.log" 2>&1 ||
  { tail -20 "$SCR/cmake.log"; die "cmake failed"; }
cmake --build "$BLD" -j "$JOBS" >"$SCR/build.log" 2>&1 || { tail -30 "$SCR/build.log"; die "build failed"; }

# run_tests SPEC...: each "binary[:filter]"; prints the failing tests, returns 1 on any failure
run_tests() {
  local bad=0 spec bin filt out
  for spec in "$@"; do
    bin=${spec%%:*}
    filt=""
    [ "$spec" != "$bin" ] && filt=${spec#*:}
    out=$(cd "$BLD" && SK_SOURCE_DIR="$SRC" SK_SINKSTREAM="$BLD/sinkstream" timeout 900 \
          "./$bin" --jobs "$JOBS" ${filt:+--filter "$filt"} 2>&1)
    local rc=$?
    if [ $rc -ne 0 ]; then
      bad=1
      printf '%s\n' "$out" | grep -E "^\[(FAIL|CRASH)" | sed -E 's/^\[(FAIL|CRASH)\] //; s/: \(.*//' |
        head -3 | sed "s/^/$bin: /"
      printf '%s\n' "$out" | grep -qE "^\[(FAIL|CRASH)" || echo "$bin: exit $rc"
    fi
  done
  return $bad
}

echo "== baseline: the tests of every mutation pass unmutated"
base_fail=0
while IFS='|' read -r name file orig repl tests what; do
  name=$(sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//' <<<"$name")
  [ -z "$name" ] && continue
  [ "$only" != "  " ] && [[ "$only" != *" $name "* ]] && continue
  # shellcheck disable=SC2086
  if ! run_tests $tests >/dev/null; then echo "baseline FAILS for $name: $tests"; base_fail=1; fi
done <<<"$MUTATIONS"
[ $base_fail -eq 0 ] || die "the unmutated tree fails a test; fix that first"

rows=()
caught=0
total=0
while IFS='|' read -r name file orig repl tests what; do
  trim() { sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//' <<<"$1"; }
  name=$(trim "$name"); file=$(trim "$file"); tests=$(trim "$tests"); what=$(trim "$what")
  orig=${orig# }; orig=${orig% }; repl=${repl# }; repl=${repl% }
  [ -z "$name" ] && continue
  [ "$only" != "  " ] && [[ "$only" != *" $name "* ]] && continue
  total=$((total + 1))
  cp "$SRC/$file" "$SCR/pristine"
  # exact, single occurrence, one line
  python3 - "$SRC/$file" "$orig" "$repl" <<'PY' || die "$name: the original text is not exactly once in $file"
import sys
p, a, b = sys.argv[1:]
s = open(p).read()
if s.count(a) != 1 or "\n" in a:
    sys.exit(1)
open(p, "w").write(s.replace(a, b))
PY
  t0=$SECONDS
  echo "== $name ($file): $what"
  if ! cmake --build "$BLD" -j "$JOBS" >"$SCR/build_$name.log" 2>&1; then
    verdict="caught (does not build)"; by="compiler"
    caught=$((caught + 1))
  else
    # shellcheck disable=SC2086
    by=$(run_tests $tests)
    if [ $? -ne 0 ]; then
      verdict=caught
      caught=$((caught + 1))
    else
      verdict=MISSED; by="-"
    fi
  fi
  cp "$SCR/pristine" "$SRC/$file"
  touch "$SRC/$file"
  by=$(printf '%s' "$by" | head -2 | tr '\n' ';' | sed 's/;$//; s/;/; /g')
  rows+=("| $name | \`$file\` | $what | $verdict | $by | $((SECONDS - t0))s |")
  echo "   $verdict: $by"
done <<<"$MUTATIONS"
# leave the scratch build unmutated
cmake --build "$BLD" -j "$JOBS" >/dev/null 2>&1

echo
echo "| mutation | file | the bug | result | caught by | time |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "mutate: $caught of $total mutations caught"
[ "$caught" -eq "$total" ] && exit 0 || exit 1
