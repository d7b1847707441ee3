/*
 * Two processes on one CPU take turns through a shared word, woken either
 * by a futex (FUTEX_WAIT/FUTEX_WAKE on the word) or by a System V
 * semaphore per direction (semop -1 to wait, +1 to wake): the wake-up
 * mechanism of the raw `sysv-shm(block)` bench baseline (futex) against
 * the one `sysv-shm:` used until it moved to futex words in its segment
 * (a System V semaphore set, as DESIGN.md specified; kept for the
 * figures in docs/benchmarks.md). CPU time per hand-off (user + system
 * of both processes).
 * Then, in one process, the pair of calls that does not sleep: a post and
 * a wait that returns at once (semop +1 then -1; FUTEX_WAKE with no
 * waiter then FUTEX_WAIT on a changed word), what the `sysv-shm(block)`
 * 4 KiB row makes once a message on one core, where the ring is full and
 * the sender's wait finds the receiver's post already made.
 *
 *   gcc -O2 ipcx-cli/scripts/semop_vs_futex.c -o /tmp/semop_vs_futex
 *   taskset -c 0 /tmp/semop_vs_futex 200000
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static _Atomic unsigned *turn; /* whose turn: 0 parent, 1 child */

static void fwait(_Atomic unsigned *w, unsigned v) {
  while (atomic_load(w) == v) syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0);
}
static void fwake(_Atomic unsigned *w) { syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0); }

static void sem_op(int id, int num, int op) {
  struct sembuf b = {.sem_num = num, .sem_op = op, .sem_flg = 0};
  while (semop(id, &b, 1) != 0) {
  }
}

static double cpu_us(void) {
  struct rusage a, c;
  getrusage(RUSAGE_SELF, &a);
  getrusage(RUSAGE_CHILDREN, &c);
  return (a.ru_utime.tv_sec + a.ru_stime.tv_sec + c.ru_utime.tv_sec + c.ru_stime.tv_sec) * 1e6 +
         a.ru_utime.tv_usec + a.ru_stime.tv_usec + c.ru_utime.tv_usec + c.ru_stime.tv_usec;
}

/* Futex hand-off: wait while it is the other's turn, pass the turn, wake. */
static double run_futex(long n) {
  atomic_store(turn, 0);
  double t0 = cpu_us();
  pid_t p = fork();
  unsigned me = p == 0 ? 1 : 0;
  for (long i = 0; i < n; i++) {
    while (atomic_load(turn) != me) fwait(turn, 1 - me);
    atomic_store(turn, 1 - me);
    fwake(turn);
  }
  if (p == 0) _exit(0);
  waitpid(p, NULL, 0);
  return (cpu_us() - t0) / (2.0 * n);
}

/* Semaphore hand-off: one semaphore per process, the parent's starting at 1. */
static double run_sem(long n) {
  int id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
  if (id < 0) {
    perror("semget");
    exit(1);
  }
  sem_op(id, 0, +1);
  double t0 = cpu_us();
  pid_t p = fork();
  int me = p == 0 ? 1 : 0;
  for (long i = 0; i < n; i++) {
    sem_op(id, me, -1);
    sem_op(id, 1 - me, +1);
  }
  if (p == 0) _exit(0);
  waitpid(p, NULL, 0);
  semctl(id, 0, IPC_RMID);
  return (cpu_us() - t0) / (2.0 * n);
}

/* Calls that return at once: post then wait, in one process. */
static void no_sleep(long n) {
  int id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
  if (id < 0) {
    perror("semget");
    exit(1);
  }
  double t0 = cpu_us();
  for (long i = 0; i < n; i++) {
    sem_op(id, 0, +1);
    sem_op(id, 0, -1);
  }
  double s = (cpu_us() - t0) / n;
  semctl(id, 0, IPC_RMID);
  atomic_store(turn, 1);
  t0 = cpu_us();
  for (long i = 0; i < n; i++) {
    fwake(turn);
    syscall(SYS_futex, turn, FUTEX_WAIT, 0, NULL, NULL, 0); /* 1 != 0: EAGAIN */
  }
  double f = (cpu_us() - t0) / n;
  printf("no sleep, CPU per post+wait pair: futex %.2f us, semop %.2f us (+%.2f)\n", f, s, s - f);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000;
  turn = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (turn == MAP_FAILED) return 1;
  for (int r = 0; r < 3; r++) no_sleep(n * 5);
  for (int r = 0; r < 3; r++) {
    double f = run_futex(n);
    double s = run_sem(n);
    printf("round %d: CPU per hand-off: futex %.2f us, semop %.2f us (+%.2f)\n", r, f, s, s - f);
  }
  return 0;
}
