// Whether a Unix socket that keeps message boundaries itself
// (SOCK_SEQPACKET, where a frame would need no length prefix) moves
// 4 KiB messages faster than a stream socket does a prefixed frame: a
// writer sends SIZE-byte messages to a reader over a connected
// AF_UNIX socket pair of the given type, for SECONDS seconds, both on
// one CPU under taskset:
//
//   gcc -O2 -o useq ipcx-cli/scripts/unix_seqpacket.c
//   for i in 1 2 3 4 5 6 7; do
//     for c in "4096 stream" "4100 stream" "4096 seq" "4100 seq"; do
//       taskset -c 0 ./useq $c 0.5; done; done
//
//   SIZE     bytes a message (4100 = a 4 KiB message with a 4-byte length)
//   stream   SOCK_STREAM (what `unix:` uses; the reader reads SIZE bytes
//            a message, completing short reads)
//   seq      SOCK_SEQPACKET (one recv a message)
//
// Prints messages per second and the wall-clock time a message
// (docs/benchmarks.md, "`unix:` at 4 KiB: what a length prefix costs
// there").
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 4 || (strcmp(argv[2], "stream") && strcmp(argv[2], "seq"))) {
    fprintf(stderr, "usage: %s SIZE stream|seq SECONDS\n", argv[0]);
    return 2;
  }
  size_t size = strtoul(argv[1], NULL, 10);
  int seq = !strcmp(argv[2], "seq");
  double secs = atof(argv[3]);
  if (size == 0 || secs <= 0) {
    fprintf(stderr, "SIZE and SECONDS must be positive\n");
    return 2;
  }
  int sv[2];
  if (socketpair(AF_UNIX, seq ? SOCK_SEQPACKET : SOCK_STREAM, 0, sv)) {
    perror("socketpair");
    return 1;
  }
  char *buf = calloc(1, size);
  if (!buf) return 1;
  pid_t child = fork();
  if (child < 0) {
    perror("fork");
    return 1;
  }
  if (child == 0) {
    close(sv[0]);
    for (;;) {
      size_t got = 0;
      while (got < size) {
        ssize_t r = recv(sv[1], buf + got, size - got, 0);
        if (r <= 0) return 0;
        got += (size_t)r;
        if (seq) break;
      }
    }
  }
  close(sv[1]);
  double t0 = now();
  long n = 0;
  while (now() - t0 < secs) {
    for (int i = 0; i < 1000; i++) {
      if (send(sv[0], buf, size, 0) != (ssize_t)size) {
        perror("send");
        return 1;
      }
    }
    n += 1000;
  }
  double t = now() - t0;
  close(sv[0]);
  waitpid(child, NULL, 0);
  printf("%s %zu: %.0f msgs/s %.3f us\n", argv[2], size, n / t, t / n * 1e6);
  return 0;
}
