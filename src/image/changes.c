/* changes.c: the `--change` instructions shared by import and commit (a
 * Dockerfile subset: CMD, ENTRYPOINT, ENV, LABEL, EXPOSE, USER, WORKDIR,
 * VOLUME, STOPSIGNAL, ONBUILD, HEALTHCHECK) applied to a container config
 * JSON object, with the word processing of docker's shell lexer (quotes,
 * escapes, $VAR from the config's Env), and Go's container.Config shape
 * (field order, omitempty) for writing such a config out. */
#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "internal.h"

/* ---- container configs in Go's container.Config shape ---- */

static void put(json_t *out, const json_t *src, const char *key, json_t *dflt, bool omitempty)
{
    json_t *v = json_object_get(src, key);
    bool empty = !v || json_is_null(v) || json_is_false(v) ||
                 (json_is_string(v) && !*json_string_value(v)) ||
                 (json_is_object(v) && !json_object_size(v)) ||
                 (json_is_array(v) && !json_array_size(v)) ||
                 (json_is_integer(v) && !json_integer_value(v));
    if (omitempty && empty) {
        json_decref(dflt);
        return;
    }
    if (v && !json_is_null(v)) {
        json_decref(dflt);
        dflt = json_deep_copy(v);
    }
    json_object_set_new(out, key, dflt);
}

json_t *go_container_config(const json_t *src)
{
    static const char *strs[] = {"Hostname", "Domainname", "User"};
    json_t *j = json_object();
    for (size_t i = 0; i < 3; i++) put(j, src, strs[i], json_string(""), false);
    put(j, src, "AttachStdin", json_false(), false);
    put(j, src, "AttachStdout", json_false(), false);
    put(j, src, "AttachStderr", json_false(), false);
    put(j, src, "ExposedPorts", NULL, true);
    put(j, src, "Tty", json_false(), false);
    put(j, src, "OpenStdin", json_false(), false);
    put(j, src, "StdinOnce", json_false(), false);
    put(j, src, "Env", json_null(), false);
    put(j, src, "Cmd", json_null(), false);
    put(j, src, "Healthcheck", NULL, true);
    put(j, src, "ArgsEscaped", NULL, true);
    put(j, src, "Image", json_string(""), false);
    put(j, src, "Volumes", json_null(), false);
    put(j, src, "WorkingDir", json_string(""), false);
    put(j, src, "Entrypoint", json_null(), false);
    put(j, src, "NetworkDisabled", NULL, true);
    put(j, src, "MacAddress", NULL, true);
    put(j, src, "OnBuild", json_null(), false);
    put(j, src, "Labels", json_null(), false);
    put(j, src, "StopSignal", NULL, true);
    put(j, src, "StopTimeout", NULL, true);
    put(j, src, "Shell", NULL, true);
    return j;
}

/* The config being changed, and whether a CMD came before an ENTRYPOINT. */
typedef struct chg {
    json_t *cfg;
    bool cmd_set;
} chg;

/* cfg[key] when it is of the wanted type, else a fresh one put there. */
static json_t *member(json_t *cfg, const char *key, bool array)
{
    json_t *v = json_object_get(cfg, key);
    if (array ? json_is_array(v) : json_is_object(v)) return v;
    v = array ? json_array() : json_object();
    json_object_set_new(cfg, key, v);
    return v;
}

/* ---- word processing as docker's shell lexer does it (subset) ---- */
static const char *env_lookup(const json_t *cfg, const char *name, size_t n)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(cfg, "Env"), i, v)
    {
        const char *s = json_string_value(v);
        if (s && !strncmp(s, name, n) && s[n] == '=') return s + n + 1;
    }
    return "";
}

/* $VAR / ${VAR} from the config's Env; returns the input after it. */
static const char *expand_var(const json_t *cfg, const char *p, sbuf *out)
{
    bool brace = p[1] == '{';
    const char *start = p + 1 + brace, *q = start;
    while (isalnum((unsigned char)*q) || *q == '_') q++;
    if (q == start || (brace && *q != '}')) {
        sbuf_add(out, "$", 1);
        return p + 1;
    }
    sbuf_adds(out, env_lookup(cfg, start, (size_t)(q - start)));
    return q + brace;
}

/* Processes one word starting at *pp (quotes, escapes, $VAR); stops at
 * unquoted whitespace when split is set. Returns false at end of input. */
static bool next_word(const json_t *cfg, const char **pp, bool split, sbuf *out)
{
    const char *p = *pp;
    while (split && isspace((unsigned char)*p)) p++;
    if (!*p) return false;
    char quote = 0;
    while (*p && (quote || !split || !isspace((unsigned char)*p))) {
        if (quote != '\'' && *p == '\\' && p[1]) {
            sbuf_add(out, p + 1, 1);
            p += 2;
        } else if (!quote && (*p == '\'' || *p == '"')) {
            quote = *p++;
        } else if (quote && *p == quote) {
            quote = 0;
            p++;
        } else if (quote != '\'' && *p == '$') {
            p = expand_var(cfg, p, out);
        } else {
            sbuf_add(out, p++, 1);
        }
    }
    if (!out->data) sbuf_add(out, "", 0);
    *pp = p;
    return true;
}

static json_t *words(const json_t *cfg, const char *s)
{
    json_t *a = json_array();
    sbuf w = {0};
    while (next_word(cfg, &s, true, &w)) {
        json_array_append_new(a, json_string(w.data));
        sbuf_free(&w);
    }
    return a;
}

/* The rest of the line as one word, trailing whitespace trimmed. */
static char *one_word(const json_t *cfg, const char *s)
{
    sbuf w = {0};
    while (isspace((unsigned char)*s)) s++;
    next_word(cfg, &s, false, &w);
    char *r = sbuf_steal(&w);
    for (size_t n = strlen(r); n && isspace((unsigned char)r[n - 1]);) r[--n] = 0;
    return r;
}

/* JSON exec form, or NULL when args is not a JSON array of strings. */
static json_t *exec_form(const char *args)
{
    if (*args != '[') return NULL;
    json_t *a = json_fast_loadb(args, strlen(args), JSON_DECODE_ANY, NULL);
    size_t i;
    json_t *v;
    bool ok = json_is_array(a);
    json_array_foreach(a, i, v) ok &= json_is_string(v);
    if (!ok) json_decref(a), a = NULL;
    return a;
}

/* ---- instructions ---- */

/* ENV/LABEL: k=v pairs, or the legacy "K rest of line". */
static int set_kv(chg *c, const char *args, bool env, berr *e)
{
    const char *what = env ? "ENV" : "LABEL";
    _cleanup_json_ json_t *pairs = words(c->cfg, args);
    if (!json_array_size(pairs)) return berr_set(e, 400, "%s requires at least one argument", what);
    if (!strchr(json_string_value(json_array_get(pairs, 0)), '=')) { /* legacy "K V..." */
        const char *p = args;
        while (isspace((unsigned char)*p)) p++;
        while (*p && !isspace((unsigned char)*p)) p++;
        _cleanup_free_ char *val = one_word(c->cfg, p);
        json_t *kv = json_sprintf("%s=%s", json_string_value(json_array_get(pairs, 0)), val);
        json_array_clear(pairs);
        json_array_append_new(pairs, kv);
    }
    size_t i;
    json_t *v;
    json_array_foreach(pairs, i, v)
    {
        const char *s = json_string_value(v), *eq = strchr(s, '=');
        if (!eq || eq == s) return berr_set(e, 400, "%s names can not be blank", what);
        size_t kl = (size_t)(eq - s);
        if (!env) {
            _cleanup_free_ char *k = xstrndup(s, kl);
            json_object_set_new(member(c->cfg, "Labels", false), k, json_string(eq + 1));
            continue;
        }
        json_t *t = member(c->cfg, "Env", true), *old;
        size_t k;
        bool replaced = false;
        json_array_foreach(t, k, old)
        {
            const char *o = json_string_value(old);
            if (!replaced && o && !strncmp(o, s, kl + 1)) {
                json_array_set(t, k, v);
                replaced = true;
            }
        }
        if (!replaced) json_array_append(t, v);
    }
    return 0;
}

static int add_port(chg *c, const char *spec, berr *e)
{
    char port[64], proto[16] = "tcp";
    if (sscanf(spec, "%63[^/]/%15s", port, proto) < 1)
        return berr_set(e, 400, "Invalid containerPort: %s", spec);
    if (strcmp(proto, "tcp") && strcmp(proto, "udp") && strcmp(proto, "sctp"))
        return berr_set(e, 400, "Invalid proto: %s", proto);
    char *end;
    long lo = strtol(port, &end, 10), hi = lo;
    if (*end == '-') hi = strtol(end + 1, &end, 10);
    if (*end || !isdigit((unsigned char)port[0]) || lo < 0 || hi > 65535 || hi < lo)
        return berr_set(e, 400, "Invalid containerPort: %s", port);
    json_t *m = member(c->cfg, "ExposedPorts", false);
    for (long p = lo; p <= hi; p++) {
        char key[40];
        snprintf(key, sizeof key, "%ld/%s", p, proto);
        json_object_set_new(m, key, json_object());
    }
    return 0;
}

static int do_expose(chg *c, const char *args, berr *e)
{
    _cleanup_json_ json_t *ports = words(c->cfg, args);
    if (!json_array_size(ports)) return berr_set(e, 400, "EXPOSE requires at least one argument");
    size_t i;
    json_t *v;
    json_array_foreach(ports, i, v) if (add_port(c, json_string_value(v), e) < 0) return -1;
    return 0;
}

static int do_volume(chg *c, const char *args, berr *e)
{
    _cleanup_json_ json_t *vols = exec_form(args);
    if (!vols) vols = words(c->cfg, args);
    if (!json_array_size(vols)) return berr_set(e, 400, "VOLUME requires at least one argument");
    json_t *m = member(c->cfg, "Volumes", false);
    size_t i;
    json_t *v;
    json_array_foreach(vols, i, v)
    {
        if (!*json_string_value(v))
            return berr_set(e, 400, "VOLUME specified can not be an empty string");
        json_object_set_new(m, json_string_value(v), json_object());
    }
    return 0;
}

/* path.Clean of an absolute path. */
static char *clean_abs(const char *p)
{
    sbuf b = {0};
    char *copy = xstrdup(p), *save = NULL;
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (!strcmp(t, ".")) continue;
        if (!strcmp(t, "..")) {
            char *slash = b.data ? strrchr(b.data, '/') : NULL;
            if (slash) b.len = (size_t)(slash - b.data), b.data[b.len] = 0;
            continue;
        }
        sbuf_printf(&b, "/%s", t);
    }
    free(copy);
    if (!b.len) sbuf_adds(&b, "/");
    return sbuf_steal(&b);
}

/* WORKDIR: relative paths join the current one; the result is cleaned. */
static int do_workdir(chg *c, const char *args, berr *e)
{
    _cleanup_free_ char *w = one_word(c->cfg, args);
    if (!*w) return berr_set(e, 400, "WORKDIR requires exactly one argument");
    const char *cur = jstr(c->cfg, "WorkingDir");
    _cleanup_free_ char *joined =
        w[0] == '/' ? xstrdup(w) : xasprintf("%s/%s", cur && *cur ? cur : "/", w);
    _cleanup_free_ char *clean = clean_abs(joined);
    json_object_set_new(c->cfg, "WorkingDir", json_string(clean));
    return 0;
}

static bool valid_signal(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (*s && !*end) return n > 0 && n < NSIG;
    const char *name = str_starts(s, "SIG") ? s + 3 : s;
    if (str_starts(name, "RTMIN") || str_starts(name, "RTMAX")) return true;
    for (int i = 1; i < NSIG; i++) {
        const char *abbrev = sigabbrev_np(i);
        if (abbrev && !strcmp(abbrev, name)) return true;
    }
    return false;
}

static int do_health(chg *c, const char *args, berr *e)
{
    json_object_del(c->cfg, "Healthcheck");
    if (!strcasecmp(args, "NONE")) {
        json_object_set_new(c->cfg, "Healthcheck", json_pack("{s:[s]}", "Test", "NONE"));
        return 0;
    }
    if (strncasecmp(args, "CMD", 3) || !isspace((unsigned char)args[3]))
        return berr_set(e, 400, "Unknown type \"%s\" in HEALTHCHECK (try CMD)", args);
    const char *rest = args + 4;
    while (isspace((unsigned char)*rest)) rest++;
    json_t *test = exec_form(rest);
    if (test)
        json_array_insert_new(test, 0, json_string("CMD"));
    else
        test = json_pack("[s, s]", "CMD-SHELL", rest);
    json_object_set_new(c->cfg, "Healthcheck", json_pack("{s:o}", "Test", test));
    return 0;
}

/* CMD/ENTRYPOINT: exec form or `/bin/sh -c`; an ENTRYPOINT resets a CMD
 * that no earlier change set. */
static int do_cmd(chg *c, bool entrypoint, const char *args)
{
    json_t *v = exec_form(args);
    if (!v) v = json_pack("[s, s, s]", "/bin/sh", "-c", args);
    json_object_set_new(c->cfg, entrypoint ? "Entrypoint" : "Cmd", v);
    if (!entrypoint)
        c->cmd_set = true;
    else if (!c->cmd_set)
        json_object_set_new(c->cfg, "Cmd", json_null());
    return 0;
}

/* USER, STOPSIGNAL, ONBUILD (args not empty). */
static int do_simple(chg *c, const char *name, const char *args, berr *e)
{
    if (!strcmp(name, "user")) {
        _cleanup_free_ char *user = one_word(c->cfg, args);
        json_object_set_new(c->cfg, "User", json_string(user));
        return 0;
    }
    if (!strcmp(name, "stopsignal")) {
        _cleanup_free_ char *sig = one_word(c->cfg, args);
        if (!valid_signal(sig)) return berr_set(e, 400, "Invalid signal: %s", sig);
        json_object_set_new(c->cfg, "StopSignal", json_string(sig));
        return 0;
    }
    if (!strncasecmp(args, "ONBUILD", 7) && (!args[7] || isspace((unsigned char)args[7])))
        return berr_set(e, 400, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    json_array_append_new(member(c->cfg, "OnBuild", true), json_string(args));
    return 0;
}

static int apply_change(chg *c, const char *line, berr *e)
{
    while (isspace((unsigned char)*line)) line++;
    if (!*line || *line == '#') return 0;
    size_t n = strcspn(line, " \t");
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)(n < 31 ? n : 31), line);
    for (char *p = name; *p; p++) *p = (char)tolower((unsigned char)*p);
    _cleanup_free_ char *args = xstrdup(line + n + strspn(line + n, " \t"));
    for (size_t k = strlen(args); k && isspace((unsigned char)args[k - 1]);) args[--k] = 0;
    if (!strcmp(name, "cmd") || !strcmp(name, "entrypoint")) return do_cmd(c, name[0] == 'e', args);
    if (!strcmp(name, "env") || !strcmp(name, "label")) return set_kv(c, args, name[0] == 'e', e);
    if (!strcmp(name, "expose")) return do_expose(c, args, e);
    if (!strcmp(name, "volume")) return do_volume(c, args, e);
    if (!strcmp(name, "workdir")) return do_workdir(c, args, e);
    if (!strcmp(name, "healthcheck")) return do_health(c, args, e);
    if (!strcmp(name, "user") || !strcmp(name, "stopsignal") || !strcmp(name, "onbuild")) {
        if (!*args) return berr_set(e, 400, "%s requires at least one argument", name);
        return do_simple(c, name, args, e);
    }
    return berr_set(e, 400, "%s is not a valid change command", name);
}

int config_apply_changes(json_t *config, const json_t *changes, berr *e)
{
    chg c = {.cfg = config};
    size_t i;
    json_t *v;
    json_array_foreach(changes, i, v)
    {
        if (!json_is_string(v)) return berr_set(e, 400, "invalid change: not a string");
        _cleanup_free_ char *all = xstrdup(json_string_value(v));
        char *save = NULL;
        for (char *ln = strtok_r(all, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save))
            if (apply_change(&c, ln, e) < 0) return -1;
    }
    return 0;
}
