/* gen_speed.c - see gen_speed.h. */
#include "tools/gen_speed.h"

#include <string.h>

#include "runtime/core/log.h"
#include "runtime/engine/device.h"

/* "a wide margin": under half of real time */
#define SK_SLOW_FACTOR 2.0

int gen_speed_check(gen_speed *g, int64_t latent_done, double elapsed_s, double fps,
                    int64_t total_latent, int cuda)
{
    if (g->warned || latent_done <= 0 || elapsed_s <= 0 || fps <= 0) return 0;
    g->warned = 1; /* judged on the first chunk, once */
    const double vdone = (double)(4 * latent_done - 3);
    const double rate = vdone / elapsed_s;
    if (rate * SK_SLOW_FACTOR >= fps) return 0;
    const char *hint = cuda ? "fewer --steps or a smaller --height/--width"
                       : sk_device_cpu_ref_forced()
                           ? "--device cpu (threads + OpenBLAS) instead of the reference loops"
                       : !strcmp(sk_device_auto(), "cuda")
                           ? "--device cuda"
                           : "a GPU (--device cuda), or a smaller --height/--width";
    if (total_latent > 0) {
        const double vtotal = (double)(4 * total_latent - 3);
        SK_LOGW("running at %.2f video fps, %.0fx slower than real time (%.4g fps): the %.0f "
                "video frames (%.1f s of video) will take about %.0f s; for speed: %s", rate,
                fps / rate, fps, vtotal, vtotal / fps, vtotal / rate, hint);
    } else {
        SK_LOGW("running at %.2f video fps, %.0fx slower than real time (%.4g fps): a live "
                "output will fall behind; for speed: %s", rate, fps / rate, fps, hint);
    }
    return 1;
}
