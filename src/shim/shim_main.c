/* shim_main.c: TEMPORARY placeholder until the shim lands. */
#include <stdio.h>
int main(void)
{
    fputs("berth-shim: not built yet\n", stderr);
    return 1;
}
