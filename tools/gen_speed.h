/* gen_speed.h - the warning before a run that will be much slower than real
 * time: after the first chunk, the rate so far (video frames per second of
 * wall time) against the video's frame rate; once per run. */
#ifndef SK_GEN_SPEED_H
#define SK_GEN_SPEED_H

#include <stdint.h>

typedef struct {
    int warned;
} gen_speed;

/* latent_done: latent frames made so far; elapsed_s since the loop began;
 * fps: the video's rate; total_latent: frames of the run (<= 0: until
 * stopped); cuda: the run is on the GPU. Returns 1 when it warned. */
int gen_speed_check(gen_speed *g, int64_t latent_done, double elapsed_s, double fps,
                    int64_t total_latent, int cuda);

#endif
