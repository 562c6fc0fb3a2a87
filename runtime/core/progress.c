/* progress.c - see progress.h. Tested by tests/test_progress.c. */
#include "runtime/core/progress.h"

#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/core/log.h"

double sk_progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sk_progress_start(sk_progress *p, const char *label, int64_t total)
{
    memset(p, 0, sizeof *p);
    p->label = label ? label : "frames";
    p->total = total > 0 ? total : 0;
    p->fp = stderr;
    p->tty = isatty(2);
    p->log_every_s = 5.0;
    p->quiet = sk_log_get_level() < SK_LOG_INFO;
    p->t_start = sk_progress_now();
    p->t_last = p->t_start;
    p->logged_done = -1;
}

static void fmt_duration(double s, char *buf, size_t cap)
{
    long long t = (long long)llround(s);
    if (t >= 3600)
        snprintf(buf, cap, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%lld:%02lld", t / 60, t % 60);
}

const char *sk_progress_format(const sk_progress *p, int64_t done, double now, char *buf,
                               size_t cap)
{
    const double dt = now - p->t_start;
    const double fps = (dt > 1e-6 && done > 0) ? (double)done / dt : 0.0;
    char count[64], rate[32], eta[48] = "";
    if (p->total > 0)
        snprintf(count, sizeof count, "%lld/%lld", (long long)done, (long long)p->total);
    else
        snprintf(count, sizeof count, "%lld", (long long)done);
    if (fps > 0.0) snprintf(rate, sizeof rate, "%.1f fps", fps);
    else snprintf(rate, sizeof rate, "-- fps");
    if (p->total > 0) {
        if (fps > 0.0) {
            double rem = (double)(p->total - done) / fps;
            char d[32];
            fmt_duration(rem > 0 ? rem : 0, d, sizeof d);
            snprintf(eta, sizeof eta, "  ETA %s", d);
        } else {
            snprintf(eta, sizeof eta, "  ETA --:--");
        }
    }
    snprintf(buf, cap, "%s %s  %s%s", p->label, count, rate, eta);
    return buf;
}

static void emit(sk_progress *p, double now)
{
    char line[160];
    sk_progress_format(p, p->done, now, line, sizeof line);
    if (p->tty) {
        fprintf(p->fp, "\r%s\x1b[K", line);
        p->printed = 1;
    } else {
        fprintf(p->fp, "sinkstream: %s\n", line);
        p->logged_done = p->done;
    }
    fflush(p->fp);
    p->t_last = now;
}

void sk_progress_update(sk_progress *p, int64_t done)
{
    p->done = done;
    if (p->quiet) return;
    const double now = sk_progress_now();
    const double every = p->tty ? 0.1 : p->log_every_s;
    if (every <= 0.0 || now - p->t_last >= every) emit(p, now);
}

void sk_progress_finish(sk_progress *p)
{
    if (p->quiet) return;
    /* A log that already shows the final count does not get it twice. */
    if (p->tty || p->logged_done != p->done) emit(p, sk_progress_now());
    if (p->tty) fputc('\n', p->fp);
    fflush(p->fp);
    p->printed = 0;
}
