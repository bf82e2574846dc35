/*
 * OpenBLAS side of `npm run bench -- --compare`: cblas_sgemm (row-major, C = A B, A (m, k),
 * B (k, n), float32) timed in a loop. Compiled at bench time by scripts/lib/openblas-runner.js
 * with `cc -O2 openblas_gemm.c -lopenblas` (only where libopenblas is installed; OpenBLAS is
 * never a dependency of braintrace). Threads: OPENBLAS_NUM_THREADS, read by OpenBLAS.
 *
 * Protocol: the first stdout line is a JSON object with the library's configuration; then
 * one request per stdin line, "m n k reps", answered by one JSON line
 * {"seconds": wall s per sgemm, "cpuSeconds": process CPU s per sgemm}. Buffers are allocated
 * (and one warm-up call made) at the first request of a shape and reused.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Declared by OpenBLAS's cblas.h; repeated here in case another cblas.h is found first. */
extern char* openblas_get_config(void);
extern char* openblas_get_corename(void);
extern int openblas_get_num_threads(void);

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float* p, long n, unsigned seed) {
  for (long i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)(seed >> 8) / 16777216.0f;
  }
}

int main(void) {
  printf("{\"config\": \"%s\", \"corename\": \"%s\", \"threads\": %d}\n", openblas_get_config(),
         openblas_get_corename(), openblas_get_num_threads());
  fflush(stdout);
  long cm = 0, cn = 0, ck = 0;
  float *a = NULL, *b = NULL, *c = NULL;
  char line[256];
  while (fgets(line, sizeof line, stdin) != NULL) {
    long m, n, k, reps;
    if (sscanf(line, "%ld %ld %ld %ld", &m, &n, &k, &reps) != 4 || m < 1 || n < 1 || k < 1 || reps < 1 ||
        m > 65536 || n > 65536 || k > 65536) {
      printf("{\"error\": \"expected 'm n k reps' (positive, sizes <= 65536)\"}\n");
      fflush(stdout);
      continue;
    }
    if (m != cm || n != cn || k != ck) {
      free(a);
      free(b);
      free(c);
      a = malloc(sizeof(float) * (size_t)(m * k));
      b = malloc(sizeof(float) * (size_t)(k * n));
      c = malloc(sizeof(float) * (size_t)(m * n));
      if (a == NULL || b == NULL || c == NULL) {
        printf("{\"error\": \"out of memory\"}\n");
        fflush(stdout);
        free(a);
        free(b);
        free(c);
        a = b = c = NULL;
        cm = cn = ck = 0;
        continue;
      }
      fill(a, m * k, 1);
      fill(b, k * n, 2);
      memset(c, 0, sizeof(float) * (size_t)(m * n));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
      cm = m;
      cn = n;
      ck = k;
    }
    const double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), t0 = clock_s(CLOCK_MONOTONIC);
    for (long r = 0; r < reps; r++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    const double wall = clock_s(CLOCK_MONOTONIC) - t0, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("{\"seconds\": %.9g, \"cpuSeconds\": %.9g, \"check\": %.6g}\n", wall / (double)reps, cpu / (double)reps,
           (double)c[0]);
    fflush(stdout);
  }
  free(a);
  free(b);
  free(c);
  return 0;
}
