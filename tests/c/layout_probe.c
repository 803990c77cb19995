/* Prints "struct field offset size" for every field ldapbind mirrors, from the real headers. */
#include <stddef.h>
#include <stdio.h>
#include <sasl/sasl.h>
#include <sasl/saslplug.h>
#include <sasl/prop.h>

#define F(T, f) printf("%s %s %zu %zu\n", #T, #f, offsetof(T, f), sizeof(((T *)0)->f))
#define S(T) printf("%s sizeof %zu %zu\n", #T, sizeof(T), _Alignof(T))

int main(void) {
    S(sasl_utils_t);
    F(sasl_utils_t, version); F(sasl_utils_t, conn); F(sasl_utils_t, rpool);
    F(sasl_utils_t, getopt_context); F(sasl_utils_t, getopt); F(sasl_utils_t, malloc);
    F(sasl_utils_t, calloc); F(sasl_utils_t, realloc); F(sasl_utils_t, free);
    F(sasl_utils_t, mutex_alloc); F(sasl_utils_t, mutex_lock); F(sasl_utils_t, mutex_unlock);
    F(sasl_utils_t, mutex_free); F(sasl_utils_t, MD5Init); F(sasl_utils_t, MD5Update);
    F(sasl_utils_t, MD5Final); F(sasl_utils_t, hmac_md5); F(sasl_utils_t, hmac_md5_init);
    F(sasl_utils_t, hmac_md5_final); F(sasl_utils_t, hmac_md5_precalc);
    F(sasl_utils_t, hmac_md5_import); F(sasl_utils_t, mkchal); F(sasl_utils_t, utf8verify);
    F(sasl_utils_t, rand); F(sasl_utils_t, churn); F(sasl_utils_t, checkpass);
    F(sasl_utils_t, decode64); F(sasl_utils_t, encode64); F(sasl_utils_t, erasebuffer);
    F(sasl_utils_t, getprop); F(sasl_utils_t, setprop); F(sasl_utils_t, getcallback);
    F(sasl_utils_t, log); F(sasl_utils_t, seterror); F(sasl_utils_t, spare_fptr);
    F(sasl_utils_t, prop_new); F(sasl_utils_t, prop_dup); F(sasl_utils_t, prop_request);
    F(sasl_utils_t, prop_get); F(sasl_utils_t, prop_getnames); F(sasl_utils_t, prop_clear);
    F(sasl_utils_t, prop_dispose); F(sasl_utils_t, prop_format); F(sasl_utils_t, prop_set);
    F(sasl_utils_t, prop_setvals); F(sasl_utils_t, prop_erase); F(sasl_utils_t, auxprop_store);
    F(sasl_utils_t, spare_fptr1); F(sasl_utils_t, spare_fptr2);

    S(sasl_security_properties_t);
    F(sasl_security_properties_t, min_ssf); F(sasl_security_properties_t, max_ssf);
    F(sasl_security_properties_t, maxbufsize); F(sasl_security_properties_t, security_flags);
    F(sasl_security_properties_t, property_names); F(sasl_security_properties_t, property_values);

    S(sasl_server_params_t);
    F(sasl_server_params_t, service); F(sasl_server_params_t, appname);
    F(sasl_server_params_t, serverFQDN); F(sasl_server_params_t, user_realm);
    F(sasl_server_params_t, iplocalport); F(sasl_server_params_t, ipremoteport);
    F(sasl_server_params_t, servicelen); F(sasl_server_params_t, applen);
    F(sasl_server_params_t, slen); F(sasl_server_params_t, urlen);
    F(sasl_server_params_t, iploclen); F(sasl_server_params_t, ipremlen);
    F(sasl_server_params_t, log_level); F(sasl_server_params_t, utils);
    F(sasl_server_params_t, callbacks); F(sasl_server_params_t, props);
    F(sasl_server_params_t, external_ssf); F(sasl_server_params_t, transition);
    F(sasl_server_params_t, canon_user); F(sasl_server_params_t, propctx);
    F(sasl_server_params_t, gss_creds); F(sasl_server_params_t, cbinding);
    F(sasl_server_params_t, http_request); F(sasl_server_params_t, spare_ptr4);
    F(sasl_server_params_t, spare_fptr1); F(sasl_server_params_t, spare_fptr2);
    F(sasl_server_params_t, spare_int1); F(sasl_server_params_t, spare_int2);
    F(sasl_server_params_t, spare_int3); F(sasl_server_params_t, flags);
    F(sasl_server_params_t, param_version);

    /* Only a prefix of the client params is mirrored: no sizeof comparison. */
    F(sasl_client_params_t, service); F(sasl_client_params_t, serverFQDN);
    F(sasl_client_params_t, clientFQDN); F(sasl_client_params_t, utils);

    S(struct propval);
    F(struct propval, name); F(struct propval, values); F(struct propval, nvalues);
    F(struct propval, valsize);

    S(sasl_auxprop_plug_t);
    F(sasl_auxprop_plug_t, features); F(sasl_auxprop_plug_t, spare_int1);
    F(sasl_auxprop_plug_t, glob_context); F(sasl_auxprop_plug_t, auxprop_free);
    F(sasl_auxprop_plug_t, auxprop_lookup); F(sasl_auxprop_plug_t, name);
    F(sasl_auxprop_plug_t, auxprop_store);

    S(sasl_canonuser_plug_t);
    F(sasl_canonuser_plug_t, features); F(sasl_canonuser_plug_t, spare_int1);
    F(sasl_canonuser_plug_t, glob_context); F(sasl_canonuser_plug_t, name);
    F(sasl_canonuser_plug_t, canon_user_free); F(sasl_canonuser_plug_t, canon_user_server);
    F(sasl_canonuser_plug_t, canon_user_client); F(sasl_canonuser_plug_t, spare_fptr1);
    F(sasl_canonuser_plug_t, spare_fptr2); F(sasl_canonuser_plug_t, spare_fptr3);

    printf("const SASL_AUXPROP_PLUG_VERSION %d 0\n", SASL_AUXPROP_PLUG_VERSION);
    printf("const SASL_CANONUSER_PLUG_VERSION %d 0\n", SASL_CANONUSER_PLUG_VERSION);
    printf("const SASL_AUTHUSER %d 0\n", SASL_AUTHUSER);
    printf("const SASL_AUXPROP_VERIFY_AGAINST_HASH %d 0\n", SASL_AUXPROP_VERIFY_AGAINST_HASH);
    printf("const SASL_NOUSER %d 0\n", SASL_NOUSER);
    printf("const SASL_CONFIGERR %d 0\n", SASL_CONFIGERR);
    return 0;
}
