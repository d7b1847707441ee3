/*
 * A 4 KiB memcpy, timed for several distances between source and
 * destination modulo 4 KiB: on x86 CPUs where glibc copies 4 KiB with
 * `rep movsb`, a destination a few bytes past the source (modulo 4 KiB)
 * makes every store alias a load still to come (4K aliasing). This is why
 * `Region::read` builds its result in place instead of moving a local copy
 * into it (docs/shared-state.md, "The 4 KiB Region::read in the bench").
 *
 *   gcc -O2 ipcx-cli/scripts/memcpy_distance.c -o /tmp/memcpy_distance
 *   taskset -c 1 /tmp/memcpy_distance
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(void) {
  char *a = aligned_alloc(4096, 65536), *b = aligned_alloc(4096, 65536);
  if (!a || !b) return 1;
  memset(a, 1, 65536);
  memset(b, 2, 65536);
  /* {source offset, destination offset}; both buffers are 4 KiB-aligned. */
  static const int offs[][2] = {{0, 0},  {0, 8},  {8, 0},  {8, 8},    {0, 16},
                                {0, 32}, {0, 64}, {8, 16}, {0, 1032}, {8, 1040}};
  for (int round = 0; round < 2; round++)
    for (unsigned k = 0; k < sizeof offs / sizeof offs[0]; k++) {
      char *src = a + offs[k][0] + 256, *dst = b + offs[k][1] + 256;
      const int n = 200000;
      double t = now_ns();
      for (int i = 0; i < n; i++) {
        memcpy(dst, src, 4096);
        __asm__ volatile("" : : "r"(dst) : "memory");
      }
      printf("dst - src = %4d mod 4096: %5.0f ns per 4 KiB memcpy\n", offs[k][1] - offs[k][0],
             (now_ns() - t) / n);
    }
  free(a);
  free(b);
  return 0;
}
