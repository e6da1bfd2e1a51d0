/* clock.h: the two clocks the library reads (clock.c). */
#ifndef AC_CLOCK_H
#define AC_CLOCK_H

#include <stdint.h>

uint64_t ac__wall_ms(void); /* CLOCK_REALTIME: ms since the epoch */
uint64_t ac__mono_ms(void); /* CLOCK_MONOTONIC: for durations */
uint64_t ac__mono_us(void); /* the same in microseconds */

#endif /* AC_CLOCK_H */
