#include "SixtyAgentLookup.h"

#include <limits.h>  // defines __GLIBC__ where the C library is glibc

#if defined(__GLIBC__)
#include <nss.h>

int sixty_agent_pin_host_lookup(void) { return __nss_configure_lookup("hosts", "files dns"); }
#else
int sixty_agent_pin_host_lookup(void) { return 0; }
#endif
