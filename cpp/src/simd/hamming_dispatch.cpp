// Chooses the Hamming kernel table from the active SIMD level at every call, so ADANNS_SIMD and
// set_simd_level apply as they do to the float kernels. VPOPCNTDQ is not implied by AVX-512F: the
// avx512 level uses it only when the CPU reports it, and otherwise falls back to the AVX2 table.
#include "adanns/hamming.h"

#include "adanns/simd.h"
#include "hamming_kernels.h"

namespace adanns {

bool cpu_has_vpopcntdq() {
#ifdef ADANNS_HAVE_X86_KERNELS
  __builtin_cpu_init();
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
  return has;
#else
  return false;
#endif
}

namespace simd {

const HammingKernels& hamming_kernels() {
#ifdef ADANNS_HAVE_X86_KERNELS
  switch (active_simd_level()) {
    case SimdLevel::AVX512:
      return cpu_has_vpopcntdq() ? hamming_avx512_kernels : hamming_avx2_kernels;
    case SimdLevel::AVX2:
      return hamming_avx2_kernels;
    case SimdLevel::Scalar:
      break;
  }
#endif
  return hamming_scalar_kernels;
}

}  // namespace simd

const char* hamming_kernel_name() { return simd::hamming_kernels().name; }

void hamming_distances(const uint64_t* q, const uint64_t* x, size_t nx, size_t x_stride, size_t nw,
                       const uint64_t* mask, int32_t* out) {
  simd::hamming_kernels().distances(q, x, nx, x_stride, nw, mask, out);
}

size_t select_le(const int32_t* d, size_t n, int32_t t, uint32_t* idx) {
  return simd::hamming_kernels().select_le(d, n, t, idx);
}

}  // namespace adanns
