/* cmd_cp.c: stub */
#include "cli/cli.h"
int run_cp(client *c, const cmd_def *def, int argc, char **argv)
{
    return 1;
}
