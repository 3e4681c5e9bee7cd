// Hamming distances between binary codes, dispatched on the active SIMD level (simd.h): AVX-512
// VPOPCNTDQ where the CPU has it, AVX2 (popcnt / nibble lookup), else portable bit counting.
//
// Codes are packed bits (numpy packbits order: bit j of a code is bit 7 - j % 8 of byte j / 8), stored
// as rows of 64-bit words, zero-padded to a whole word. A prefix of b bits (b a multiple of 8) is the
// first b / 8 bytes: ceil(b / 64) words, the last one masked by prefix_mask().
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace adanns {

constexpr size_t kMaxCodeBits = 4096;

inline size_t words_for_bits(size_t bits) { return (bits + 63) / 64; }

// Masks for a prefix of `bits` bits (a multiple of 8) over words_for_bits(bits) words; empty when the
// prefix ends on a word boundary (no mask needed).
inline std::vector<uint64_t> prefix_mask(size_t bits) {
  std::vector<uint64_t> m;
  if (bits % 64 == 0) return m;
  m.assign(words_for_bits(bits), ~0ull);
  m.back() = (1ull << (bits % 64)) - 1;  // little-endian words: the first bytes are the low bits
  return m;
}

// out[j] = popcount((q ^ x_j) & mask) over nw words of each row x_j = x + j * x_stride (in words).
void hamming_distances(const uint64_t* q, const uint64_t* x, size_t nx, size_t x_stride, size_t nw,
                       const uint64_t* mask, int32_t* out);

// Indices j < n with d[j] <= t, ascending, into idx (room for n); returns how many.
size_t select_le(const int32_t* d, size_t n, int32_t t, uint32_t* idx);

// True when the CPU has AVX-512 VPOPCNTDQ (the avx512 level uses the AVX2 kernels otherwise).
bool cpu_has_vpopcntdq();
// Which implementation the active level runs ("scalar-swar", "avx2-nibble", "avx512-vpopcntdq").
const char* hamming_kernel_name();

}  // namespace adanns
