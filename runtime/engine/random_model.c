/* random_model.c - see random_model.h. A new benchmark shape is one more row
 * of k_models (and its name in `sinkstream bench --config`'s choices). */
#include "runtime/engine/random_model.h"

#include <string.h>

#include "runtime/sinkstream.h"
#include "vae/taehv_random.h"

/* The shapes of a real model scaled down so the CPU runs it in a second; its latent
 * channels (and code paths) stay the real model's. */
static sk_dit_config scaled_down(sk_dit_config c)
{
    c.dim = 128;
    c.ffn_dim = 256;
    c.num_heads = 2;
    c.head_dim = 64;
    c.num_layers = 2;
    c.text_dim = 64;
    c.freq_dim = 32;
    c.text_len = 16;
    return c;
}

/* tiny: the 1.3B model's (in/out 16 like Wan 2.1, so a taew2_1-shaped decoder fits) */
static sk_dit_config tiny(void) { return scaled_down(sk_dit_config_wan_1_3b()); }

/* tiny-ti2v: the Wan2.2-TI2V-5B code paths (LongLive 2.0: 48 latent channels, so a
 * taew2_2-shaped decoder fits) */
static sk_dit_config tiny_ti2v(void) { return scaled_down(sk_dit_config_wan_ti2v_5b()); }

static const struct {
    const char *name;
    sk_dit_config (*config)(void);
} k_models[] = {
    {"wan2.1-1.3b", sk_dit_config_wan_1_3b},
    {"tiny", tiny},
    {"wan2.2-5b", sk_dit_config_wan_ti2v_5b},
    {"tiny-ti2v", tiny_ti2v},
};
#define N_MODELS ((int)(sizeof k_models / sizeof k_models[0]))

const char *sk_random_model_name(int i) { return i >= 0 && i < N_MODELS ? k_models[i].name : NULL; }

sk_status sk_random_model_config(const char *name, sk_dit_config *out)
{
    for (int i = 0; name && i < N_MODELS; i++)
        if (!strcmp(name, k_models[i].name)) {
            *out = k_models[i].config();
            return SK_OK;
        }
    char list[256] = "";
    for (int i = 0; i < N_MODELS; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, k_models[i].name, sizeof list - strlen(list) - 1);
    }
    return SK_ERR(SK_E_INVALID_ARG, "engine: random_model '%s': expected one of %s",
                  name ? name : "(null)", list);
}

sk_status sk_random_model_dit(const char *name, sk_backend *be, sk_dtype wdtype, uint64_t seed,
                              sk_dit_model **out)
{
    sk_dit_config cfg;
    SK_TRY(sk_random_model_config(name, &cfg));
    return sk_dit_random(&cfg, be, wdtype, seed, out);
}

sk_status sk_random_model_vae(sk_backend *be, int channels, uint64_t seed, sk_taehv **out)
{
    static const int nf[4] = {256, 128, 64, 64}; /* taew2_1's decoder widths */
    return sk_taehv_random(be, channels, nf, seed, out);
}
