/*
 * ldapbind: the two entry points libsasl2 looks up (with dlsym) in libldapbind.so.
 * Their types are libsasl2's own sasl_auxprop_init_t and sasl_canonuser_init_t; the test
 * tests/layout.rs compiles this header against <sasl/saslplug.h> with -Werror.
 */
#ifndef LDAPBIND_H
#define LDAPBIND_H

#include <sasl/sasl.h>
#include <sasl/saslplug.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Registers the auxprop plugin "ldapbind" (SASL_AUXPROP_PLUG_VERSION 8). */
int sasl_auxprop_plug_init(const sasl_utils_t *utils, int max_version, int *out_version,
                           sasl_auxprop_plug_t **plug, const char *plugname);

/* Registers the canonuser plugin "ldapbind" (SASL_CANONUSER_PLUG_VERSION 5). */
int sasl_canonuser_init(const sasl_utils_t *utils, int max_version, int *out_version,
                        sasl_canonuser_plug_t **plug, const char *plugname);

#ifdef __cplusplus
}
#endif

#endif /* LDAPBIND_H */
