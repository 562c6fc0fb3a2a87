/* out_opts.h - the video output options generate and decode share, with
 * FFmpeg's names and meanings: --codec, --preset, --crf (0 = lossless for
 * x264; unset = the encoder's default), --bitrate / --maxrate / --bufsize,
 * a rational --fps (30000/1001), -y to overwrite (else an existing file is
 * refused before anything loads). */
#ifndef SK_OUT_OPTS_H
#define SK_OUT_OPTS_H

#include <stdint.h>

#include "runtime/sinkstream.h"
#include "tools/cli_opts.h"

typedef struct {
    const char *fps;                  /* --fps text; parsed into fps_num/fps_den */
    int fps_num, fps_den;
    const char *codec, *preset;
    int crf;                          /* -1: not given */
    const char *bitrate_s, *maxrate_s, *bufsize_s;
    int64_t bitrate, maxrate, bufsize;
    int overwrite;                    /* -y */
} sk_out_opts;

#define SK_OUT_OPTS_INIT {.fps = "16", .crf = -1}

/* the option table entries (after an "Output" heading) */
#define SK_OUT_OPTS_ENTRIES(oo)                                                                \
    {"fps", 0, SK_OPT_STRING, &(oo).fps, .metavar = "RATE",                                   \
     .help = "frame rate of the video: 16, 24, 30000/1001 or 29.97 (exact: pts and pacing use " \
             "the fraction)"},                                                                 \
    {"codec", 0, SK_OPT_STRING, &(oo).codec, .metavar = "NAME",                               \
     .def_text = "libx264, or the container's own",                                           \
     .help = "video encoder: libx264, libx265, libsvtav1, libvpx-vp9, gif, ... (ffmpeg "       \
             "-encoders)"},                                                                    \
    {"preset", 0, SK_OPT_STRING, &(oo).preset, .metavar = "NAME",                             \
     .def_text = "the encoder's (x264: medium)",                                              \
     .help = "encoder preset: ultrafast .. veryslow for x264/x265, 0..13 for SVT-AV1"},        \
    {"crf", 0, SK_OPT_INT, &(oo).crf, .metavar = "N", .def_text = "the encoder's (x264: 23)", \
     .help = "constant quality as FFmpeg means it: lower is better, 0 is lossless (x264)",      \
     .lo = -1, .hi = 63},                                                                      \
    {"bitrate", 0, SK_OPT_STRING, &(oo).bitrate_s, .metavar = "RATE", .def_text = "none",     \
     .help = "target bit rate (-b:v), e.g. 4M or 2500k"},                                      \
    {"maxrate", 0, SK_OPT_STRING, &(oo).maxrate_s, .metavar = "RATE", .def_text = "none",     \
     .help = "bit rate cap (streaming services require one); needs --bufsize"},                \
    {"bufsize", 0, SK_OPT_STRING, &(oo).bufsize_s, .metavar = "BITS", .def_text = "none",     \
     .help = "rate-control buffer for --maxrate, e.g. twice the rate"},                       \
    {"overwrite", 'y', SK_OPT_FLAG, &(oo).overwrite,                                           \
     .help = "overwrite output files that exist (else the run refuses, as FFmpeg does)"}

/* Parses --fps and the rates; *fps_int gets the rate rounded (for the code
 * that counts whole frames per second). -1 to go on, else the exit code
 * (2 after a usage message). */
int sk_out_opts_finish(const sk_cli *cli, sk_out_opts *oo, int *fps_int);

/* -1 when path may be written (it does not exist, is a URL or a directory
 * of frames, or -y was given), else 2 after a usage message naming flag. */
int sk_out_opts_check_overwrite(const sk_cli *cli, const sk_out_opts *oo, const char *flag,
                                const char *path);

/* codec, preset, crf (FFmpeg's meaning -> the API's: unset 0, 0 SK_CRF_LOSSLESS) and
 * rates into the engine API's output options; the exact rate goes in the session's
 * params (fps_num / fps_den) */
void sk_out_opts_to_api(const sk_out_opts *oo, sk_output_opts *p);

#endif
