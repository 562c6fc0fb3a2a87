/* cli_device.h - the --device option every command shares.
 *
 * The option is an SK_OPT_ENUM over SK_CLI_DEVICE_CHOICES whose first two
 * indices keep their old meaning (0 cpu, 1 cuda), so command code keeps
 * testing `device == 1` for CUDA; auto and cpu-ref are resolved to those two
 * right after parsing by sk_cli_device_resolve. */
#ifndef SK_CLI_DEVICE_H
#define SK_CLI_DEVICE_H

#define SK_CLI_DEVICE_CHOICES "cpu|cuda|auto|cpu-ref"
#define SK_CLI_DEVICE_HELP                                                                   \
    "backend: auto = cuda when built with CUDA and a GPU is present, else cpu; cpu = "        \
    "OpenBLAS sgemm + threads (SK_CPU_THREADS); cpu-ref = the single-threaded reference loops"

enum { SK_DEV_CPU = 0, SK_DEV_CUDA = 1, SK_DEV_AUTO = 2, SK_DEV_CPU_REF = 3 };

/* Turns auto into cpu or cuda and cpu-ref into cpu with SK_CPU_REF=1 set (so
 * every backend the command makes by the name "cpu" is the reference), then
 * logs the device picked with why (one info line, prefixed by cmd). */
void sk_cli_device_resolve(const char *cmd, int *device);

/* The engine's device name (runtime/sinkstream.h, sk_engine_params.device) for the
 * option as given (before sk_cli_device_resolve): "cpu", "cuda", "auto", "cpu-ref". */
const char *sk_cli_device_api_name(int device);

#endif
