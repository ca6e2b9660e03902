/* main.c: entry point of the berth command-line client.
 *
 * Parses the global options (-H/--host, --log-level, -D, -v/--version,
 * --help), picks the daemon address (-H, then DOCKER_HOST, then
 * BERTH_HOST, then unix:///run/berth.sock), finds the command in the table
 * below (top-level commands and the "container", "image" and "system"
 * management groups; "container" repeats every container command, with
 * docker's aliases such as container ls/list/ps) and runs it. Exit codes
 * follow docker: 0, 1 for errors, 125 for bad flags. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

const cmd_def cmd_defs[] = {
    {"version", "[OPTIONS]", "Show the Berth version information", NULL, run_version, 0, 0},
    {"info", "[OPTIONS]", "Display system-wide information", NULL, run_info, 0, 0},
    {"system info", "[OPTIONS]", "Display system-wide information", NULL, run_info, 0, 0},
    {"system df", "[OPTIONS]", "Show berth disk usage", NULL, run_df, 0, 0},
    {"events", "[OPTIONS]", "Get real time events from the server", NULL, run_events, 0, 0},
    {"system events", "[OPTIONS]", "Get real time events from the server", NULL, run_events, 0, 0},
    {"images", "[OPTIONS] [REPOSITORY[:TAG]]", "List images", NULL, run_images, 0, 1},
    {"image ls", "[OPTIONS] [REPOSITORY[:TAG]]", "List images", "ls, list", run_images, 0, 1},
    {"image list", "[OPTIONS] [REPOSITORY[:TAG]]", "List images", "ls, list", run_images, 0, 1},
    {"inspect", "[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on Berth objects",
     NULL, run_inspect, 1, -1},
    {"image inspect", "[OPTIONS] IMAGE [IMAGE...]",
     "Display detailed information on one or more images", NULL, run_image_inspect, 1, -1},
    {"history", "[OPTIONS] IMAGE", "Show the history of an image", NULL, run_history, 1, 1},
    {"image history", "[OPTIONS] IMAGE", "Show the history of an image", NULL, run_history, 1, 1},
    {"tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
     "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", NULL, run_tag, 2, 2},
    {"image tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
     "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", NULL, run_tag, 2, 2},
    {"rmi", "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", NULL, run_rmi, 1, -1},
    {"image rm", "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", "rm, rmi, remove",
     run_rmi, 1, -1},
    {"image remove", "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", "rm, rmi, remove",
     run_rmi, 1, -1},
    {"image prune", "[OPTIONS]", "Remove unused images", NULL, run_image_prune, 0, 0},
    {"import", "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
     "Import the contents from a tarball to create a filesystem image", NULL, run_import, 1, -1},
    {"image import", "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
     "Import the contents from a tarball to create a filesystem image", NULL, run_import, 1, -1},
    {"save", "[OPTIONS] IMAGE [IMAGE...]",
     "Save one or more images to a tar archive (streamed to STDOUT by default)", NULL, run_save, 1,
     -1},
    {"image save", "[OPTIONS] IMAGE [IMAGE...]",
     "Save one or more images to a tar archive (streamed to STDOUT by default)", NULL, run_save, 1,
     -1},
    {"load", "[OPTIONS]", "Load an image from a tar archive or STDIN", NULL, run_load, 0, 0},
    {"image load", "[OPTIONS]", "Load an image from a tar archive or STDIN", NULL, run_load, 0, 0},
#define CTR(name, args, desc, aliases, fn, min, max, stop)                                         \
    {name, args, desc, NULL, fn, min, max, stop},                                                  \
    {                                                                                              \
        "container " name, args, desc, aliases, fn, min, max, stop                                 \
    }
    CTR("run", "[OPTIONS] IMAGE [COMMAND] [ARG...]", "Run a command in a new container", NULL,
        run_run, 1, -1, true),
    CTR("create", "[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container", NULL, run_create,
        1, -1, true),
    CTR("start", "[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers", NULL,
        run_start, 1, -1, false),
    CTR("attach", "[OPTIONS] CONTAINER",
        "Attach local standard input, output, and error streams to a running container", NULL,
        run_attach, 1, 1, false),
    CTR("stop", "[OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers", NULL,
        run_stop, 1, -1, false),
    CTR("kill", "[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers", NULL,
        run_kill, 1, -1, false),
    CTR("restart", "[OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers", NULL,
        run_restart, 1, -1, false),
    CTR("pause", "CONTAINER [CONTAINER...]", "Pause all processes within one or more containers",
        NULL, run_pause, 1, -1, false),
    CTR("unpause", "CONTAINER [CONTAINER...]",
        "Unpause all processes within one or more containers", NULL, run_unpause, 1, -1, false),
    CTR("wait", "CONTAINER [CONTAINER...]",
        "Block until one or more containers stop, then print their exit codes", NULL, run_wait, 1,
        -1, false),
    CTR("rm", "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", "rm, remove",
        run_rm, 1, -1, false),
    {"container remove", "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers",
     "rm, remove", run_rm, 1, -1, false},
    {"ps", "[OPTIONS]", "List containers", NULL, run_ps, 0, 0, false},
    {"container ls", "[OPTIONS]", "List containers", "ls, ps, list", run_ps, 0, 0, false},
    {"container list", "[OPTIONS]", "List containers", "ls, ps, list", run_ps, 0, 0, false},
    {"container ps", "[OPTIONS]", "List containers", "ls, ps, list", run_ps, 0, 0, false},
    CTR("logs", "[OPTIONS] CONTAINER", "Fetch the logs of a container", NULL, run_logs, 1, 1,
        false),
    CTR("exec", "[OPTIONS] CONTAINER COMMAND [ARG...]", "Run a command in a running container",
        NULL, run_exec, 2, -1, true),
    CTR("top", "CONTAINER [ps OPTIONS]", "Display the running processes of a container", NULL,
        run_top, 1, -1, true),
    CTR("stats", "[OPTIONS] [CONTAINER...]",
        "Display a live stream of container(s) resource "
        "usage statistics",
        NULL, run_stats, 0, -1, false),
    {"container inspect", "[OPTIONS] CONTAINER [CONTAINER...]",
     "Display detailed information on one or more containers", NULL, run_container_inspect, 1, -1,
     false},
    CTR("rename", "CONTAINER NEW_NAME", "Rename a container", NULL, run_rename, 2, 2, false),
    CTR("update", "[OPTIONS] CONTAINER [CONTAINER...]",
        "Update configuration of one or more containers", NULL, run_update, 1, -1, false),
    CTR("cp",
        "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- "
        "CONTAINER:DEST_PATH",
        "Copy files/folders between a container and the local filesystem", NULL, run_cp, 2, 2,
        false),
    CTR("diff", "CONTAINER", "Inspect changes to files or directories on a container's filesystem",
        NULL, run_diff, 1, 1, false),
    CTR("export", "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive", NULL,
        run_export, 1, 1, false),
    CTR("commit", "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
        "Create a new image from a container's changes", NULL, run_commit, 1, 2, false),
    CTR("port", "CONTAINER [PRIVATE_PORT[/PROTO]]",
        "List port mappings or a specific mapping for the container", NULL, run_port, 1, 2, false),
    {"container prune", "[OPTIONS]", "Remove all stopped containers", NULL, run_container_prune, 0,
     0, false},
#undef CTR
    {NULL, NULL, NULL, NULL, NULL, 0, 0, false},
};

static const struct group {
    const char *name, *desc;
} groups[] = {{"container", "Manage containers"},
              {"image", "Manage images"},
              {"system", "Manage Berth"},
              {NULL, NULL}};

static const cmd_def *find_cmd(const char *path)
{
    for (const cmd_def *d = cmd_defs; d->path; d++)
        if (!strcmp(d->path, path)) return d;
    return NULL;
}

static const struct group *find_group(const char *name)
{
    for (const struct group *g = groups; g->name; g++)
        if (!strcmp(g->name, name)) return g;
    return NULL;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp((*(const cmd_def *const *)a)->path, (*(const cmd_def *const *)b)->path);
}

/* Subcommands of group g, sorted, one per run function (no aliases). */
static void group_usage(FILE *o, const struct group *g)
{
    fprintf(o, "\nUsage:  %s %s COMMAND\n\n%s\n\nCommands:\n", CLI_NAME, g->name, g->desc);
    size_t gl = strlen(g->name), n = 0;
    const cmd_def *list[64];
    for (const cmd_def *d = cmd_defs; d->path && n < 64; d++) {
        if (strncmp(d->path, g->name, gl) || d->path[gl] != ' ') continue;
        bool dup = false;
        for (size_t i = 0; i < n; i++) dup |= list[i]->run == d->run;
        if (!dup) list[n++] = d;
    }
    qsort(list, n, sizeof *list, cmp_path);
    for (size_t i = 0; i < n; i++)
        fprintf(o, "  %-11s %s\n", list[i]->path + gl + 1, list[i]->desc);
    fprintf(o, "\nRun '%s %s COMMAND --help' for more information on a command.\n", CLI_NAME,
            g->name);
}

static void main_usage(FILE *o)
{
    fprintf(o,
            "\nUsage:  %s [OPTIONS] COMMAND\n\nA self-sufficient runtime for containers\n\n"
            "Options:\n"
            "  -D, --debug              Enable debug mode\n"
            "  -H, --host list          Daemon socket(s) to connect to\n"
            "  -l, --log-level string   Set the logging level\n"
            "                           (\"debug\"|\"info\"|\"warn\"|\"error\"|\"fatal\")\n"
            "                           (default \"info\")\n"
            "  -v, --version            Print version information and quit\n\n"
            "Management Commands:\n",
            CLI_NAME);
    for (const struct group *g = groups; g->name; g++) fprintf(o, "  %-11s %s\n", g->name, g->desc);
    fprintf(o, "\nCommands:\n");
    for (const cmd_def *d = cmd_defs; d->path; d++)
        if (!strchr(d->path, ' ')) fprintf(o, "  %-11s %s\n", d->path, d->desc);
    fprintf(o, "\nRun '%s COMMAND --help' for more information on a command.\n", CLI_NAME);
}

typedef struct globals {
    strv hosts;
    char *log_level;
    bool debug, version, help;
    char *config, *context;
} globals;

/* Index of the first argument that is not a global option (or argc). */
static int global_end(int argc, char **argv, const flag *flags)
{
    int i = 1;
    while (i < argc && argv[i][0] == '-' && argv[i][1]) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) return i;
        bool takes_value = false;
        for (const flag *f = flags; f->name; f++) {
            if (f->type == FLAG_BOOL) continue;
            if ((str_starts(a, "--") && !strcmp(a + 2, f->name)) ||
                (a[1] == f->shorthand && a[2] == 0))
                takes_value = true;
        }
        i += takes_value ? 2 : 1;
    }
    return i < argc ? i : argc;
}

static int set_log_level(const char *lvl)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (!lvl) return 0;
    if (!strcmp(lvl, "fatal") || !strcmp(lvl, "panic")) return log_level = LOG_ERR_, 0;
    if (!strcmp(lvl, "warning")) return log_level = LOG_WARN_, 0;
    for (int i = 0; i < 4; i++)
        if (!strcmp(lvl, names[i])) return log_level = i, 0;
    errorf("Unable to parse logging level: %s", lvl);
    return -1;
}

static const char *pick_host(const globals *g)
{
    if (g->hosts.n) return g->hosts.v[0];
    const char *h = getenv("DOCKER_HOST");
    if (h && *h) return h;
    h = getenv("BERTH_HOST");
    if (h && *h) return h;
    return DEFAULT_HOST;
}

/* Resolves argv[0] (and maybe argv[1]) to a command; *used = words eaten.
 * Returns NULL after printing help or an error (*rc set). */
static const cmd_def *resolve(int argc, char **argv, int *used, int *rc)
{
    const struct group *g = find_group(argv[0]);
    if (!g) {
        const cmd_def *d = find_cmd(argv[0]);
        if (d) {
            *used = 1;
            return d;
        }
        errorf("%s: '%s' is not a %s command.\nSee '%s --help'", CLI_NAME, argv[0], CLI_NAME,
               CLI_NAME);
        *rc = 1;
        return NULL;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        group_usage(argc < 2 ? stderr : stdout, g);
        *rc = 0;
        return NULL;
    }
    char *path = xasprintf("%s %s", argv[0], argv[1]);
    const cmd_def *d = find_cmd(path);
    free(path);
    if (d) {
        *used = 2;
        return d;
    }
    errorf("%s: unknown command: %s %s %s\n\nUsage:  %s %s COMMAND\n\nRun '%s %s --help' for more "
           "information",
           CLI_NAME, CLI_NAME, argv[0], argv[1], CLI_NAME, argv[0], CLI_NAME, argv[0]);
    *rc = 1;
    return NULL;
}

/* Finds and runs the command named by argv[0] (and argv[1]). */
static int run_command(const char *host, int argc, char **argv)
{
    int used = 0, rc = 0;
    const cmd_def *d = resolve(argc, argv, &used, &rc);
    if (!d) return rc;
    client c;
    if (client_init(&c, host) < 0)
        rc = 1;
    else
        rc = d->run(&c, d, argc - used, argv + used);
    client_free(&c);
    return rc;
}

static void globals_free(globals *g)
{
    strv_free(&g->hosts);
    free(g->log_level);
    free(g->config);
    free(g->context);
}

#ifdef BERTH_CP_HELPER
/* cp reads and writes tars with libarchive, loaded with dlopen, which this
 * CLI (linked statically, meson.build) cannot do: berth-cp, the same CLI
 * with cp and linked dynamically, runs the whole command line instead. */
static char **main_argv;

int run_cp(client *c, const cmd_def *def, int argc, char **argv)
{
    (void)c, (void)def, (void)argc, (void)argv;
    char *helper = find_helper("BERTH_CP", "berth-cp");
    fflush(stdout);
    execv(helper, main_argv);
    errorf("cannot run %s: %s", helper, strerror(errno));
    free(helper);
    return 125;
}
#endif

static void trace_exit(void)
{
    trace_mark("cli exit");
}

int main(int argc, char **argv)
{
    trace_mark("cli main");
    atexit(trace_exit);
#ifdef BERTH_CP_HELPER
    main_argv = argv;
#endif
    globals g = {0};
    flag gflags[] = {
        {"debug", 'D', FLAG_BOOL, &g.debug, "Enable debug mode", NULL, NULL},
        {"host", 'H', FLAG_LIST, &g.hosts, "Daemon socket(s) to connect to", NULL, NULL},
        {"log-level", 'l', FLAG_STRING, &g.log_level, "Set the logging level", NULL, NULL},
        {"version", 'v', FLAG_BOOL, &g.version, "Print version information and quit", NULL, NULL},
        {"config", 0, FLAG_STRING, &g.config, "Location of client config files", NULL, NULL},
        {"context", 'c', FLAG_STRING, &g.context, "Name of the context to use", NULL, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL},
    };
    static const cmd_def root = {"", "[OPTIONS] COMMAND", "", NULL, NULL, 0, -1};
    int end = global_end(argc, argv, gflags);
    char **pos = NULL;
    int rc = 0;
    for (int i = 1; i < end; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) g.help = true;
    if (g.help) {
        main_usage(stdout);
        return 0;
    }
    if (flags_parse(&root, gflags, end - 1, argv + 1, &pos) < 0) {
        globals_free(&g);
        return 125;
    }
    free(pos);
    if (set_log_level(g.debug ? "debug" : g.log_level) < 0)
        rc = 1;
    else if (g.hosts.n > 1) {
        errorf("Please specify only one -H");
        rc = 1;
    } else if (g.version)
        printf("Berth version %s, build %s\n", BERTH_VERSION, "dev");
    else if (end >= argc)
        main_usage(stdout);
    else
        rc = run_command(pick_host(&g), argc - end, argv + end);
    globals_free(&g);
    fflush(stdout);
    return rc;
}
