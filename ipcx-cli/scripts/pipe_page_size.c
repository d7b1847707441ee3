// A raw pipe writer and reader of fixed-size messages, to show what four
// bytes of framing cost when a message is exactly a page: run
//   gcc -O2 -o pp pipe_page_size.c && taskset -c 0 ./pp 4096 300000 && taskset -c 0 ./pp 4100 300000
// (docs/benchmarks.md, "Before and after, wall clock").
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <time.h>
#include <sys/wait.h>
int main(int argc,char**argv){int S=atoi(argv[1]);long N=atol(argv[2]);int fd[2];pipe(fd);
char*b=calloc(1,S);struct timespec a,z;clock_gettime(CLOCK_MONOTONIC,&a);
if(fork()==0){close(fd[0]);for(long i=0;i<N;i++){int o=0;while(o<S){int w=write(fd[1],b+o,S-o);o+=w;}}_exit(0);}
close(fd[1]);long got=0;for(;;){int o=0;while(o<S){int r=read(fd[0],b+o,S-o);if(r<=0)goto done;o+=r;}got++;}
done:wait(0);clock_gettime(CLOCK_MONOTONIC,&z);double t=(z.tv_sec-a.tv_sec)+(z.tv_nsec-a.tv_nsec)/1e9;printf("S=%d msgs/s=%.0f\n",S,got/t);}
