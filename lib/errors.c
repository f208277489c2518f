/* Messages for every code, and the version. */
#include <string.h>

#include "internal.h"

#define STR2(x) #x
#define STR(x) STR2(x)

TOPIC_API const char *topic_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define TOPIC__ERRMSG(name, code, msg) case TOPIC_##name: return msg;
        TOPIC_ERRNO_MAP(TOPIC__ERRMSG)
#undef TOPIC__ERRMSG
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        /* strerrordesc_np() returns glibc's static table entry, so this stays
         * thread-safe where strerror() may format into a shared buffer. */
        const char *m = strerrordesc_np(-err);
        return m != NULL ? m : "unknown system error";
    }
    return "unknown error code";
}

TOPIC_API const char *topic_version(void)
{
    return STR(TOPIC_VERSION_MAJOR) "." STR(TOPIC_VERSION_MINOR) "." STR(TOPIC_VERSION_PATCH);
}

TOPIC_API int topic_version_number(void)
{
    return TOPIC_VERSION_NUMBER;
}
