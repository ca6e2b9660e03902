/* ref.c: image reference parsing and formatting, following Docker's
 * distribution/reference grammar (ParseNormalizedNamed): domain split,
 * lowercase path components, tag and sha256 digest, familiar names and the
 * ID-prefix test used to tell IDs from names. See ref.h. */
#include "ref.h"

#include <ctype.h>
#include <string.h>

#define DEFAULT_DOMAIN "docker.io"
#define LEGACY_DOMAIN "index.docker.io"
#define OFFICIAL_PREFIX "library/"
#define NAME_MAX_LEN 255

static int bad_format(berr *e)
{
    return berr_set(e, 400, "invalid reference format");
}

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_word(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

/* path-component := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )* */
static bool valid_path_component(const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < n && is_lower_alnum(s[i])) i++;
        if (i == start) return false;
        if (i == n) return true;
        size_t sep = i;
        while (i < n && !is_lower_alnum(s[i])) i++;
        size_t len = i - sep;
        const char *p = s + sep;
        bool ok = (len == 1 && (*p == '.' || *p == '_')) || (len == 2 && !strncmp(p, "__", 2));
        if (!ok) {
            ok = true;
            for (size_t k = 0; k < len; k++) ok = ok && p[k] == '-';
        }
        if (!ok) return false;
    }
}

/* domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9] */
static bool valid_domain_component(const char *s, size_t n)
{
    if (n == 0 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1])) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-') return false;
    return true;
}

static bool valid_port(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

/* "[v6addr]" */
static bool valid_ipv6(const char *s, size_t n)
{
    if (n < 3 || s[0] != '[' || s[n - 1] != ']') return false;
    for (size_t i = 1; i + 1 < n; i++)
        if (!isxdigit((unsigned char)s[i]) && s[i] != ':') return false;
    return true;
}

static bool valid_host(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    for (;;) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *ce = dot ? dot : end;
        if (!valid_domain_component(p, (size_t)(ce - p))) return false;
        if (!dot) return true;
        p = dot + 1;
    }
}

/* domain := host [':' port]; host := domain-component ('.' domain-component)* | '[' v6 ']' */
static bool valid_domain(const char *s)
{
    size_t n = strlen(s), hostlen;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb) return false;
        hostlen = (size_t)(rb - s) + 1;
        if (!valid_ipv6(s, hostlen)) return false;
    } else {
        const char *colon = strchr(s, ':');
        hostlen = colon ? (size_t)(colon - s) : n;
        if (!valid_host(s, hostlen)) return false;
    }
    if (hostlen == n) return true;
    return s[hostlen] == ':' && valid_port(s + hostlen + 1, n - hostlen - 1);
}

/* Docker's splitDockerDomain: is the first component of a name a registry? */
static bool first_is_domain(const char *s, size_t n)
{
    if ((n == 9 && !strncmp(s, "localhost", 9)) || memchr(s, '.', n) || memchr(s, ':', n))
        return true;
    for (size_t i = 0; i < n; i++)
        if (isupper((unsigned char)s[i])) return true;
    return false;
}

static int split_domain(const char *s, ref *r, const char **rest)
{
    const char *slash = strchr(s, '/');
    *rest = s;
    snprintf(r->domain, sizeof r->domain, "%s", DEFAULT_DOMAIN);
    if (slash && first_is_domain(s, (size_t)(slash - s))) {
        size_t n = (size_t)(slash - s);
        if (n >= sizeof r->domain) return -1;
        memcpy(r->domain, s, n);
        r->domain[n] = 0;
        *rest = slash + 1;
    }
    if (!strcmp(r->domain, LEGACY_DOMAIN)) snprintf(r->domain, sizeof r->domain, DEFAULT_DOMAIN);
    return 0;
}

/* Cuts "@digest" and ":tag" off `name` (modified in place). */
static int split_tag_digest(char *name, ref *r)
{
    char *at = strchr(name, '@');
    if (at) {
        *at = 0;
        if (!digest_valid(at + 1)) return -1;
        snprintf(r->digest, sizeof r->digest, "%s", at + 1);
    }
    char *slash = strrchr(name, '/');
    char *colon = strrchr(slash ? slash : name, ':');
    if (colon) {
        *colon = 0;
        if (!ref_valid_tag(colon + 1)) return -1;
        snprintf(r->tag, sizeof r->tag, "%s", colon + 1);
    }
    return 0;
}

static bool valid_path(const char *p)
{
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (!valid_path_component(p, n)) return false;
        if (!slash) return true;
        p = slash + 1;
    }
}

static bool has_upper_before_tag(const char *rest)
{
    for (const char *p = rest; *p && *p != ':'; p++)
        if (isupper((unsigned char)*p)) return true;
    return false;
}

int ref_parse(const char *s, ref *r, berr *e)
{
    memset(r, 0, sizeof *r);
    if (!s || !*s) return bad_format(e);
    if (strlen(s) == 64 && all_hex(s, 64))
        return berr_set(
            e, 400, "invalid repository name (%s), cannot specify 64-byte hexadecimal strings", s);
    const char *rest;
    if (split_domain(s, r, &rest) < 0 || !valid_domain(r->domain)) return bad_format(e);
    if (has_upper_before_tag(rest))
        return berr_set(e, 400, "invalid reference format: repository name must be lowercase");
    char name[1024];
    if (snprintf(name, sizeof name, "%s", rest) >= (int)sizeof name) return bad_format(e);
    if (split_tag_digest(name, r) < 0 || !valid_path(name)) return bad_format(e);
    bool official = !strcmp(r->domain, DEFAULT_DOMAIN) && !strchr(name, '/');
    size_t pre = official ? strlen(OFFICIAL_PREFIX) : 0, nl = strlen(name);
    if (strlen(r->domain) + 1 + pre + nl > NAME_MAX_LEN)
        return berr_set(e, 400,
                        "invalid reference format: repository name must not be more "
                        "than 255 characters");
    memcpy(r->path, OFFICIAL_PREFIX, pre);
    memcpy(r->path + pre, name, nl + 1);
    return 0;
}

void ref_familiar_name(const ref *r, char *out, size_t n)
{
    if (strcmp(r->domain, DEFAULT_DOMAIN) != 0) {
        snprintf(out, n, "%s/%s", r->domain, r->path);
        return;
    }
    const char *p = r->path;
    if (str_starts(p, OFFICIAL_PREFIX) && !strchr(p + strlen(OFFICIAL_PREFIX), '/'))
        p += strlen(OFFICIAL_PREFIX);
    snprintf(out, n, "%s", p);
}

void ref_familiar_string(const ref *r, char *out, size_t n)
{
    char name[1024];
    ref_familiar_name(r, name, sizeof name);
    if (r->tag[0] || !r->digest[0])
        snprintf(out, n, "%s:%s", name, r->tag[0] ? r->tag : "latest");
    else
        snprintf(out, n, "%s@%s", name, r->digest);
}

bool ref_valid_tag(const char *tag)
{
    size_t n = tag ? strlen(tag) : 0;
    if (n == 0 || n > 128 || !is_word(tag[0])) return false;
    for (size_t i = 1; i < n; i++)
        if (!is_word(tag[i]) && tag[i] != '.' && tag[i] != '-') return false;
    return true;
}

bool ref_is_id_prefix(const char *s)
{
    if (!s) return false;
    if (str_starts(s, "sha256:")) s += 7;
    size_t n = strlen(s);
    return n >= 1 && n <= 64 && all_hex(s, n);
}
