/* generate_tiny.c - the C example of docs/API.md: a short video from a text
 * prompt with the tiny test models, through runtime/sinkstream.h only.
 *   build/example_generate_tiny tests/fixtures out.mp4   (or out.safetensors, a PNG dir) */
#include <stdio.h>

#include "runtime/sinkstream.h"

static void on_frames(void *user, const uint8_t *rgb, int64_t n, int64_t h, int64_t w, int64_t f0)
{
    *(int64_t *)user += n; /* rgb: [n, h, w, 3], valid during the call */
}

int main(int argc, char **argv)
{
    const char *fx = argc > 1 ? argv[1] : "tests/fixtures", *out = argc > 2 ? argv[2] : "tiny.mp4";
    char dit[512], te[512], tok[512], vae[512];
    snprintf(dit, sizeof dit, "%s/demo/dit_demo_c16.safetensors", fx);
    snprintf(te, sizeof te, "%s/text/umt5_tiny.safetensors", fx);
    snprintf(tok, sizeof tok, "%s/text/spiece_tiny.model", fx);
    snprintf(vae, sizeof vae, "%s/taehv/taehv_tiny_21.safetensors", fx);
    sk_engine_params ep = sk_engine_params_default();
    ep.dit = dit, ep.text_encoder = te, ep.tokenizer = tok, ep.vae = vae; /* device: cpu */
    sk_engine *e = NULL;
    sk_session *s = NULL;
    int64_t frames = 0;
    sk_session_params sp = sk_session_params_default();
    sp.frames = 6, sp.latent_h = 8, sp.latent_w = 8, sp.kv_window = 6, sp.seed = 9;
    sp.on_frames = on_frames, sp.user = &frames;
    if (sk_engine_open(&ep, &e) || sk_session_create(e, &sp, &s) ||
        sk_session_attach_output(s, out, NULL, NULL) ||
        sk_session_queue_prompt_text(s, "A red fox at dawn.", 0, SK_SWITCH_DEFAULT))
        goto fail;
    while (!sk_session_done(s))
        if (sk_session_step(s, NULL)) goto fail;
    if (sk_session_finish(s, NULL)) goto fail;
    printf("%lld frames -> %s\n", (long long)frames, out);
    sk_session_close(&s);
    sk_engine_close(&e);
    return 0;
fail:
    fprintf(stderr, "generate_tiny: %s\n", sk_last_error());
    sk_session_close(&s);
    sk_engine_close(&e);
    return 1;
}
