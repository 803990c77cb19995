/* Compiled with -Werror: the prototypes in include/ldapbind.h must be exactly libsasl2's types. */
#include "ldapbind.h"

static sasl_auxprop_init_t *const auxprop_entry = sasl_auxprop_plug_init;
static sasl_canonuser_init_t *const canon_entry = sasl_canonuser_init;

int main(void) { return (auxprop_entry != 0 && canon_entry != 0) ? 0 : 1; }
