#include "adanns/fastscan.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "adanns/common.h"
#include "simd/fastscan_kernels.h"

namespace adanns {

void fastscan_set_row(uint8_t* blocks, size_t m, size_t row, const uint8_t* code) {
  uint8_t* blk = blocks + (row / kFastScanBlock) * fastscan_block_bytes(m);
  const size_t r = row % kFastScanBlock;
  const unsigned shift = simd::fastscan_shift(r);
  const uint8_t keep = static_cast<uint8_t>(0xF0u >> shift);  // the other row's nibble
  for (size_t j = 0; j < m; ++j) {
    uint8_t& byte = blk[simd::fastscan_byte(r, j)];
    byte = static_cast<uint8_t>((byte & keep) | ((code[j] & 15u) << shift));
  }
}

uint8_t fastscan_get(const uint8_t* blocks, size_t m, size_t row, size_t j) {
  const uint8_t* blk = blocks + (row / kFastScanBlock) * fastscan_block_bytes(m);
  const size_t r = row % kFastScanBlock;
  return (blk[simd::fastscan_byte(r, j)] >> simd::fastscan_shift(r)) & 15;
}

std::vector<uint8_t> fastscan_pack(const uint8_t* codes, size_t n, size_t m) {
  std::vector<uint8_t> blocks(fastscan_blocks(n) * fastscan_block_bytes(m), 0);
  for (size_t i = 0; i < n; ++i) fastscan_set_row(blocks.data(), m, i, codes + i * m);
  return blocks;
}

void fastscan_quantize(const float* lut, size_t m, bool negate, FastScanLut* out) {
  // The sum of the m quantized maxima must fit in uint16: each rounds up by at most 1/2.
  ADANNS_CHECK(m >= 1 && m < 65535, "fast-scan needs 1 <= m < 65535, got ", m);
  const float sign = negate ? -1.f : 1.f;
  std::vector<float> lo(m);
  double max_range = 0, sum_range = 0, bias = 0;
  for (size_t j = 0; j < m; ++j) {
    float mn = sign * lut[j * 16], mx = mn;
    for (size_t c = 1; c < 16; ++c) {
      const float v = sign * lut[j * 16 + c];
      mn = std::min(mn, v);
      mx = std::max(mx, v);
    }
    lo[j] = mn;
    bias += mn;
    max_range = std::max(max_range, double(mx) - mn);
    sum_range += double(mx) - mn;
  }
  double scale = max_range > 0 ? 255.0 / max_range : 1.0;
  if (sum_range * scale > 65535.0 - m) scale = (65535.0 - m) / sum_range;
  out->table.assign(fastscan_pairs(m) * 32, 0);
  for (size_t j = 0; j < m; ++j)
    for (size_t c = 0; c < 16; ++c) {
      // Rounded half up (the value is >= 0): a truncation, where nearbyint is a library call
      // without SSE4.1.
      const double v = (double(sign * lut[j * 16 + c]) - lo[j]) * scale + 0.5;
      out->table[j * 16 + c] = static_cast<uint8_t>(std::min(255.0, std::max(0.0, v)));
    }
  out->inv_scale = static_cast<float>(1.0 / scale);
  out->bias = static_cast<float>(bias);
}

int32_t FastScanLut::max_sum_within(float threshold, float offset) const {
  if (!(threshold < std::numeric_limits<float>::infinity())) return 65535;
  // An estimate from the inverse map, then stepped until distance() itself agrees (it is
  // monotonic in the sum, so the sums that pass form a prefix).
  const double x = (double(threshold) - (double(offset) + bias)) / inv_scale;
  int32_t s = static_cast<int32_t>(std::max(-1.0, std::min(65535.0, std::floor(x))));
  while (s < 65535 && distance(static_cast<uint32_t>(s + 1), offset) <= threshold) ++s;
  while (s >= 0 && distance(static_cast<uint32_t>(s), offset) > threshold) --s;
  return s;
}

}  // namespace adanns
