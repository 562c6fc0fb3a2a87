/* version.h - `sinkstream --version`: the version and what this build has. */
#ifndef SK_TOOLS_VERSION_H
#define SK_TOOLS_VERSION_H

#include <stdio.h>

/* "sinkstream 0.1.0" then one "feature: yes/no (detail)" line each */
void sk_print_version(FILE *out);

/* Takes -q / -qq / -v / -vv / --quiet / --verbose out of argv (any place,
 * any command) and sets the log level: -qq errors only, -q warnings, default
 * info, -v debug, -vv debug with FFmpeg's own verbose lines. SINKSTREAM_LOG
 * still sets the default. Returns the new argc. */
int sk_take_verbosity(int argc, char **argv);

#endif
