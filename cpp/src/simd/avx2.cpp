// AVX2 + FMA kernels (built with -mavx2 -mfma; only called when the CPU has them).
#include <immintrin.h>

#include "kernels.h"

namespace adanns {
namespace simd {
namespace {

enum class Op { IP, L2 };

// Rows a single query's sweep prefetches ahead: far enough to cover a memory latency.
constexpr int kAhead = 12;

alignas(32) const int kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
inline __m256i tail_mask(size_t n) {  // first n lanes set, n in [0, 8]
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - n));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <Op op>
inline __m256 accumulate(__m256 acc, __m256 a, __m256 b) {
  if (op == Op::IP) return _mm256_fmadd_ps(a, b, acc);
  __m256 t = _mm256_sub_ps(a, b);
  return _mm256_fmadd_ps(t, t, acc);
}

// NQ queries x NX rows, one 8-lane accumulator per pair (see avx512.cpp for the invariant).
template <Op op, bool kNorm, int NQ, int NX>
inline void tile(const float* q, size_t qs, const float* x, size_t xs, size_t d, float* out,
                 size_t ldo, float* xn) {
  __m256 acc[NQ > 0 ? NQ : 1][NX];  // NQ == 0: norms only
  __m256 nacc[NX];
  for (int c = 0; c < NX; ++c) {
    nacc[c] = _mm256_setzero_ps();
    for (int r = 0; r < NQ; ++r) acc[r][c] = _mm256_setzero_ps();
  }
  size_t j = 0;
  for (; j + 8 <= d; j += 8) {
    __m256 xv[NX];
    for (int c = 0; c < NX; ++c) {
      // One query streams rows once: prefetch the rows kAhead ahead (see avx512.cpp); every other
      // chunk, so one prefetch per 64-byte line.
      if (NQ == 1 && (j & 8) == 0) _mm_prefetch(reinterpret_cast<const char*>(x + (c + kAhead) * xs + j), _MM_HINT_T0);
      xv[c] = _mm256_loadu_ps(x + c * xs + j);
      if (kNorm) nacc[c] = _mm256_fmadd_ps(xv[c], xv[c], nacc[c]);
    }
    for (int r = 0; r < NQ; ++r) {
      __m256 qv = _mm256_loadu_ps(q + r * qs + j);
      for (int c = 0; c < NX; ++c) acc[r][c] = accumulate<op>(acc[r][c], qv, xv[c]);
    }
  }
  if (j < d) {
    __m256i m = tail_mask(d - j);
    __m256 xv[NX];
    for (int c = 0; c < NX; ++c) {
      xv[c] = _mm256_maskload_ps(x + c * xs + j, m);
      if (kNorm) nacc[c] = _mm256_fmadd_ps(xv[c], xv[c], nacc[c]);
    }
    for (int r = 0; r < NQ; ++r) {
      __m256 qv = _mm256_maskload_ps(q + r * qs + j, m);
      for (int c = 0; c < NX; ++c) acc[r][c] = accumulate<op>(acc[r][c], qv, xv[c]);
    }
  }
  for (int r = 0; r < NQ; ++r)
    for (int c = 0; c < NX; ++c) out[r * ldo + c] = hsum(acc[r][c]);
  if (kNorm)
    for (int c = 0; c < NX; ++c) xn[c] = hsum(nacc[c]);
}

template <Op op, bool kNorm, int NQ, int NX>
inline void row_sweep(const float* q, size_t qs, const float* x, size_t nx, size_t xs, size_t d,
                      float* out, size_t ldo, float* xn) {
  size_t j = 0;
  for (; j + NX <= nx; j += NX)
    tile<op, kNorm, NQ, NX>(q, qs, x + j * xs, xs, d, out + j, ldo, xn ? xn + j : nullptr);
  for (; j < nx; ++j) tile<op, kNorm, NQ, 1>(q, qs, x + j * xs, xs, d, out + j, ldo, xn ? xn + j : nullptr);
}

template <Op op, bool kNorm>
void block(const float* q, size_t nq, size_t qs, const float* x, size_t nx, size_t xs, size_t d,
           float* out, size_t ldo, float* xn) {
  if (nq == 1) {
    row_sweep<op, kNorm, 1, 4>(q, qs, x, nx, xs, d, out, ldo, xn);
    return;
  }
  size_t i = 0;
  for (; i + 2 <= nq; i += 2) row_sweep<op, kNorm, 2, 4>(q + i * qs, qs, x, nx, xs, d, out + i * ldo, ldo, xn);
  for (; i < nq; ++i) row_sweep<op, kNorm, 1, 4>(q + i * qs, qs, x, nx, xs, d, out + i * ldo, ldo, xn);
}

void block_ip(const float* q, size_t nq, size_t qs, const float* x, size_t nx, size_t xs, size_t d,
              float* out, size_t ldo) {
  block<Op::IP, false>(q, nq, qs, x, nx, xs, d, out, ldo, nullptr);
}
void block_l2(const float* q, size_t nq, size_t qs, const float* x, size_t nx, size_t xs, size_t d,
              float* out, size_t ldo) {
  block<Op::L2, false>(q, nq, qs, x, nx, xs, d, out, ldo, nullptr);
}
void block_ip_norm(const float* q, size_t nq, size_t qs, const float* x, size_t nx, size_t xs,
                   size_t d, float* out, size_t ldo, float* xn) {
  block<Op::IP, true>(q, nq, qs, x, nx, xs, d, out, ldo, xn);
}

void norms_sq(const float* x, size_t nx, size_t xs, size_t d, float* out) {
  size_t j = 0;
  for (; j + 4 <= nx; j += 4) {
    float dummy[4];
    tile<Op::IP, true, 0, 4>(nullptr, 0, x + j * xs, xs, d, dummy, 0, out + j);
  }
  for (; j < nx; ++j) {
    float dummy[1];
    tile<Op::IP, true, 0, 1>(nullptr, 0, x + j * xs, xs, d, dummy, 0, out + j);
  }
}

// ---- GEMM: panels of 16 rows (coordinate-major), 6 queries x 16 rows per micro-tile.
constexpr size_t kPanel = 16;
constexpr size_t kMR = 6;
constexpr size_t kRowsPerBlock = 256;

void pack_panel(const float* x, size_t rows, size_t xs, size_t d, float* panel) {
  for (size_t c = rows; c < kPanel; ++c)
    for (size_t j = 0; j < d; ++j) panel[j * kPanel + c] = 0.f;
  for (size_t c = 0; c < rows; ++c) {
    const float* row = x + c * xs;
    for (size_t j = 0; j < d; ++j) panel[j * kPanel + c] = row[j];
  }
}

template <int MR>
inline void micro(const float* q, size_t qs, const float* panel, size_t du, float* out, size_t ldo,
                  size_t cols) {
  __m256 a0[MR], a1[MR];
  for (int r = 0; r < MR; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
  for (size_t j = 0; j < du; ++j) {
    __m256 p0 = _mm256_loadu_ps(panel + j * kPanel);
    __m256 p1 = _mm256_loadu_ps(panel + j * kPanel + 8);
    for (int r = 0; r < MR; ++r) {
      __m256 b = _mm256_broadcast_ss(q + r * qs + j);
      a0[r] = _mm256_fmadd_ps(b, p0, a0[r]);
      a1[r] = _mm256_fmadd_ps(b, p1, a1[r]);
    }
  }
  if (cols == kPanel) {
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_ps(out + r * ldo, a0[r]);
      _mm256_storeu_ps(out + r * ldo + 8, a1[r]);
    }
    return;
  }
  __m256i m0 = tail_mask(cols >= 8 ? 8 : cols);
  __m256i m1 = tail_mask(cols > 8 ? cols - 8 : 0);
  for (int r = 0; r < MR; ++r) {
    _mm256_maskstore_ps(out + r * ldo, m0, a0[r]);
    _mm256_maskstore_ps(out + r * ldo + 8, m1, a1[r]);
  }
}

template <int MR>
inline void micro_row(const float* q, size_t qs, const float* packed, size_t p0, size_t p1, size_t nx,
                      size_t pd, size_t du, float* out, size_t ldo) {
  for (size_t p = p0; p < p1; ++p) {
    size_t cols = nx - p * kPanel < kPanel ? nx - p * kPanel : kPanel;
    micro<MR>(q, qs, packed + p * kPanel * pd, du, out + p * kPanel, ldo, cols);
  }
}

void pack_rows(const float* x, size_t nx, size_t xs, size_t d, float* out) {
  for (size_t p = 0; p * kPanel < nx; ++p) {
    size_t r = nx - p * kPanel < kPanel ? nx - p * kPanel : kPanel;
    pack_panel(x + p * kPanel * xs, r, xs, d, out + p * kPanel * d);
  }
}

// Panels are visited in groups (kRowsPerBlock rows) that stay in L2 while every query block
// streams past them.
void gemm_packed(const float* q, size_t nq, size_t qs, const float* packed, size_t nx, size_t pd,
                 size_t du, float* out, size_t ldo) {
  const size_t npanels = (nx + kPanel - 1) / kPanel, group = kRowsPerBlock / kPanel;
  for (size_t g0 = 0; g0 < npanels; g0 += group) {
    size_t g1 = g0 + group < npanels ? g0 + group : npanels;
    size_t i = 0;
    for (; i + kMR <= nq; i += kMR) micro_row<kMR>(q + i * qs, qs, packed, g0, g1, nx, pd, du, out + i * ldo, ldo);
    for (; i < nq; ++i) micro_row<1>(q + i * qs, qs, packed, g0, g1, nx, pd, du, out + i * ldo, ldo);
  }
}

// 8 codes widened to floats per step; the tail goes through a zero-padded copy. Four accumulators:
// a graph walk scores one code at a time, so the FMA latency chain bounds the kernel.
float dot_u8(const float* q, const unsigned char* code, size_t d) {
  __m256 acc = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
         acc3 = _mm256_setzero_ps();
  size_t j = 0;
  auto widen = [&](size_t at) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(code + at))));
  };
  for (; j + 32 <= d; j += 32) {
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), widen(j), acc);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j + 8), widen(j + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j + 16), widen(j + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j + 24), widen(j + 24), acc3);
  }
  for (; j + 8 <= d; j += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), widen(j), acc);
  acc = _mm256_add_ps(_mm256_add_ps(acc, acc1), _mm256_add_ps(acc2, acc3));
  if (j < d) {
    alignas(32) float qt[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    unsigned char ct[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t t = 0; j + t < d; ++t) {
      qt[t] = q[j + t];
      ct[t] = code[j + t];
    }
    __m128i c = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(ct));
    acc = _mm256_fmadd_ps(_mm256_load_ps(qt), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c)), acc);
  }
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One pair, four accumulators (32 coordinates per step), a masked tail.
template <Op op>
float pair(const float* a, const float* b, size_t d) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
         acc3 = _mm256_setzero_ps();
  size_t j = 0;
  for (; j + 32 <= d; j += 32) {
    acc0 = accumulate<op>(acc0, _mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j));
    acc1 = accumulate<op>(acc1, _mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8));
    acc2 = accumulate<op>(acc2, _mm256_loadu_ps(a + j + 16), _mm256_loadu_ps(b + j + 16));
    acc3 = accumulate<op>(acc3, _mm256_loadu_ps(a + j + 24), _mm256_loadu_ps(b + j + 24));
  }
  for (; j + 8 <= d; j += 8) acc0 = accumulate<op>(acc0, _mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j));
  if (j < d) {
    __m256i m = tail_mask(d - j);
    acc1 = accumulate<op>(acc1, _mm256_maskload_ps(a + j, m), _mm256_maskload_ps(b + j, m));
  }
  return hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

}  // namespace

const Kernels avx2_kernels = {block_ip, block_l2, block_ip_norm, norms_sq, pack_rows, gemm_packed, kPanel,
                              kRowsPerBlock, dot_u8, pair<Op::IP>, pair<Op::L2>};

}  // namespace simd
}  // namespace adanns
