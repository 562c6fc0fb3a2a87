/* gen_units.h - video frames vs latent frames on the generate command line.
 *
 * The Wan VAE makes 4F-3 video frames of F latent frames (video frame 0 from
 * latent 0, then 4 per latent). --frames and a schedule's "frame" count
 * latent frames (the reference-run interface of DESIGN.md depends on it);
 * --video-frames N and --seconds S count video frames / video seconds and
 * are turned into the latent count that covers them. Only one of the three
 * may be given on the command line. */
#ifndef SK_GEN_UNITS_H
#define SK_GEN_UNITS_H

#include <stdint.h>

/* video frames of F latent frames (0 for F <= 0) */
static inline int64_t gen_video_frames_of(int64_t latent)
{
    return latent > 0 ? 4 * latent - 3 : 0;
}
/* the first video frame latent frame L makes */
static inline int64_t gen_first_video_frame(int64_t latent) { return latent > 0 ? 4 * latent - 3 : 0; }
/* latent frames whose video covers n video frames (4F - 3 >= n) */
static inline int64_t gen_latent_for_video(int64_t n) { return n <= 1 ? 1 : (n + 6) / 4; }

/* 1 if argv (after the command name) sets the option --long_name (or -short). */
int gen_argv_has(int argc, char **argv, const char *long_name, char short_name);

#endif
