// Native reference for bench/gemm.ts: the BLIS-style algorithm of asm/kernels/gemm.ts (B packed into 8-wide
// panels, KC = 256, NC = 512) with the register tile native code affords: A read in place with broadcast
// loads into 6×8 128-bit FMA accumulators (the wasm kernel's tile is 5×8, for Deno's bounds-checked loads:
// see tile() there), compiled by the machine's C compiler. It bounds what 128-bit SIMD can do here.
//
//   gcc -O3 -mavx -mfma -o gemm_ref gemm_ref.c   (128-bit intrinsics only: width-matched)
//   echo "nt 256 896 896 0.1" | ./gemm_ref      # op M N K seconds → one timed run: GFLOP/s
//
// bench/gemm.ts keeps one process open and asks for one measurement at a time, interleaved with its own,
// and takes the median over rounds.
//
// Ops as in the kernels: nt C = A·Bᵀ (B [N,K]); nn C = A·B (B [K,N]); tn C = Aᵀ·B (A [K,M]).
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MR 6
#define NR 8
#define KC 256
#define NC 512

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static inline void ukernel(int kc, const float *a, long ai, long ak, const float *b, long bk, float *c, long ldc,
                           int acc) {
  __m128 c00 = _mm_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m128 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int k = 0; k < kc; k++) {
    __m128 b0 = _mm_loadu_ps(b), b1 = _mm_loadu_ps(b + 4), x;
    x = _mm_broadcast_ss(a); c00 = _mm_fmadd_ps(x, b0, c00); c01 = _mm_fmadd_ps(x, b1, c01);
    x = _mm_broadcast_ss(a + ai); c10 = _mm_fmadd_ps(x, b0, c10); c11 = _mm_fmadd_ps(x, b1, c11);
    x = _mm_broadcast_ss(a + 2 * ai); c20 = _mm_fmadd_ps(x, b0, c20); c21 = _mm_fmadd_ps(x, b1, c21);
    x = _mm_broadcast_ss(a + 3 * ai); c30 = _mm_fmadd_ps(x, b0, c30); c31 = _mm_fmadd_ps(x, b1, c31);
    x = _mm_broadcast_ss(a + 4 * ai); c40 = _mm_fmadd_ps(x, b0, c40); c41 = _mm_fmadd_ps(x, b1, c41);
    x = _mm_broadcast_ss(a + 5 * ai); c50 = _mm_fmadd_ps(x, b0, c50); c51 = _mm_fmadd_ps(x, b1, c51);
    a += ak;
    b += bk;
  }
  __m128 r[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
  for (int i = 0; i < MR; i++) {
    float *cp = c + i * ldc;
    if (acc) {
      _mm_storeu_ps(cp, _mm_add_ps(_mm_loadu_ps(cp), r[2 * i]));
      _mm_storeu_ps(cp + 4, _mm_add_ps(_mm_loadu_ps(cp + 4), r[2 * i + 1]));
    } else {
      _mm_storeu_ps(cp, r[2 * i]);
      _mm_storeu_ps(cp + 4, r[2 * i + 1]);
    }
  }
}

// M multiple of MR and N multiple of NR (the benchmark's shapes are); enough for a speed reference.
static void gemm(char op, int M, int N, int K, const float *A, const float *B, float *C, float *bp) {
  long ai = op == 't' ? 1 : K, ak = op == 't' ? M : 1;
  int direct = op == 'N' || op == 'T';  // nn / tn with f32 B read B in place, like the wasm kernel
  for (int jc = 0; jc < N; jc += NC) {
    int nc = N - jc < NC ? N - jc : NC;
    for (int pc = 0; pc < K; pc += KC) {
      int kc = K - pc < KC ? K - pc : KC;
      const float *bb;
      long bk, bpanel;
      if (direct) {
        bb = B + (long)pc * N + jc; bk = N; bpanel = NR;
      } else {  // nt: pack B[jc.., pc..] into panels [k][NR]
        for (int jr = 0; jr < nc; jr += NR)
          for (int k = 0; k < kc; k++)
            for (int j = 0; j < NR; j++) bp[(long)jr * kc + k * NR + j] = B[(long)(jc + jr + j) * K + pc + k];
        bb = bp; bk = NR; bpanel = (long)kc * NR;
      }
      for (int jr = 0; jr < nc; jr += NR)
        for (int i = 0; i + MR <= M; i += MR)
          ukernel(kc, A + i * ai + pc * ak, ai, ak, bb + (jr / NR) * bpanel, bk, C + (long)i * N + jc + jr, N, pc > 0);
    }
  }
}

int main(void) {
  char op[8];
  int M, N, K;
  double secs;
  float *bp = aligned_alloc(64, sizeof(float) * KC * NC);
  while (scanf("%7s %d %d %d %lf", op, &M, &N, &K, &secs) == 5) {
    M -= M % MR; N -= N % NR;
    float *A = aligned_alloc(64, sizeof(float) * ((long)M * K + 64));
    float *B = aligned_alloc(64, sizeof(float) * ((long)N * K + 64));
    float *C = aligned_alloc(64, sizeof(float) * ((long)M * N + 64));
    for (long i = 0; i < (long)M * K; i++) A[i] = (float)((i * 7) % 13) * 0.1f - 0.6f;
    for (long i = 0; i < (long)N * K; i++) B[i] = (float)((i * 5) % 11) * 0.1f - 0.5f;
    char o = strcmp(op, "nt") == 0 ? 'n' : strcmp(op, "nn") == 0 ? 'N' : 'T';
    gemm(o, M, N, K, A, B, C, bp);  // warm-up
    double t0 = now(), t;
    long n = 0;
    do { gemm(o, M, N, K, A, B, C, bp); n++; t = now() - t0; } while (t < secs);
    printf("%.3f\n", 2.0 * M * N * K * n / t / 1e9);
    fflush(stdout);
    free(A); free(B); free(C);
  }
  return 0;
}
