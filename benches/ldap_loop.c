/* The wire limit with the fastest client (issues 10 and 14): libldap (C) on kept connections,
 * doing in a loop what one login needs from the directory, with nothing else around it.
 *
 *   ldap_loop URL BINDDN BINDPW BASE FILTER MODE THREADS SECS WARMUP [USERPW]
 *
 * MODE "search": one kept connection per thread, bound as BINDDN, searching BASE (subtree) for
 * FILTER, asking for no attribute ("1.1"), size limit 2; exactly one entry is expected.
 * MODE "searchbind": two kept connections per thread, one bound as BINDDN for the search, one
 * for a simple bind as the DN found with USERPW (what a bind-checking daemon does per login).
 * SECS <= 0 with a positive WARMUP means: do WARMUP iterations per thread (counting operations).
 *
 * Prints "RESULT n=... wall=... rate=... mean=... p50=... p99=..." (rate: the threads' own rates summed;
 * latency per login in µs, all threads pooled). Built by benches/authd.rs with `cc -O2 ... -lldap -lpthread`.
 */
#define LDAP_DEPRECATED 0
#include <ldap.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *url, *binddn, *bindpw, *base, *filter, *userpw;
static int searchbind;
static double secs, warmup;

struct worker {
    pthread_t tid;
    double *lat; /* µs */
    size_t n, cap;
    double span; /* seconds measured */
    int failed;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static LDAP *connect_bound(const char *dn, const char *pw) {
    LDAP *ld;
    int v3 = LDAP_VERSION3;
    struct berval cred = {strlen(pw), (char *)pw};
    struct timeval tv = {5, 0};
    if (ldap_initialize(&ld, url) != LDAP_SUCCESS) return NULL;
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
    if (ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL) != LDAP_SUCCESS) {
        ldap_unbind_ext_s(ld, NULL, NULL);
        return NULL;
    }
    return ld;
}

/* One login's worth of directory work: 0 on success. */
static int one(LDAP *search_ld, LDAP *bind_ld) {
    char *attrs[] = {"1.1", NULL};
    struct timeval tv = {5, 0};
    LDAPMessage *res = NULL;
    int rc = ldap_search_ext_s(search_ld, base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, &tv, 2, &res);
    if (rc != LDAP_SUCCESS || ldap_count_entries(search_ld, res) != 1) {
        fprintf(stderr, "search: %s\n", ldap_err2string(rc));
        ldap_msgfree(res);
        return -1;
    }
    if (searchbind) {
        char *dn = ldap_get_dn(search_ld, ldap_first_entry(search_ld, res));
        struct berval cred = {strlen(userpw), (char *)userpw};
        rc = ldap_sasl_bind_s(bind_ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
        ldap_memfree(dn);
        if (rc != LDAP_SUCCESS) {
            fprintf(stderr, "user bind: %s\n", ldap_err2string(rc));
            ldap_msgfree(res);
            return -1;
        }
    }
    ldap_msgfree(res);
    return 0;
}

static void *run(void *arg) {
    struct worker *w = arg;
    LDAP *s = connect_bound(binddn, bindpw);
    LDAP *b = searchbind ? connect_bound(binddn, bindpw) : NULL;
    if (!s || (searchbind && !b)) {
        fprintf(stderr, "connect/bind to %s failed\n", url);
        w->failed = 1;
        return NULL;
    }
    if (secs <= 0) { /* counted iterations, for the operations-per-login phase */
        for (int i = 0; i < (int)warmup; i++)
            if (one(s, b)) { w->failed = 1; break; }
    } else {
        double end = now() + warmup;
        while (now() < end)
            if (one(s, b)) { w->failed = 1; return NULL; }
        double start = now();
        for (;;) {
            double t = now();
            if (one(s, b)) { w->failed = 1; break; }
            double t2 = now();
            if (w->n == w->cap) {
                w->cap = w->cap ? 2 * w->cap : 65536;
                w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
            }
            w->lat[w->n++] = (t2 - t) * 1e6;
            if (t2 - start >= secs) break;
        }
        w->span = now() - start;
    }
    ldap_unbind_ext_s(s, NULL, NULL);
    if (b) ldap_unbind_ext_s(b, NULL, NULL);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 10) {
        fprintf(stderr, "usage: ldap_loop URL BINDDN BINDPW BASE FILTER search|searchbind THREADS SECS WARMUP [USERPW]\n");
        return 2;
    }
    url = argv[1], binddn = argv[2], bindpw = argv[3], base = argv[4], filter = argv[5];
    searchbind = strcmp(argv[6], "searchbind") == 0;
    int threads = atoi(argv[7]);
    secs = atof(argv[8]), warmup = atof(argv[9]);
    userpw = argc > 10 ? argv[10] : "";
    struct worker *ws = calloc(threads, sizeof *ws);
    double start = now();
    for (int i = 0; i < threads; i++) pthread_create(&ws[i].tid, NULL, run, &ws[i]);
    size_t n = 0;
    int failed = 0;
    double rate = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ws[i].tid, NULL);
        n += ws[i].n;
        failed |= ws[i].failed;
        if (ws[i].span > 0) rate += ws[i].n / ws[i].span;
    }
    double wall = now() - start - (secs > 0 ? warmup : 0);
    if (failed) return 1;
    if (secs <= 0) {
        printf("RESULT n=%d\n", (int)warmup * threads);
        return 0;
    }
    double *all = malloc((n ? n : 1) * sizeof *all), sum = 0;
    size_t k = 0;
    for (int i = 0; i < threads; i++)
        for (size_t j = 0; j < ws[i].n; j++) sum += all[k++] = ws[i].lat[j];
    qsort(all, n, sizeof *all, cmp);
    printf("RESULT n=%zu wall=%.6f rate=%.1f mean=%.2f p50=%.2f p99=%.2f\n", n, wall, rate, sum / n,
           all[n / 2], all[(size_t)(n * 0.99) < n ? (size_t)(n * 0.99) : n - 1]);
    return 0;
}
