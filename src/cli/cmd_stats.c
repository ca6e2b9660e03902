/* cmd_stats.c: stub */
#include "cli/cli.h"
int run_stats(client *c, const cmd_def *def, int argc, char **argv)
{
    return 1;
}
