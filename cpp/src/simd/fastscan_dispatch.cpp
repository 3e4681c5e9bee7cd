// Chooses the fast-scan kernel from the active SIMD level at every call (ADANNS_SIMD and
// set_simd_level apply). The avx512 level runs the AVX2 kernel: a zmm (AVX512BW) version was
// written but never run on an AVX-512 machine, so it is not shipped.
#include "adanns/fastscan.h"
#include "adanns/simd.h"
#include "fastscan_kernels.h"

namespace adanns {

namespace {
const simd::FastScanKernels& fastscan_kernels() {
#ifdef ADANNS_HAVE_X86_KERNELS
  switch (active_simd_level()) {
    case SimdLevel::AVX512:
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
