/* main.c - the `sinkstream` command line: dispatches to subcommands.
 * Each subcommand lives in tools/cmd_<name>.c and parses its own options
 * through the one option table in tools/cli_opts.h. */
#include <stdio.h>
#include <string.h>

#include "tools/commands.h"
#include "tools/version.h"

static const sk_command k_commands[] = {
    {"inspect", sk_cmd_inspect, "describe a safetensors file or model directory"},
    {"generate", sk_cmd_generate, "generate latent video with a causal Wan DiT"},
    {"decode", sk_cmd_decode, "decode latents to video with the TAEHV tiny VAE (streaming)"},
    {"encode", sk_cmd_encode, "encode RGB frames to latents with the TAEHV encoder"},
    {"encode-text", sk_cmd_encode_text, "encode a prompt with the umT5 text encoder (context file)"},
    {"bench", sk_cmd_bench, "time the chunk loop of a DiT configuration with random weights"},
    {"serve", sk_cmd_serve, "host live sessions: REST API, live video and a web page"},
    {"compare", sk_cmd_compare, "compare tensors of two safetensors files (max relative error)"},
};

static void usage(FILE *o)
{
    fprintf(o, "sinkstream %s - streaming video diffusion runtime\n\n"
               "usage: sinkstream <command> [options] [-q|-v|-vv]\n       sinkstream --help | --version\n\n"
               "commands:\n", SK_VERSION);
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        fprintf(o, "  %-12s %s\n", k_commands[i].name, k_commands[i].summary);
    fprintf(o, "\n'sinkstream <command> --help' lists a command's options and their defaults.\n"
               "Every command takes -q (warnings and errors only), -qq (errors only), -v (debug)\n"
               "and -vv (debug and FFmpeg's own lines); SINKSTREAM_LOG=error|warn|info|debug sets\n"
               "the default. SK_CPU_THREADS=N sets the CPU backend's threads.\n");
}

int main(int argc, char **argv)
{
    argc = sk_take_verbosity(argc, argv);
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        sk_print_version(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (!strcmp(argv[1], k_commands[i].name)) return k_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "sinkstream: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
