// The fast-scan kernel one SIMD level provides (layout and contract in fastscan.h). As kernels.h:
// no STL here, so nothing compiled with ISA flags leaks into shared code.
#pragma once

#include <cstddef>
#include <cstdint>

namespace adanns {
namespace simd {

// nq queries over the same blocks (each block's codes are loaded once for all of them): query i has
// tables[i], thresholds[i] and writes sums[i] (nblocks x 32) and masks[i] (nblocks).
using FastScanFn = void (*)(const uint8_t* blocks, size_t nblocks, size_t pairs, size_t nq,
                            const uint8_t* const* tables, const uint16_t* thresholds, uint16_t* const* sums,
                            uint32_t* const* masks);

struct FastScanKernels {
  FastScanFn scan;
  const char* name;
};

extern const FastScanKernels fastscan_scalar_kernels;
#ifdef ADANNS_HAVE_X86_KERNELS
extern const FastScanKernels fastscan_avx2_kernels;
extern const FastScanKernels fastscan_avx512_kernels;  // needs AVX512BW
#endif

// Where the nibble of (row r of a block, sub-quantizer j) lives: byte offset in the block and
// shift (0: low nibble, 4: high). The one statement of the layout (fastscan.h).
inline size_t fastscan_byte(size_t r, size_t j) {
  const size_t rr = r & 15;
  return (j >> 1) * 32 + (j & 1) * 16 + 2 * (rr & 7) + (rr >> 3);
}
inline unsigned fastscan_shift(size_t r) { return r >= 16 ? 4u : 0u; }

}  // namespace simd
}  // namespace adanns
