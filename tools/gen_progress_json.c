/* gen_progress_json.c - see gen_progress_json.h. */
#include "tools/gen_progress_json.h"

#include <stdio.h>
#include <unistd.h>

#include "tools/gen_units.h"

long long gen_rss_bytes(void)
{
    long long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%lld %lld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return resident * (long long)sysconf(_SC_PAGESIZE);
}

void gen_progress_json(int64_t chunk, int64_t latent_done, int64_t total_latent, double elapsed_s,
                       double fps, const sk_session_status *ss, int done)
{
    const int64_t vf = gen_video_frames_of(latent_done);
    const double vfps = elapsed_s > 0 ? (double)vf / elapsed_s : 0.0;
    fprintf(stderr,
            "{\"chunk\":%lld,\"latent_frames\":%lld,\"video_frames\":%lld,"
            "\"total_video_frames\":%lld,\"elapsed_s\":%.3f,\"video_fps\":%.3f,"
            "\"realtime\":%.3f,\"lag_ms\":%.1f,\"late_frames\":%lld,\"dropped_frames\":%lld,"
            "\"rss_bytes\":%lld%s}\n",
            (long long)chunk, (long long)latent_done, (long long)vf,
            (long long)gen_video_frames_of(total_latent), elapsed_s, vfps,
            fps > 0 ? vfps / fps : 0.0, ss->lag_ms, (long long)ss->late_frames,
            (long long)ss->dropped_frames, gen_rss_bytes(), done ? ",\"done\":true" : "");
    fflush(stderr);
}
