// Portable fast-scan: the oracle. Reads every nibble through the layout helpers and adds table
// entries in plain integers; the SIMD kernels must return exactly these sums and masks.
#include "fastscan_kernels.h"

namespace adanns {
namespace simd {
namespace {

void scan_one(const uint8_t* blocks, size_t nblocks, size_t pairs, const uint8_t* table, uint16_t threshold,
              uint16_t* sums, uint32_t* masks) {
  const size_t block_bytes = pairs * 32, m2 = pairs * 2;
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* blk = blocks + b * block_bytes;
    uint32_t mask = 0;
    for (size_t r = 0; r < 32; ++r) {
      uint32_t s = 0;
      for (size_t j = 0; j < m2; ++j) s += table[j * 16 + ((blk[fastscan_byte(r, j)] >> fastscan_shift(r)) & 15)];
      sums[b * 32 + r] = static_cast<uint16_t>(s);
      if (s <= threshold) mask |= 1u << r;
    }
    masks[b] = mask;
  }
}

void scan(const uint8_t* blocks, size_t nblocks, size_t pairs, size_t nq, const uint8_t* const* tables,
          const uint16_t* thresholds, uint16_t* const* sums, uint32_t* const* masks) {
  for (size_t i = 0; i < nq; ++i) scan_one(blocks, nblocks, pairs, tables[i], thresholds[i], sums[i], masks[i]);
}

}  // namespace

const FastScanKernels fastscan_scalar_kernels = {scan, "scalar"};

}  // namespace simd
}  // namespace adanns
