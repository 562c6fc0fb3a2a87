/* out_opts.c - the shared video output options (see out_opts.h). */
#include "tools/out_opts.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/core/status.h"
#include "runtime/output/output.h"

int sk_out_opts_finish(const sk_cli *cli, sk_out_opts *oo, int *fps_int)
{
    if (sk_output_parse_fps(oo->fps, &oo->fps_num, &oo->fps_den) != SK_OK)
        return sk_cli_usage_error(cli, "%s", sk_error_message());
    *fps_int = (oo->fps_num + oo->fps_den / 2) / oo->fps_den;
    if (*fps_int < 1) *fps_int = 1;
    const struct { const char *flag, *text; int64_t *out; } rates[] = {
        {"--bitrate", oo->bitrate_s, &oo->bitrate},
        {"--maxrate", oo->maxrate_s, &oo->maxrate},
        {"--bufsize", oo->bufsize_s, &oo->bufsize}};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
        if (rates[i].text && sk_output_parse_bitrate(rates[i].flag, rates[i].text,
                                                     rates[i].out) != SK_OK)
            return sk_cli_usage_error(cli, "%s", sk_error_message());
    if (oo->maxrate && !oo->bufsize)
        return sk_cli_usage_error(cli, "--maxrate needs --bufsize (the rate-control buffer, e.g. "
                                       "twice the rate: --maxrate 4M --bufsize 8M)");
    return -1;
}

int sk_out_opts_check_overwrite(const sk_cli *cli, const sk_out_opts *oo, const char *flag,
                                const char *path)
{
    struct stat sb;
    if (!path || oo->overwrite || strstr(path, "://") || stat(path, &sb) != 0 ||
        S_ISDIR(sb.st_mode))
        return -1;
    return sk_cli_usage_error(cli, "%s '%s' exists; pass -y (--overwrite) to replace it, as "
                                   "with ffmpeg", flag, path);
}

void sk_out_opts_to_api(const sk_out_opts *oo, sk_output_opts *p)
{
    p->codec = oo->codec;
    p->preset = oo->preset;
    p->crf = oo->crf < 0 ? 0 : oo->crf == 0 ? SK_CRF_LOSSLESS : oo->crf;
    p->bitrate = oo->bitrate;
    p->maxrate = oo->maxrate;
    p->bufsize = oo->bufsize;
}
