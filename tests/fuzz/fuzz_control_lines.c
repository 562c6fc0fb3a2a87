/* fuzz_control_lines.c - libFuzzer target for the stdin control commands
 * (sk_control_push_line: prompt TEXT | embeds NAME | pause | resume | step N
 * | stop | status | help) and the command queue behind them: every line of
 * the input is pushed, the queue popped now and then, as the chunk loop does.
 * Invariants: a command taken has an id, ids increase, a text/embeds
 * command carries its argument, a queue never holds more than its capacity,
 * nothing but stop is taken after stop.
 * Run: ./fuzz_control_lines -max_total_time=30 -close_fd_mask=1 corpus tests/fuzz/corpus_control_lines */
#include "fuzz_common.h"

#include "runtime/live/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    (void)fz_dir(); /* quiet logs */
    const char *names[] = {"context", "context.1", "a b"};
    sk_control_params p = {.max_queue = 4, .accept_text = size && (data[0] & 1),
                           .embeds = names, .n_embeds = 3, .max_arg_bytes = 256};
    sk_control *c = NULL;
    if (sk_control_create(&p, &c) != SK_OK) __builtin_trap();
    char *s = fz_str(data, size);
    uint64_t last = 0;
    int stopped = 0;
    for (char *line = s, *nl; line; line = nl) {
        nl = memchr(line, '\n', (size_t)(s + size - line));
        if (nl) *nl++ = 0;
        uint64_t id = 0;
        sk_status st = sk_control_push_line(c, line, "fuzz", &id);
        if (st == SK_OK && id) {
            if (id <= last) __builtin_trap();
            last = id;
        }
        if (st == SK_OK && id && stopped && !sk_control_stop_requested(c)) __builtin_trap();
        stopped |= sk_control_stop_requested(c);
        if (st != SK_OK && !sk_error_message()[0]) __builtin_trap();
        if (sk_control_pending(c) > 4) __builtin_trap();
        if (line[0] == 'x') { /* the chunk loop came by */
            sk_ctl_cmd cmd;
            while (sk_control_pop(c, &cmd)) {
                if (!cmd.id) __builtin_trap();
                if ((cmd.kind == SK_CTL_PROMPT || cmd.kind == SK_CTL_EMBEDS) &&
                    (!cmd.arg || !cmd.arg[0]))
                    __builtin_trap();
                if (cmd.kind == SK_CTL_STEP && (cmd.n < 1 || cmd.n > 1000000)) __builtin_trap();
                sk_ctl_cmd_free(&cmd);
            }
        }
    }
    char *j = sk_control_status_json(c);
    free(j);
    free(s);
    sk_control_free(&c);
    return 0;
}
