#ifndef CSIXTY_PARENT_DEATH_H
#define CSIXTY_PARENT_DEATH_H

/// Asks the kernel to send `signal` to this process when its parent dies (Linux
/// PR_SET_PDEATHSIG); prctl is variadic, so Swift cannot call it directly. 0 on success.
int sixty_set_parent_death_signal(int signal);

#endif
