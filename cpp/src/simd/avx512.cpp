// AVX-512F kernels (built with -mavx512f -mfma; only called when the CPU has them).
#include <immintrin.h>

#include "kernels.h"

namespace adanns {
namespace simd {
namespace {

enum class Op { IP, L2 };

// Rows a single query's sweep prefetches ahead: far enough to cover a memory latency.
constexpr int kAhead = 12;

inline __mmask16 tail_mask(size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

template <Op op>
inline __m512 accumulate(__m512 acc, __m512 a, __m512 b) {
  if (op == Op::IP) return _mm512_fmadd_ps(a, b, acc);
  __m512 t = _mm512_sub_ps(a, b);
  return _mm512_fmadd_ps(t, t, acc);
}

// NQ queries x NX rows, one 16-lane accumulator per pair, masked tail, fixed reduction: each pair's
// sum is identical whatever tile it is computed in.
template <Op op, bool kNorm, int NQ, int NX>
inline void tile(const float* q, size_t qs, const float* x, size_t xs, size_t d, float* out,
                 size_t ldo, float* xn) {
  __m512 acc[NQ > 0 ? NQ : 1][NX];  // NQ == 0: norms only
  __m512 nacc[NX];
  for (int c = 0; c < NX; ++c) {
    nacc[c] = _mm512_setzero_ps();
    for (int r = 0; r < NQ; ++r) acc[r][c] = _mm512_setzero_ps();
  }
  size_t j = 0;
  for (; j + 16 <= d; j += 16) {
    __m512 xv[NX];
    for (int c = 0; c < NX; ++c) {
      // One query streams rows from memory once: ask for the rows NX ahead early (one line per
      // prefetch), which lifts a single core's bandwidth. Prefetches never fault past the end.
      if (NQ == 1) _mm_prefetch(reinterpret_cast<const char*>(x + (c + kAhead) * xs + j), _MM_HINT_T0);
      xv[c] = _mm512_loadu_ps(x + c * xs + j);
      if (kNorm) nacc[c] = _mm512_fmadd_ps(xv[c], xv[c], nacc[c]);
    }
    for (int r = 0; r < NQ; ++r) {
      __m512 qv = _mm512_loadu_ps(q + r * qs + j);
      for (int c = 0; c < NX; ++c) acc[r][c] = accumulate<op>(acc[r][c], qv, xv[c]);
    }
  }
  if (j < d) {
    __mmask16 m = tail_mask(d - j);
    __m512 xv[NX];
    for (int c = 0; c < NX; ++c) {
      xv[c] = _mm512_maskz_loadu_ps(m, x + c * xs + j);
      if (kNorm) nacc[c] = _mm512_fmadd_ps(xv[c], xv[c], nacc[c]);
    }
    for (int r = 0; r < NQ; ++r) {
      __m512 qv = _mm512_maskz_loadu_ps(m, q + r * qs + j);
      for (int c = 0; c < NX; ++c) acc[r][c] = accumulate<op>(acc[r][c], qv, xv[c]);
    }
  }
  for (int r = 0; r < NQ; ++r)
    for (int c = 0; c < NX; ++c) out[r * ldo + c] = _mm512_reduce_add_ps(acc[r][c]);
  if (kNorm)
    for (int c = 0; c < NX; ++c) xn[c] = _mm512_reduce_add_ps(nacc[c]);
}

// Runs tiles of NQ queries over all rows, NX rows at a time, with narrower tiles for the rest.
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
    row_sweep<op, kNorm, 1, 8>(q, qs, x, nx, xs, d, out, ldo, xn);
    return;
  }
  size_t i = 0;
  for (; i + 4 <= nq; i += 4) row_sweep<op, kNorm, 4, 4>(q + i * qs, qs, x, nx, xs, d, out + i * ldo, ldo, xn);
  for (; i < nq; ++i) row_sweep<op, kNorm, 1, 8>(q + i * qs, qs, x, nx, xs, d, out + i * ldo, ldo, xn);
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
  for (; j + 8 <= nx; j += 8) {
    float dummy[8];
    tile<Op::IP, true, 0, 8>(nullptr, 0, x + j * xs, xs, d, dummy, 0, out + j);
  }
  for (; j < nx; ++j) {
    float dummy[1];
    tile<Op::IP, true, 0, 1>(nullptr, 0, x + j * xs, xs, d, dummy, 0, out + j);
  }
}

// ---- GEMM: rows packed into panels of 32 (coordinate-major), 12 queries x 32 rows per micro-tile.
constexpr size_t kPanel = 32;
constexpr size_t kMR = 12;
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
  __m512 a0[MR], a1[MR];
  for (int r = 0; r < MR; ++r) a0[r] = a1[r] = _mm512_setzero_ps();
  for (size_t j = 0; j < du; ++j) {
    __m512 p0 = _mm512_loadu_ps(panel + j * kPanel);
    __m512 p1 = _mm512_loadu_ps(panel + j * kPanel + 16);
    for (int r = 0; r < MR; ++r) {
      __m512 b = _mm512_set1_ps(q[r * qs + j]);
      a0[r] = _mm512_fmadd_ps(b, p0, a0[r]);
      a1[r] = _mm512_fmadd_ps(b, p1, a1[r]);
    }
  }
  __mmask16 m0 = cols >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(cols);
  __mmask16 m1 = cols >= 32 ? static_cast<__mmask16>(0xFFFF) : (cols > 16 ? tail_mask(cols - 16) : 0);
  for (int r = 0; r < MR; ++r) {
    _mm512_mask_storeu_ps(out + r * ldo, m0, a0[r]);
    _mm512_mask_storeu_ps(out + r * ldo + 16, m1, a1[r]);
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

// 16 codes widened to floats per step (AVX-512F only: the tail is a masked float load and a
// zero-padded copy of the codes). Four accumulators: a graph walk scores one code at a time, so the
// FMA latency chain, not throughput, bounds the kernel.
float dot_u8(const float* q, const unsigned char* code, size_t d) {
  __m512 acc = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
         acc3 = _mm512_setzero_ps();
  size_t j = 0;
  auto widen = [&](size_t at) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(code + at))));
  };
  for (; j + 64 <= d; j += 64) {
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + j), widen(j), acc);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j + 16), widen(j + 16), acc1);
    acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j + 32), widen(j + 32), acc2);
    acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j + 48), widen(j + 48), acc3);
  }
  for (; j + 16 <= d; j += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + j), widen(j), acc);
  acc = _mm512_add_ps(_mm512_add_ps(acc, acc1), _mm512_add_ps(acc2, acc3));
  if (j < d) {
    unsigned char ct[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t t = 0; j + t < d; ++t) ct[t] = code[j + t];
    __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ct));
    __m512 qv = _mm512_maskz_loadu_ps(tail_mask(d - j), q + j);
    acc = _mm512_fmadd_ps(qv, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(c)), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

// One pair, four accumulators (64 coordinates per step), a masked tail.
template <Op op>
float pair(const float* a, const float* b, size_t d) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
         acc3 = _mm512_setzero_ps();
  size_t j = 0;
  for (; j + 64 <= d; j += 64) {
    acc0 = accumulate<op>(acc0, _mm512_loadu_ps(a + j), _mm512_loadu_ps(b + j));
    acc1 = accumulate<op>(acc1, _mm512_loadu_ps(a + j + 16), _mm512_loadu_ps(b + j + 16));
    acc2 = accumulate<op>(acc2, _mm512_loadu_ps(a + j + 32), _mm512_loadu_ps(b + j + 32));
    acc3 = accumulate<op>(acc3, _mm512_loadu_ps(a + j + 48), _mm512_loadu_ps(b + j + 48));
  }
  for (; j + 16 <= d; j += 16) acc0 = accumulate<op>(acc0, _mm512_loadu_ps(a + j), _mm512_loadu_ps(b + j));
  if (j < d) {
    __mmask16 m = tail_mask(d - j);
    acc1 = accumulate<op>(acc1, _mm512_maskz_loadu_ps(m, a + j), _mm512_maskz_loadu_ps(m, b + j));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

}  // namespace

const Kernels avx512_kernels = {block_ip, block_l2, block_ip_norm, norms_sq, pack_rows, gemm_packed, kPanel,
                                kRowsPerBlock, dot_u8, pair<Op::IP>, pair<Op::L2>};

}  // namespace simd
}  // namespace adanns
