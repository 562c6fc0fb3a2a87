/* version.c - --version and the verbosity flags (see version.h). */
#include "tools/version.h"

#include <string.h>

#include "cuda/sk_cuda.h"
#include "runtime/core/log.h"
#include "runtime/cpu/cpu_fast.h"
#include "runtime/input/input.h"
#include "runtime/output/output.h"

#ifndef SK_VERSION
#define SK_VERSION "dev"
#endif

void sk_print_version(FILE *out)
{
    fprintf(out, "sinkstream %s\n", SK_VERSION);
#ifdef SK_HAVE_CUDA
    const int ngpu = sk_cuda_device_count();
    fprintf(out, "cuda:        yes (%d GPU%s visible now%s)\n", ngpu, ngpu == 1 ? "" : "s",
#ifdef SK_HAVE_NCCL
            "; NCCL for --gpus"
#else
            ""
#endif
    );
#else
    fprintf(out, "cuda:        no (rebuild with nvcc on PATH for --device cuda)\n");
#endif
    fprintf(out, "cpu:         %s\n", sk_cpu_fast_describe());
    fprintf(out, "ffmpeg:      %s\n", sk_output_kind_available(SK_OUTPUT_VIDEO_FILE)
                                          ? "yes (video files, RTMP)"
                                          : "no (PNG frames / raw RGB only)");
    fprintf(out, "input:       %s\n", sk_input_available() == 2
                                          ? "yes (--input: files, pipes, URLs, lavfi, V4L2 cameras)"
                                          : sk_input_available()
                                                ? "yes (--input: files, pipes, URLs; no libavdevice: "
                                                  "no lavfi or cameras)"
                                                : "no (--input needs FFmpeg)");
    fprintf(out, "png:         %s\n", sk_output_kind_available(SK_OUTPUT_PNG_DIR) ? "yes" : "no");
#ifdef SK_HAVE_MHD
    fprintf(out, "http:        yes (--control-port)\n");
#else
    fprintf(out, "http:        no (libmicrohttpd missing: no --control-port)\n");
#endif
#ifdef SK_HAVE_SENTENCEPIECE
    fprintf(out, "tokenizer:   yes (SentencePiece: --prompt)\n");
#else
    fprintf(out, "tokenizer:   no (SentencePiece missing: precomputed --text-embeds only)\n");
#endif
}

int sk_take_verbosity(int argc, char **argv)
{
    int level = (int)sk_log_get_level(), libav_verbose = 0, n = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i > 0 && (!strcmp(a, "-q") || !strcmp(a, "--quiet"))) level = SK_LOG_WARN;
        else if (i > 0 && !strcmp(a, "-qq")) level = SK_LOG_ERROR;
        else if (i > 0 && (!strcmp(a, "-v") || !strcmp(a, "--verbose"))) level = SK_LOG_DEBUG;
        else if (i > 0 && !strcmp(a, "-vv")) level = SK_LOG_DEBUG, libav_verbose = 1;
        else if (i > 0 && !strcmp(a, "--")) { /* the rest are arguments */
            while (i < argc) argv[n++] = argv[i++];
            break;
        } else argv[n++] = argv[i];
    }
    sk_log_set_level((sk_log_level)level);
    sk_log_set_libav_verbose(libav_verbose);
    argv[n] = NULL;
    return n;
}
