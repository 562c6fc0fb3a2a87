/* live_test_util.h - helpers of the live tests (tests/test_live_*.c),
 * header-only: run the sinkstream binary as a child (stdin pipe, stderr to a
 * file), wait with a deadline, a small HTTP/1.0 client for the control API,
 * ffprobe, free ports, /proc RSS. */
#ifndef SK_LIVE_TEST_UTIL_H
#define SK_LIVE_TEST_UTIL_H

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LIVE_FIX SK_SOURCE_DIR "/tests/fixtures/"

static inline const char *lu_bin(void)
{
    const char *b = getenv("SK_SINKSTREAM");
    cr_assert(b && *b, "SK_SINKSTREAM is not set (ctest sets it to the built binary)");
    return b;
}

static inline double lu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void lu_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Children started by lu_spawn and not yet reaped: lu_kill_all (call it in
 * the suite's .fini) kills them, so a failed assertion leaves no endless
 * generator or server behind. */
static pid_t lu_kids[32];

static inline void lu_forget(pid_t pid)
{
    for (int i = 0; i < 32; i++)
        if (lu_kids[i] == pid) lu_kids[i] = 0;
}

static inline void lu_kill_all(void)
{
    for (int i = 0; i < 32; i++)
        if (lu_kids[i] > 0) {
            kill(-lu_kids[i], SIGKILL);
            waitpid(lu_kids[i], NULL, 0);
            lu_kids[i] = 0;
        }
}

/* Starts `sh -c "exec cmd"` (so the pid is the command's own: signals reach
 * it; cmd must start with the program, `env VAR=x prog` for variables):
 * stdout to /dev/null, stderr to err_path; *in_fd (when not NULL) gets the
 * write end of a pipe on its stdin, else stdin is /dev/null. The child gets
 * its own process group. */
static inline pid_t lu_spawn(const char *cmd, const char *err_path, int *in_fd)
{
    int p[2] = {-1, -1};
    if (in_fd) cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        int in = in_fd ? p[0] : open("/dev/null", O_RDONLY);
        int out = open("/dev/null", O_WRONLY);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        if (in_fd) close(p[1]);
        size_t n = strlen(cmd) + 8;
        char *full = malloc(n);
        snprintf(full, n, "exec %s", cmd);
        execl("/bin/sh", "sh", "-c", full, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    for (int i = 0; i < 32; i++)
        if (lu_kids[i] == 0) {
            lu_kids[i] = pid;
            break;
        }
    if (in_fd) {
        close(p[0]);
        *in_fd = p[1];
    }
    return pid;
}

/* Waits for pid up to timeout_s; returns its exit code, 128+signal when
 * killed by one, or -1 after killing it at the deadline. */
static inline int lu_wait(pid_t pid, double timeout_s)
{
    double t_end = lu_now() + timeout_s;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (lu_now() > t_end) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            lu_forget(pid);
            return -1;
        }
        lu_sleep(0.02);
    }
    lu_forget(pid);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

/* The whole file as a NUL-terminated string (malloc'd; "" when missing). */
static inline char *lu_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = 0;
    fclose(f);
    return b;
}

/* Waits until file `path` contains `needle`; 1 when it did within timeout_s. */
static inline int lu_wait_for_text(const char *path, const char *needle, double timeout_s)
{
    double t_end = lu_now() + timeout_s;
    while (lu_now() < t_end) {
        char *t = lu_read(path);
        int hit = strstr(t, needle) != NULL;
        free(t);
        if (hit) return 1;
        lu_sleep(0.02);
    }
    return 0;
}

/* A port of the socket type (SOCK_STREAM: TCP, SOCK_DGRAM: UDP, which SRT runs over too)
 * that was free a moment ago on 127.0.0.1. */
static inline int lu_free_port_of(int type)
{
    int fd = socket(AF_INET, type, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A TCP port that was free a moment ago on 127.0.0.1. */
static inline int lu_free_port(void) { return lu_free_port_of(SOCK_STREAM); }

/* One HTTP/1.0 request to 127.0.0.1:port (extra_headers: "" or lines ending
 * in \r\n). Returns the status code (-1: no connection / no answer); the body
 * goes to resp (NUL-terminated, truncated to cap). */
static inline int lu_http(int port, const char *method, const char *path,
                          const char *extra_headers, const char *body, char *resp, size_t cap)
{
    if (resp && cap) resp[0] = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    size_t blen = body ? strlen(body) : 0;
    char head[1024];
    char host[64] = "";
    if (!extra_headers || !strstr(extra_headers, "Host:"))
        snprintf(host, sizeof host, "Host: 127.0.0.1:%d\r\n", port);
    int hl = snprintf(head, sizeof head, "%s %s HTTP/1.0\r\n%s%sContent-Length: %zu\r\n\r\n",
                      method, path, host, extra_headers ? extra_headers : "", blen);
    ssize_t w = write(fd, head, (size_t)hl);
    for (size_t off = 0; w >= 0 && off < blen; off += (size_t)w) w = write(fd, body + off, blen - off);
    size_t n = 0, rcap = 1 << 16;
    char *r = malloc(rcap + 1);
    ssize_t got;
    while (n < rcap && (got = read(fd, r + n, rcap - n)) > 0) n += (size_t)got;
    r[n] = 0;
    close(fd);
    int code = -1;
    if (sscanf(r, "HTTP/%*s %d", &code) != 1) code = -1;
    const char *b = strstr(r, "\r\n\r\n");
    if (resp && cap) snprintf(resp, cap, "%s", b ? b + 4 : "");
    free(r);
    return code;
}

/* ffprobe: video codec, size and decoded frame count of the first video
 * stream (frames -1 when ffprobe fails). */
typedef struct {
    char codec[64];
    int width, height, frames;
} lu_probe;

static inline lu_probe lu_ffprobe(const char *file)
{
    lu_probe p;
    memset(&p, 0, sizeof p);
    p.frames = -1;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ffprobe -v error -select_streams v:0 -count_frames -show_entries "
             "stream=codec_name,width,height,nb_read_frames -of default=nw=1 '%s' 2>/dev/null",
             file);
    FILE *f = popen(cmd, "r");
    if (!f) return p;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!strncmp(line, "codec_name=", 11)) snprintf(p.codec, sizeof p.codec, "%.63s", line + 11);
        else if (!strncmp(line, "width=", 6)) p.width = atoi(line + 6);
        else if (!strncmp(line, "height=", 7)) p.height = atoi(line + 7);
        else if (!strncmp(line, "nb_read_frames=", 15)) p.frames = atoi(line + 15);
    }
    pclose(f);
    return p;
}

/* VmRSS of pid in kB (-1 when gone). */
/* Anonymous resident memory (RssAnon: heap, stacks, arenas) of pid in kB; -1
 * once it exited. File-backed pages are left out on purpose: a build that
 * links the CUDA libraries faults ~50 MB of their code in at exit teardown,
 * which is not memory the run holds. */
static inline long lu_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "RssAnon:", 8)) kb = atol(line + 8);
    fclose(f);
    return kb;
}

static inline off_t lu_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static inline void lu_rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Each live suite works in its own temp dir: lu_dir_make in the suite's
 * .init, lu_dir_remove (kills leftover children too) in its .fini. */
static char g_dir[64];

static inline void lu_dir_make(const char *suite)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_%s_XXXXXX", suite);
    cr_assert(mkdtemp(g_dir), "mkdtemp %s", g_dir);
}

static inline void lu_dir_remove(void)
{
    lu_kill_all();
    lu_rm_rf(g_dir);
}

/* g_dir/name in one of 8 rotating buffers (a call may use several at once). */
static inline const char *lu_path(const char *name)
{
    static char p[8][300];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

#endif
