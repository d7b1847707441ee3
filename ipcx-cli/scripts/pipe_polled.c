// What one poll(2) of a pipe costs every later write into it: Linux sets
// the pipe's `poll_usage` on the first poll (any of poll, select, epoll,
// io_uring's poll) and from then on each write wakes the pipe's readers'
// wait queue, even when it was not empty (for epoll's edge-triggered
// wake-ups). One process writes SIZE-byte messages into a pipe, its child
// reads them; POLLED=1 polls the read end once, at once, before the
// first write (as a connect's timed wait for the peer's first message
// does). Prints both processes' CPU time (user and system) per message:
//
//   gcc -O2 -o pipe_polled ipcx-cli/scripts/pipe_polled.c
//   for i in 1 2 3 4 5 6 7; do for s in 64 4096; do for p in 0 1; do
//     taskset -c 0 ./pipe_polled $s 0.5 $p; done; done; done
//
// (`taskset -c 0,1` lets the two run on two CPUs: there the poll costs
// both sizes.)
//
// (docs/benchmarks.md, "`pipe:` at 64 B: the connect's one poll").
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu(struct rusage *r) {
  return r->ru_utime.tv_sec + r->ru_utime.tv_usec / 1e6 + r->ru_stime.tv_sec +
         r->ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s SIZE SECONDS POLLED\n", argv[0]);
    return 2;
  }
  int size = atoi(argv[1]), polled = atoi(argv[3]);
  double secs = atof(argv[2]);
  static char buf[65536];
  if (size <= 0 || size > (int)sizeof buf || secs <= 0) {
    fprintf(stderr, "usage: %s SIZE SECONDS POLLED (SIZE 1 to %zu)\n", argv[0], sizeof buf);
    return 2;
  }
  int p[2];
  if (pipe(p) != 0) return 1;
  if (polled) {
    struct pollfd f = {.fd = p[0], .events = POLLIN};
    poll(&f, 1, 0);
  }
  memset(buf, 1, sizeof buf);
  pid_t c = fork();
  if (c == 0) {
    // The reader: whole messages until end of file.
    close(p[1]);
    for (;;) {
      int o = 0;
      while (o < size) {
        ssize_t r = read(p[0], buf + o, size - o);
        if (r <= 0) _exit(0);
        o += r;
      }
    }
  }
  close(p[0]);
  double t0 = now();
  long n = 0;
  while (now() - t0 < secs) {
    for (int i = 0; i < 256; i++, n++) {
      if (write(p[1], buf, size) != size) return 1;
    }
  }
  close(p[1]);
  waitpid(c, 0, 0);
  struct rusage self, child;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &child);
  printf("size=%d polled=%d cpu/msg=%.3fus\n", size, polled, (cpu(&self) + cpu(&child)) / n * 1e6);
  return 0;
}
