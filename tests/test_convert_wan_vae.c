/* test_convert_wan_vae.c - tools/convert_checkpoint.py --wan-vae: a tiny
 * Wan2.2_VAE.pth (the tiny_a fixture's encoder plus decoder tensors, saved with
 * torch.save as upstream ships it) into a LongLive 2.0 model directory, both
 * with the DiT and added to an existing directory; the C encoder loaded from
 * there reproduces the PyTorch reference latent; wrong files are refused.
 * Needs python3 with PyTorch ($SK_PYTHON, else /usr/bin/python3), as
 * test_convert.c; without it the test fails. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/core/backend.h"
#include "runtime/io/safetensors.h"
#include "tests/common/compare.h"
#include "tests/common/test_util.h"
#include "vae/wan_vae.h"

#define SRC SK_SOURCE_DIR

static const char *py(void)
{
    const char *e = getenv("SK_PYTHON");
    return e && *e ? e : "/usr/bin/python3";
}

/* Runs cmd (sh), returns the exit code; output into log. */
static int sh(const char *cmd, char *log, size_t cap)
{
    char full[8192];
    snprintf(full, sizeof full, "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p);
    size_t n = fread(log, 1, cap - 1, p);
    log[n] = 0;
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

Test(convert_wan_vae, wan_vae_pth_to_model_dir, .timeout = 300)
{
    char dir[] = "/tmp/sk_cwv_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[4096], log[16384];
    /* the upstream file: a bare state dict, encoder + decoder + conv1/conv2, f32 */
    snprintf(cmd, sizeof cmd,
             "%s -c \"import sys; sys.path.insert(0, '%s/tests/reference'); import torch; "
             "import make_dit_fixtures as R; d = R.st_load('%s/tests/fixtures/wan_vae/"
             "tiny_a.safetensors')[0]; d['decoder.head.2.weight'] = torch.zeros(12, 4, 3, 3, 3); "
             "torch.save(d, '%s/Wan2.2_VAE.pth'); "
             "w = dict(d); w['encoder.conv1.weight'] = torch.zeros(4, 3, 3, 3, 3); "
             "torch.save(w, '%s/Wan2.1_VAE.pth')\"",
             py(), SRC, SRC, dir, dir);
    cr_assert_eq(sh(cmd, log, sizeof log), 0, "making the checkpoints: %s", log);
    /* with the DiT, in one go */
    snprintf(cmd, sizeof cmd,
             "%s %s/tools/convert_checkpoint.py --dit %s/tests/fixtures/longlive2/dit_tiny.safetensors "
             "--dit-config %s/tests/fixtures/longlive2/config.json --family longlive2 --dtype f32 "
             "--wan-vae %s/Wan2.2_VAE.pth --out %s/ll2", py(), SRC, SRC, SRC, dir, dir);
    cr_assert_eq(sh(cmd, log, sizeof log), 0, "convert: %s", log);
    cr_expect(strstr(log, "decoder tensors dropped"), "%s", log);
    /* added to an existing directory */
    snprintf(cmd, sizeof cmd,
             "%s %s/tools/convert_checkpoint.py --dit %s/tests/fixtures/longlive2/dit_tiny.safetensors "
             "--dit-config %s/tests/fixtures/longlive2/config.json --family longlive2 --dtype f32 "
             "--out %s/ll2b && %s %s/tools/convert_checkpoint.py --wan-vae %s/Wan2.2_VAE.pth "
             "--out %s/ll2b && grep -q '\"vae_encoder\": \"wan2.2_vae_encoder.safetensors\"' "
             "%s/ll2b/model.json", py(), SRC, SRC, SRC, dir, py(), SRC, dir, dir, dir);
    cr_assert_eq(sh(cmd, log, sizeof log), 0, "convert + add: %s", log);
    /* inspect loads and checks it */
    const char *bin = getenv("SK_SINKSTREAM");
    cr_assert(bin && *bin, "SK_SINKSTREAM is not set (ctest sets it to the built binary)");
    snprintf(cmd, sizeof cmd, "'%s' inspect %s/ll2", bin, dir);
    cr_assert_eq(sh(cmd, log, sizeof log), 0, "inspect: %s", log);
    cr_expect(strstr(log, "wan2.2_vae_encoder.safetensors: Wan2.2 VAE encoder (dim 4") &&
              strstr(log, "VAE encoder latent channels 48 == DiT in_dim 48"), "%s", log);
    /* the encoder from the directory reproduces the reference */
    sk_backend *be;
    TT_OK(sk_backend_cpu_create(&be));
    const char *subs[2] = {"ll2", "ll2b"};
    for (int k = 0; k < 2; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s/wan2.2_vae_encoder.safetensors", dir, subs[k]);
        sk_wanvae_enc *m = NULL;
        TT_OK(sk_wanvae_enc_load(be, path, &m));
        sk_st_file *f;
        TT_OK(sk_st_open(SRC "/tests/fixtures/wan_vae/expected_tiny_a.safetensors", &f));
        float *img, *ref;
        TT_OK(sk_st_read_f32(f, "image", 0, NULL, &img, NULL));
        TT_OK(sk_st_read_f32(f, "latent", 0, NULL, &ref, NULL));
        sk_st_close(&f);
        float got[48 * 2 * 3];
        TT_OK(sk_wanvae_encode_image(m, img, 32, 48, got));
        sk_compare_result r = sk_compare(got, ref, 48 * 2 * 3, 1e-8, 1e-4, 1e-3);
        cr_assert(r.ok, "%s: nmse %g", subs[k], r.nmse);
        free(img);
        free(ref);
        sk_wanvae_enc_free(&m);
    }
    sk_backend_free_(&be);
    /* refusals: Wan2.1's VAE, a 16-channel DiT, a non-LongLive-2.0 directory */
    snprintf(cmd, sizeof cmd, "%s %s/tools/convert_checkpoint.py --wan-vae %s/Wan2.1_VAE.pth "
             "--out %s/ll2b", py(), SRC, dir, dir);
    cr_expect_eq(sh(cmd, log, sizeof log), 1, "%s", log);
    cr_expect(strstr(log, "not 12"), "%s", log);
    snprintf(cmd, sizeof cmd,
             "%s %s/tools/convert_checkpoint.py --dit %s/tests/fixtures/dit/dit_tiny.safetensors "
             "--dit-config %s/tests/fixtures/dit/config.json --family self-forcing "
             "--wan-vae %s/Wan2.2_VAE.pth --out %s/sf", py(), SRC, SRC, SRC, dir, dir);
    cr_expect_eq(sh(cmd, log, sizeof log), 1, "%s", log);
    cr_expect(strstr(log, "48-channel"), "%s", log);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}
