// A raw loopback TCP (or, with `unix`, AF_UNIX socket pair) writer and
// reader of fixed-size messages, to tell what a frame's four bytes of
// length cost from what ipcx's code costs: the same socket options as
// `ipcx bench`'s `tcp` row (TCP_NODELAY on both ends), both peers pinned
// to one CPU, and the system calls of either side:
//
//   gcc -O2 -o tfs ipcx-cli/scripts/tcp_frame_size.c
//   ./tfs SIZE SECONDS SEND RECV [unix]
//
//   SIZE     bytes of a message
//   SECONDS  how long the writer sends
//   SEND     send     one send(2) of SIZE bytes (the raw baseline)
//            sendmsg  one sendmsg(2) of a 4-byte length and SIZE bytes
//                     (ipcx's frame of a message over 512 bytes until
//                     2026-11, over 8 KiB since)
//            send4    one send(2) of 4 + SIZE bytes from one buffer, the
//                     message copied in behind its length first (a frame
//                     assembled in a reused buffer: ipcx's frame up to
//                     8 KiB since 2026-11)
//            frame    one send(2) of 4 + SIZE bytes from a buffer that
//                     holds the frame already (the frame's own cost,
//                     without the copy)
//   RECV     exact    recv(2) of exactly what one message is (the raw
//                     baseline: SIZE, or 4 + SIZE for a framed sender)
//            ahead    ipcx's framed receive without a direct body read:
//                     recv(2) of a frame and the next length (8 + SIZE
//                     bytes) into a buffer, the body copied out of it
//                     (ipcx's receive of a body up to 8 KiB from 2026-11
//                     to 2026-11-29, and still its receive on a pipe)
//            split    ipcx's framed receive until 2026-11: as ahead, but
//                     a body of 1 KiB or more not yet read goes straight
//                     into the caller's buffer by recvmsg(2), with the
//                     next length into the framing buffer
//            frame    recv(2) of one frame as long as the last one (4 +
//                     SIZE bytes) into a buffer, the body copied out of
//                     it (ipcx's receive on a socket since 2026-11-29: a
//                     read of a body up to 8 KiB stops at the frame's end,
//                     where the peer's `send` ended)
//            (ahead, split and frame read lengths: use them with a
//            framed SEND)
//   unix     a connected AF_UNIX stream socket pair instead of loopback
//            TCP (the `unix` row)
//
// Prints messages per second and the CPU time (user and system, both
// peers, from getrusage) per message; taskset -c 0 pins both peers:
//
//   for i in 1 2 3; do for m in "send exact" "sendmsg ahead" "send4 exact"; do
//     taskset -c 0 ./tfs 4096 2 $m; done; done
//
// (docs/benchmarks.md, "Where the cycles go", `tcp://` at 4 KiB).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int main(int argc, char **argv) {
  if (argc != 5 && !(argc == 6 && !strcmp(argv[5], "unix"))) {
    fprintf(stderr, "usage: %s SIZE SECONDS send|sendmsg|send4|frame exact|ahead|split|frame [unix]\n",
            argv[0]);
    return 2;
  }
  int size = atoi(argv[1]);
  double secs = atof(argv[2]);
  const char *sm = argv[3], *rm = argv[4];
  const char *sends[] = {"send", "sendmsg", "send4", "frame"};
  const char *recvs[] = {"exact", "ahead", "split", "frame"};
  int sm_ok = 0, rm_ok = 0;
  for (int i = 0; i < 4; i++) {
    sm_ok |= !strcmp(sm, sends[i]);
    rm_ok |= !strcmp(rm, recvs[i]);
  }
  if (!sm_ok || !rm_ok || size <= 0 || secs <= 0) {
    fprintf(stderr, "usage: %s SIZE SECONDS send|sendmsg|send4|frame exact|ahead|split|frame [unix]\n",
            argv[0]);
    return 2;
  }
  int framed = strcmp(sm, "send") != 0;
  int unix_pair = argc == 6, sv[2] = {-1, -1};
  if (unix_pair && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  bind(l, (struct sockaddr *)&a, sizeof a);
  listen(l, 1);
  getsockname(l, (struct sockaddr *)&a, &al);
  pid_t w = fork();
  if (w == 0) {
    // The writer: messages until the time is up, then end of stream.
    close(l);
    int s = sv[0];
    if (!unix_pair) {
      s = socket(AF_INET, SOCK_STREAM, 0);
      if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) _exit(1);
      nodelay(s);
    }
    char *b = calloc(1, size + 4), *msg = calloc(1, size);
    uint32_t len = size;
    memcpy(b, &len, 4);
    double end = now() + secs;
    for (long i = 0;; i++) {
      if ((i & 255) == 0 && now() > end) break;
      ssize_t r;
      if (!strcmp(sm, "send")) {
        r = send(s, b + 4, size, MSG_NOSIGNAL);
      } else if (!strcmp(sm, "frame")) {
        r = send(s, b, size + 4, MSG_NOSIGNAL);
      } else if (!strcmp(sm, "send4")) {
        memcpy(b + 4, msg, size);
        asm volatile("" ::: "memory");  // the copy is not optimised away
        r = send(s, b, size + 4, MSG_NOSIGNAL);
      } else {
        struct iovec v[2] = {{&len, 4}, {msg, size}};
        struct msghdr m = {.msg_iov = v, .msg_iovlen = 2};
        r = sendmsg(s, &m, MSG_NOSIGNAL);
      }
      if (r != size + 4 * framed) _exit(3);  // no partial writes at these sizes
    }
    _exit(0);
  }
  int s = sv[1];
  if (unix_pair) {
    close(sv[0]);
  } else {
    s = accept(l, 0, 0);
    nodelay(s);
  }
  int frame = size + 4 * framed;
  // `buf` holds what was read past the message at hand (ipcx's framing
  // buffer); `body` is the caller's buffer.
  char *buf = malloc(frame + 8), *body = malloc(size);
  double t0 = now();
  long got = 0;
  int buffered = 0;
  for (;;) {
    if (!strcmp(rm, "exact") || !strcmp(rm, "frame")) {
      // read_exact of one message (or frame), as the raw baseline.
      int o = 0;
      while (o < frame) {
        ssize_t r = recv(s, buf + o, frame - o, 0);
        if (r <= 0) goto done;
        o += r;
      }
      if (!strcmp(rm, "frame")) {
        // ipcx's receive of a socket frame: the body copied out.
        memcpy(body, buf + 4, size);
        asm volatile("" ::: "memory");  // the copy is not optimised away
      }
      got++;
      continue;
    }
    // ipcx's receive before 2026-11-29, and on a pipe still
    // (ipc-backends/src/stream.rs, recv_frame): the header from the buffer, or a read of a frame as long as the last one and the
    // header after it; then what of the body is buffered is copied out,
    // and a rest of 1 KiB or more is read straight into the caller's buffer
    // with the next header into ours (`split`), a smaller one through ours.
    while (buffered < 4) {
      ssize_t r = recv(s, buf + buffered, 8 + size - buffered, 0);
      if (r <= 0) goto done;
      buffered += r;
    }
    int start = 4;
    buffered -= 4;
    int have = 0;
    while (have < size) {
      if (buffered > 0) {
        int take = size - have < buffered ? size - have : buffered;
        memcpy(body + have, buf + start, take);
        have += take, start += take, buffered -= take;
        continue;
      }
      int want = size - have;
      ssize_t r;
      if (want >= 1024 && !strcmp(rm, "split")) {
        struct iovec v[2] = {{body + have, want}, {buf, 4}};
        struct msghdr m = {.msg_iov = v, .msg_iovlen = 2};
        r = recvmsg(s, &m, 0);
        if (r <= 0) goto done;
        int b = r < want ? r : want;
        have += b, start = 0, buffered = r - b;
      } else {
        r = recv(s, buf, want + 4, 0);
        if (r <= 0) goto done;
        start = 0, buffered = r;
      }
    }
    memmove(buf, buf + start, buffered);
    got++;
  }
done:;
  double t = now() - t0;
  waitpid(w, 0, 0);
  struct rusage ru, rc;
  getrusage(RUSAGE_SELF, &ru);
  getrusage(RUSAGE_CHILDREN, &rc);
  double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec / 1e6 + rc.ru_utime.tv_sec + rc.ru_utime.tv_usec / 1e6 +
               rc.ru_stime.tv_sec + rc.ru_stime.tv_usec / 1e6;
  printf("size=%d send=%s recv=%s msgs/s=%.0f cpu/msg=%.2fus\n", size, sm, rm, got / t,
         cpu / got * 1e6);
  return 0;
}
