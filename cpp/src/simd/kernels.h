// The table of kernels one SIMD level provides. Each per-ISA file fills one table; dispatch.cpp picks
// the active table once. Kept free of the STL so that nothing compiled with ISA flags can leak into
// code shared with other levels (inline functions are merged by the linker).
#pragma once

#include <cstddef>

namespace adanns {
namespace simd {

using BlockFn = void (*)(const float* q, size_t nq, size_t q_stride, const float* x, size_t nx,
                         size_t x_stride, size_t d, float* out, size_t ldo);
using BlockNormFn = void (*)(const float* q, size_t nq, size_t q_stride, const float* x, size_t nx,
                             size_t x_stride, size_t d, float* out, size_t ldo, float* x_norm_sq);
using NormsFn = void (*)(const float* x, size_t nx, size_t x_stride, size_t d, float* out);
// Packs nx rows (first d coordinates) into ceil(nx / panel_rows) panels of d x panel_rows floats,
// coordinate-major, zero-padded.
using PackFn = void (*)(const float* x, size_t nx, size_t x_stride, size_t d, float* out);
// out[i * ldo + j] = <q_i[:du], row_j[:du]> for rows packed with depth pd >= du.
using GemmPackedFn = void (*)(const float* q, size_t nq, size_t q_stride, const float* packed,
                              size_t nx, size_t pd, size_t du, float* out, size_t ldo);
// sum_j q[j] * code[j] over d coordinates: a float query against one row of 8-bit codes (SQ8).
using DotU8Fn = float (*)(const float* q, const unsigned char* code, size_t d);
// <a, b> or |a - b|^2 over d coordinates for one pair of rows (a graph walk scores one node at a
// time; the block kernels' one accumulator per pair is a latency chain there).
using PairFn = float (*)(const float* a, const float* b, size_t d);

struct Kernels {
  BlockFn block_ip;
  BlockFn block_l2;
  BlockNormFn block_ip_norm;
  NormsFn norms_sq;
  PackFn pack_rows;
  GemmPackedFn gemm_packed;
  size_t panel_rows;
  size_t gemm_rows_per_block;  // rows gemm_ip packs at a time (a multiple of panel_rows)
  DotU8Fn dot_u8;
  PairFn pair_ip;
  PairFn pair_l2;
};

// The active level's table (dispatch.cpp).
const Kernels& kernels();

extern const Kernels scalar_kernels;
#ifdef ADANNS_HAVE_X86_KERNELS
extern const Kernels avx2_kernels;
extern const Kernels avx512_kernels;
#endif

}  // namespace simd
}  // namespace adanns
