/* test_convert_notorch.c - tools/convert_checkpoint.py without PyTorch (issue 17, item 6).
 *
 * tests/reference/check_convert_notorch.py writes the tiny upstream checkpoints with
 * PyTorch, converts them in a python where `import torch` fails, and checks the model
 * directories byte for byte against the same conversion of the same objects saved as
 * pre-1.6 pickles (read by torch.load), the DiT tensors against PyTorch's own casts and
 * LoRA merges, the bf16 rounding against torch on hostile values, and the message a
 * legacy pickle gets without PyTorch. Needs a python3 with torch, numpy and
 * sentencepiece to write the fixtures (/usr/bin/python3 with Debian's python3-torch;
 * $SK_PYTHON overrides); without one the test fails (CI installs it). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "tests/common/cli_run.h"

Test(convert_notorch, matches_the_torch_path, .timeout = 300)
{
    const char *src = getenv("SK_SOURCE_DIR"), *py = getenv("SK_PYTHON");
    cr_assert(src, "SK_SOURCE_DIR is not set (ctest sets it)");
    if (!py || !*py) py = "/usr/bin/python3";
    char dir[] = "/tmp/sk_conv_notorch_XXXXXX", cmd[2048], *err;
    cr_assert(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch, numpy, sentencepiece'", py);
    cr_assert_eq(tu_sh(cmd, &err), 0,
                 "%s lacks torch, numpy or sentencepiece (needed to write the fixtures: "
                 "apt-get install python3-torch python3-sentencepiece, or set SK_PYTHON): %s", py,
                 err);
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/reference/check_convert_notorch.py' '%s'", py,
             src, dir);
    int rc = tu_sh(cmd, &err);
    cr_expect_eq(rc, 0, "check_convert_notorch.py exits %d:\n%s", rc, err);
    cr_expect(strstr(err, "check_convert_notorch: ok:"), "%s", err);
    cr_log_info("%s", err);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}
