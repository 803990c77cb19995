/*
 * A minimal host that drives ldapbind's auxprop lookup the way libsasl2 2.1.27's
 * auxprop_verify_password_hashed() did: the candidate password pre-set in "*userPassword"
 * with libsasl2's own prop_set, then a lookup with SASL_AUXPROP_VERIFY_AGAINST_HASH.
 *
 * usage: verify_host PLUGIN.so USER PASSWORD key=value...   (options served to getopt)
 * prints: "rc=<code> kept=<0|1>" and every log line as "log <level> <text>".
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sasl/sasl.h>
#include <sasl/saslplug.h>
#include <sasl/prop.h>

static int nopts;
static char **opts;

static int getopt_cb(void *ctx, const char *plugin, const char *option, const char **result, unsigned *len) {
    (void)ctx; (void)plugin;
    size_t n = strlen(option);
    for (int i = 0; i < nopts; i++) {
        if (strncmp(opts[i], option, n) == 0 && opts[i][n] == '=') {
            *result = opts[i] + n + 1;
            if (len) *len = (unsigned)strlen(*result);
            return SASL_OK;
        }
    }
    *result = NULL;
    return SASL_FAIL;
}

static void log_cb(sasl_conn_t *conn, int level, const char *fmt, ...) {
    (void)conn;
    va_list ap;
    va_start(ap, fmt);
    printf("log %d ", level);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void seterror_cb(sasl_conn_t *conn, unsigned flags, const char *fmt, ...) {
    (void)conn; (void)flags; (void)fmt;
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    opts = argv + 4;
    nopts = argc - 4;
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) { printf("dlopen: %s\n", dlerror()); return 2; }
    sasl_auxprop_init_t *init = (sasl_auxprop_init_t *)dlsym(lib, "sasl_auxprop_plug_init");
    if (!init) return 2;

    sasl_utils_t utils;
    memset(&utils, 0, sizeof utils);
    utils.getopt = getopt_cb;
    utils.log = log_cb;
    utils.seterror = seterror_cb;
    utils.prop_get = prop_get;
    utils.prop_set = prop_set;
    utils.prop_erase = prop_erase;
    utils.prop_request = prop_request;

    int version = 0;
    sasl_auxprop_plug_t *plug = NULL;
    int rc = init(&utils, SASL_AUXPROP_PLUG_VERSION, &version, &plug, "ldapbind");
    if (rc != SASL_OK || !plug) { printf("init rc=%d\n", rc); return 2; }

    struct propctx *ctx = prop_new(0);
    const char *names[] = { "*userPassword", NULL };
    prop_request(ctx, names);
    prop_set(ctx, "*userPassword", argv[3], (int)strlen(argv[3]));

    sasl_server_params_t sparams;
    memset(&sparams, 0, sizeof sparams);
    sparams.utils = &utils;
    sparams.propctx = ctx;
    sparams.log_level = SASL_LOG_DEBUG;

    rc = plug->auxprop_lookup(plug->glob_context, &sparams, SASL_AUXPROP_VERIFY_AGAINST_HASH,
                              argv[2], (unsigned)strlen(argv[2]));
    struct propval pv[2];
    memset(pv, 0, sizeof pv);
    prop_getnames(ctx, names, pv);
    int kept = pv[0].values && pv[0].values[0] && strcmp(pv[0].values[0], argv[3]) == 0;
    printf("rc=%d kept=%d\n", rc, kept);
    if (plug->auxprop_free) plug->auxprop_free(plug->glob_context, &utils);
    prop_dispose(&ctx);
    return 0;
}
