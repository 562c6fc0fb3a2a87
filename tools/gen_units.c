/* gen_units.c - see gen_units.h. */
#include "tools/gen_units.h"

#include <string.h>

int gen_argv_has(int argc, char **argv, const char *long_name, char short_name)
{
    const size_t n = strlen(long_name);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) break;
        if (a[0] == '-' && a[1] == '-' && !strncmp(a + 2, long_name, n) &&
            (a[2 + n] == 0 || a[2 + n] == '='))
            return 1;
        if (short_name && a[0] == '-' && a[1] == short_name && a[1] != '-') return 1;
    }
    return 0;
}
