// 4-bit fast-scan: ADC over 16-centroid codes with the lookup tables in SIMD registers.
//
// Layout. Rows are grouped in blocks of 32; a block holds, for each pair of sub-quantizers
// (2p, 2p+1), 32 bytes: bytes 0-15 carry sub-quantizer 2p, bytes 16-31 sub-quantizer 2p+1 (one
// 128-bit lane each, the unit a byte shuffle looks up in). Within a lane, byte b = 2e + o carries row
// e + 8o in its low nibble and row 16 + e + 8o in its high nibble, so that the even/odd bytes of
// the 16-bit accumulators come out as rows 0-7 / 8-15 (low nibbles) and 16-23 / 24-31 (high):
// in row order with no final shuffle. An odd m is padded with a zero sub-quantizer (code 0, table
// of zeros); rows past the end of the last block are code 0 and their sums are ignored.
//
// Tables. The float table of each query (smaller = better: ip tables are negated) is quantized to
// uint8 with one shared scale and a per-sub-quantizer bias (its minimum), so that the sum of the m
// table maxima fits in uint16 and the kernels add in 16-bit integers. Integer sums are exact, so
// every SIMD level returns the scalar oracle's sums bit for bit. Each sum approximates the float
// ADC distance within m / (2 * scale) (one rounding of at most half a step per term).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace adanns {

constexpr size_t kFastScanBlock = 32;  // rows per block

// Sub-quantizer pairs (m rounded up to even, halved) and bytes per block of 32 rows.
inline size_t fastscan_pairs(size_t m) { return (m + 1) / 2; }
inline size_t fastscan_block_bytes(size_t m) { return fastscan_pairs(m) * 32; }
inline size_t fastscan_blocks(size_t n) { return (n + kFastScanBlock - 1) / kFastScanBlock; }

// Writes the m codes (each < 16) of `row` into the blocked array (which must already hold the
// row's block); the other rows' nibbles are untouched.
void fastscan_set_row(uint8_t* blocks, size_t m, size_t row, const uint8_t* code);
// Code j of `row` read back from the blocked array.
uint8_t fastscan_get(const uint8_t* blocks, size_t m, size_t row, size_t j);
// The blocked array of n rows of plain codes (n x m bytes, each < 16): fastscan_blocks(n) blocks.
std::vector<uint8_t> fastscan_pack(const uint8_t* codes, size_t n, size_t m);

// A quantized query table: pairs x 32 bytes (table j at j * 16; the padding table is zeros), and
// the map back to float: distance ~= bias + sum * inv_scale.
struct FastScanLut {
  std::vector<uint8_t> table;
  float inv_scale = 1.f;
  float bias = 0.f;
  // The float distance of an integer sum, plus `offset` (the same arithmetic wherever it is used,
  // so thresholds in the integer domain agree with it exactly).
  float distance(uint32_t sum, float offset) const { return (offset + bias) + static_cast<float>(sum) * inv_scale; }
  // The largest integer sum whose distance(sum, offset) <= threshold (-1: none; 65535: all).
  int32_t max_sum_within(float threshold, float offset) const;
};

// Quantizes the m x 16 float table `lut` (negated first when `negate`: ip scores become distances).
void fastscan_quantize(const float* lut, size_t m, bool negate, FastScanLut* out);

// For blocks [0, nblocks) of a blocked array: sums[32 b + r] = sum over j of table entry (j, code j
// of row r), and bit r of masks[b] set when that sum <= threshold. Dispatched on the active SIMD
// level (the avx512 level runs the AVX-512BW kernel, or the AVX2 one on a CPU without AVX512BW).
void fastscan_scan(const uint8_t* blocks, size_t nblocks, size_t m, const uint8_t* table, uint16_t threshold,
                   uint16_t* sums, uint32_t* masks);

// The same for nq queries at once over the same blocks (the codes are loaded once for a few
// queries): query i has tables[i] and thresholds[i] and writes sums[i] and masks[i].
void fastscan_scan_many(const uint8_t* blocks, size_t nblocks, size_t m, size_t nq, const uint8_t* const* tables,
                        const uint16_t* thresholds, uint16_t* const* sums, uint32_t* const* masks);

// Name of the fast-scan kernel the active level runs ("scalar", "avx2" or "avx512bw").
const char* fastscan_kernel_name();

}  // namespace adanns
