/* gen_progress_json.h - generate --progress json: one JSON object a line on
 * stderr after every chunk (and a last one with "done": true), for programs
 * that drive sinkstream:
 *   {"chunk":3,"latent_frames":12,"video_frames":45,"total_video_frames":81,
 *    "elapsed_s":2.41,"video_fps":18.7,"realtime":1.17,"lag_ms":0.0,
 *    "late_frames":0,"dropped_frames":0,"rss_bytes":123456789}
 * video_fps is the average since the chunk loop began; realtime = video_fps /
 * the video's frame rate (< 1: slower than real time); lag / late / dropped
 * are the first output's (sk_session_status; 0 without a paced output);
 * rss_bytes the process's
 * resident memory. */
#ifndef SK_GEN_PROGRESS_JSON_H
#define SK_GEN_PROGRESS_JSON_H

#include <stdint.h>

#include "runtime/sinkstream.h"

/* the process's resident memory in bytes (0 when /proc is not there) */
long long gen_rss_bytes(void);

/* elapsed_s, lag and the frame counts of the output from the session's status */
void gen_progress_json(int64_t chunk, int64_t latent_done, int64_t total_latent, double elapsed_s,
                       double fps, const sk_session_status *ss, int done);

#endif
