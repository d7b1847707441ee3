#!/bin/bash
# Per-message cost of one `ipcx bench` throughput row, ipcx or its raw
# baseline, under an instrument that does not depend on the machine's
# load: the two benchmark peers are started directly (the way `ipcx
# bench` starts them) and wrapped in the instrument.
#
#   msg-cost.sh BIN ROW TARGET SIZE PIN BUDGET_MS TOOL OUT
#
#   BIN     the `ipcx` binary (a release build)
#   ROW     pipe | fifo | mq | sysv-mq | unix | tcp | shm(block) | shm(spin)
#           | shm(loan)
#           | sysv-shm(block) | sysv-shm(spin)
#   TARGET  ipcx | raw
#   PIN     same | cross
#   TOOL    none | callgrind | strace | perf | profile
#   OUT     prefix of the files written
#
# callgrind counts only the client's send loop and the server's receive
# loop (--toggle-collect), in OUT.*.cg; divide by the `samples=` the
# client prints (OUT.out). strace -c -f writes OUT.*.strace, perf stat
# (task-clock, context switches, and system calls by tracepoint:
# all, futex, semtimedop, semctl, and any events listed in PERFEV, e.g.
# PERFEV=syscalls:sys_enter_recvmsg) OUT.*.perf. profile samples where
# each peer's CPU time goes, kernel included (perf record of the
# cpu-clock event), into OUT.*.data: read it with
#   perf report -i OUT.server.data --sort sym --stdio
# LOANWAIT=block runs the shm(loan) row with wait=block, whose counts
# leave out the polling that wait=spin adds while a ring is full or
# empty.
set -u
BIN=$1 LABEL=$2 TARGET=$3 SIZE=$4 PIN=$5 BUDGET=$6 TOOL=$7 OUT=$8
case $PIN in same) SC=0; CC=0;; cross) SC=1; CC=0;; *) SC=-; CC=-;; esac
case $LABEL in
  pipe) ADDR="pipe:";;
  fifo) ADDR="fifo:/tmp/msg-cost-f-$$";;
  mq) ADDR="mq:/msg-cost-q-$$";;
  sysv-mq) ADDR="sysv-mq:/tmp/msg-cost-v-$$";;
  unix) ADDR="unix:/tmp/msg-cost-u-$$.sock";;
  tcp) ADDR="tcp://127.0.0.1:0";;
  "shm("*) W=${LABEL#shm(}; W=${W%)}; [ "$W" = loan ] && W=${LOANWAIT:-spin}
    ADDR="shm:/msg-cost-m-$$?wait=$W&capacity=4194304&max_message_size=1048576";;
  "sysv-shm("*) W=${LABEL#sysv-shm(}; W=${W%)}
    ADDR="sysv-shm:/tmp/msg-cost-s-$$?wait=$W&capacity=4194304&max_message_size=1048576";;
  *) echo "unknown row $LABEL" >&2; exit 2;;
esac
cfg() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$LABEL" "$TARGET" "$1" throughput "$SIZE" "$BUDGET" "$2" "$3"; }
wrap() {
  case $TOOL in
    none) echo "";;
    callgrind)
      if [ "$1" = server ]; then t='*measure::serve*'; else t='*measure::throughput*'; fi
      echo "valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=$OUT.$1.%p.cg --toggle-collect=$t";;
    strace) echo "strace -c -f -o $OUT.$1.strace";;
    perf) echo "perf stat -e task-clock,context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_semtimedop,syscalls:sys_enter_semctl${PERFEV:+,$PERFEV} -x, -o $OUT.$1.perf";;
    profile) echo "perf record -q -e cpu-clock -F 20000 -o $OUT.$1.data";;
  esac
}
SCFG=$(cfg server $SC "$ADDR")
if [ "$LABEL" = pipe ]; then
  # The server starts the client itself: one wrapped process tree.
  CCFG=$(cfg client $CC "$ADDR")
  case $TOOL in
    callgrind) W="valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=$OUT.%p.cg --toggle-collect=*measure::serve* --toggle-collect=*measure::throughput*";;
    strace) W="strace -c -f -o $OUT.all.strace";;
    perf) W="perf stat -e task-clock,context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_semtimedop,syscalls:sys_enter_semctl${PERFEV:+,$PERFEV} -x, -o $OUT.all.perf";;
    profile) W="perf record -q -e cpu-clock -F 20000 -o $OUT.all.data";;
    *) W="";;
  esac
  IPCX_BENCH_CLIENT="$CCFG" IPCX_BENCH_PEER="$SCFG" $W "$BIN" bench </dev/null >"$OUT.out" 2>"$OUT.err"
  cat "$OUT.out"
  exit
fi
coproc SRV { IPCX_BENCH_PEER="$SCFG" $(wrap server) "$BIN" bench </dev/null 2>"$OUT.server.err"; }
read -r line <&"${SRV[0]}"
CCFG=$(cfg client $CC "${line#READY }")
IPCX_BENCH_PEER="$CCFG" $(wrap client) "$BIN" bench </dev/null >"$OUT.out" 2>"$OUT.client.err"
wait
cat "$OUT.out"
