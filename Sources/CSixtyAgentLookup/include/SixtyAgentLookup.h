#ifndef SIXTY_AGENT_LOOKUP_H
#define SIXTY_AGENT_LOOKUP_H

/// Makes this process look host names up through glibc's built-in sources only, /etc/hosts and
/// DNS, whatever /etc/nsswitch.conf names. `sixty-agent` is linked statically: an NSS module
/// (mdns, sss, ldap…) is a shared library built for the host's own glibc, and loading one into a
/// static program is not safe. Returns 0 on success (and where there is no glibc).
int sixty_agent_pin_host_lookup(void);

#endif
