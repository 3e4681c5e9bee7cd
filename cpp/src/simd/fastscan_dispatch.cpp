// Chooses the fast-scan kernel from the active SIMD level at every call (ADANNS_SIMD and
// set_simd_level apply). Byte shuffles and 16-bit adds on zmm registers are AVX512BW, which
// AVX-512F (all the avx512 level requires) does not imply: without it that level runs the AVX2 kernel.
#include "adanns/fastscan.h"
#include "adanns/simd.h"
#include "fastscan_kernels.h"

namespace adanns {

namespace {
bool cpu_has_avx512bw() {
#ifdef ADANNS_HAVE_X86_KERNELS
  __builtin_cpu_init();
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return has;
#else
  return false;
#endif
}

const simd::FastScanKernels& fastscan_kernels() {
#ifdef ADANNS_HAVE_X86_KERNELS
  switch (active_simd_level()) {
    case SimdLevel::AVX512:
      if (cpu_has_avx512bw()) return simd::fastscan_avx512_kernels;
      return simd::fastscan_avx2_kernels;
    case SimdLevel::AVX2:
      return simd::fastscan_avx2_kernels;
    case SimdLevel::Scalar:
      break;
  }
#endif
  return simd::fastscan_scalar_kernels;
}
}  // namespace

void fastscan_scan(const uint8_t* blocks, size_t nblocks, size_t m, const uint8_t* table, uint16_t threshold,
                   uint16_t* sums, uint32_t* masks) {
  fastscan_kernels().scan(blocks, nblocks, fastscan_pairs(m), 1, &table, &threshold, &sums, &masks);
}

void fastscan_scan_many(const uint8_t* blocks, size_t nblocks, size_t m, size_t nq, const uint8_t* const* tables,
                        const uint16_t* thresholds, uint16_t* const* sums, uint32_t* const* masks) {
  fastscan_kernels().scan(blocks, nblocks, fastscan_pairs(m), nq, tables, thresholds, sums, masks);
}

const char* fastscan_kernel_name() { return fastscan_kernels().name; }

}  // namespace adanns
