// AVX-512 Hamming kernels (built with -mavx512f -mavx512vpopcntdq; used only when the CPU has
// VPOPCNTDQ). Eight codes are finished at a time: their per-word counts are folded by a tree of
// even/odd lane permutes, so no code needs a horizontal reduction of its own.
#include <immintrin.h>

#include "hamming_kernels.h"

namespace adanns {
namespace simd {
namespace {

// Lanes [a0+a1, a2+a3, a4+a5, a6+a7, b0+b1, b2+b3, b4+b5, b6+b7].
inline __m512i pair_sum(__m512i a, __m512i b) {
  const __m512i ev = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i od = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
  return _mm512_add_epi64(_mm512_permutex2var_epi64(a, ev, b), _mm512_permutex2var_epi64(a, od, b));
}

inline __m512i count(__m512i q, __m512i x, __m512i m, bool masked) {
  __m512i v = _mm512_xor_si512(q, x);
  if (masked) v = _mm512_and_si512(v, m);
  return _mm512_popcnt_epi64(v);
}

inline void store8(int32_t* out, __m512i counts) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_cvtepi64_epi32(counts));
}

inline __mmask8 word_mask(size_t n) { return static_cast<__mmask8>((1u << n) - 1u); }

// Codes of g in {1, 2, 4} words stored back to back: 8 / g codes per register.
template <int g>
void packed(const uint64_t* q, const uint64_t* x, size_t nx, const uint64_t* mask, int32_t* out) {
  uint64_t qt[8], mt[8];
  for (int i = 0; i < 8; ++i) {
    qt[i] = q[i % g];
    mt[i] = mask ? mask[i % g] : ~0ull;
  }
  const __m512i qv = _mm512_loadu_si512(qt), mv = _mm512_loadu_si512(mt);
  const bool masked = mask != nullptr;
  size_t j = 0;
  for (; j + 8 <= nx; j += 8) {
    const uint64_t* r = x + j * g;
    __m512i c[g];
    for (int v = 0; v < g; ++v) c[v] = count(qv, _mm512_loadu_si512(r + 8 * v), mv, masked);
    if (g == 4) {
      c[0] = pair_sum(c[0], c[1]);
      c[1] = pair_sum(c[2], c[3]);
    }
    if (g >= 2) c[0] = pair_sum(c[0], c[1]);
    store8(out + j, c[0]);
  }
  for (; j < nx; ++j) {  // tail codes one at a time
    __m512i v = count(qv, _mm512_maskz_loadu_epi64(word_mask(g), x + j * g), mv, masked);
    out[j] = static_cast<int32_t>(_mm512_reduce_add_epi64(_mm512_maskz_mov_epi64(word_mask(g), v)));
  }
}

// One code's per-lane counts over all its words (chunks of 8 words, the last one masked).
inline __m512i code_counts(const uint64_t* q, const uint64_t* r, size_t nw, const uint64_t* mask) {
  __m512i acc = _mm512_setzero_si512();
  size_t w = 0;
  for (; w + 8 <= nw; w += 8) {
    __m512i m = mask ? _mm512_loadu_si512(mask + w) : _mm512_set1_epi64(-1);
    acc = _mm512_add_epi64(acc, count(_mm512_loadu_si512(q + w), _mm512_loadu_si512(r + w), m, mask != nullptr));
  }
  if (w < nw) {
    __mmask8 k = word_mask(nw - w);
    __m512i m = mask ? _mm512_maskz_loadu_epi64(k, mask + w) : _mm512_set1_epi64(-1);
    acc = _mm512_add_epi64(acc, count(_mm512_maskz_loadu_epi64(k, q + w), _mm512_maskz_loadu_epi64(k, r + w), m,
                                      mask != nullptr));
  }
  return acc;
}

// Any width and stride: eight codes at a time, chunk by chunk (query chunk loaded once, eight
// accumulators in registers), then folded by the permute tree.
template <bool kMasked>
void general(const uint64_t* q, const uint64_t* x, size_t nx, size_t xs, size_t nw, const uint64_t* mask,
             int32_t* out) {
  const size_t full = nw / 8 * 8;
  const __mmask8 tail = word_mask(nw - full);
  const __m512i ones = _mm512_set1_epi64(-1);
  size_t j = 0;
  for (; j + 8 <= nx; j += 8) {
    const uint64_t* r = x + j * xs;
    __m512i acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm512_setzero_si512();
    for (size_t w = 0; w < full; w += 8) {
      const __m512i qv = _mm512_loadu_si512(q + w);
      const __m512i mv = kMasked ? _mm512_loadu_si512(mask + w) : ones;
      for (int i = 0; i < 8; ++i)
        acc[i] = _mm512_add_epi64(acc[i], count(qv, _mm512_loadu_si512(r + i * xs + w), mv, kMasked));
    }
    if (tail) {
      const __m512i qv = _mm512_maskz_loadu_epi64(tail, q + full);
      const __m512i mv = kMasked ? _mm512_maskz_loadu_epi64(tail, mask + full) : ones;
      for (int i = 0; i < 8; ++i)
        acc[i] = _mm512_add_epi64(acc[i], count(qv, _mm512_maskz_loadu_epi64(tail, r + i * xs + full), mv, kMasked));
    }
    __m512i a = pair_sum(pair_sum(acc[0], acc[1]), pair_sum(acc[2], acc[3]));
    __m512i b = pair_sum(pair_sum(acc[4], acc[5]), pair_sum(acc[6], acc[7]));
    store8(out + j, pair_sum(a, b));
  }
  for (; j < nx; ++j) out[j] = static_cast<int32_t>(_mm512_reduce_add_epi64(code_counts(q, x + j * xs, nw, mask)));
}

// One-word prefixes of wider rows: gather the first word of eight rows.
void gathered1(const uint64_t* q, const uint64_t* x, size_t nx, size_t xs, const uint64_t* mask, int32_t* out) {
  const __m512i qv = _mm512_set1_epi64(static_cast<long long>(q[0]));
  const __m512i mv = _mm512_set1_epi64(static_cast<long long>(mask ? mask[0] : ~0ull));
  const long long s = static_cast<long long>(xs);
  const __m512i idx = _mm512_setr_epi64(0, s, 2 * s, 3 * s, 4 * s, 5 * s, 6 * s, 7 * s);
  size_t j = 0;
  for (; j + 8 <= nx; j += 8) {
    __m512i v = _mm512_i64gather_epi64(idx, reinterpret_cast<const long long*>(x + j * xs), 8);
    store8(out + j, count(qv, v, mv, mask != nullptr));
  }
  for (; j < nx; ++j)
    out[j] = static_cast<int32_t>(_mm_popcnt_u64((q[0] ^ x[j * xs]) & (mask ? mask[0] : ~0ull)));
}

void distances(const uint64_t* q, const uint64_t* x, size_t nx, size_t xs, size_t nw, const uint64_t* mask,
               int32_t* out) {
  if (xs == nw && nw == 1) return packed<1>(q, x, nx, mask, out);
  if (xs == nw && nw == 2) return packed<2>(q, x, nx, mask, out);
  if (xs == nw && nw == 4) return packed<4>(q, x, nx, mask, out);
  if (nw == 1) return gathered1(q, x, nx, xs, mask, out);
  if (mask)
    general<true>(q, x, nx, xs, nw, mask, out);
  else
    general<false>(q, x, nx, xs, nw, mask, out);
}

size_t select_le(const int32_t* d, size_t n, int32_t t, uint32_t* idx) {
  const __m512i tv = _mm512_set1_epi32(t);
  __m512i pos = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step = _mm512_set1_epi32(16);
  size_t m = 0, j = 0;
  for (; j + 16 <= n; j += 16) {
    __mmask16 k = _mm512_cmple_epi32_mask(_mm512_loadu_si512(d + j), tv);
    if (k) {
      _mm512_mask_compressstoreu_epi32(idx + m, k, pos);
      m += static_cast<size_t>(__builtin_popcount(k));
    }
    pos = _mm512_add_epi32(pos, step);
  }
  for (; j < n; ++j)
    if (d[j] <= t) idx[m++] = static_cast<uint32_t>(j);
  return m;
}

}  // namespace

const HammingKernels hamming_avx512_kernels = {distances, select_le, "avx512-vpopcntdq"};

}  // namespace simd
}  // namespace adanns
