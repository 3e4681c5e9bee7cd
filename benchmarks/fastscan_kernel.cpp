// The fast-scan kernels alone: fastscan_scan_many at the avx2 and avx512 levels, timed in turns in
// one process (ratio > 1: the avx512 level's kernel is faster). No top-k, no table building: what
// fastscan_levels.py measures end to end, minus everything around the kernel. Codes resident in L2
// (32k rows) and in L3 (1M rows); 1, 4 and 8 queries per call. Both levels' sums must agree.
// Arguments: rounds (default 21) and work per timing (default 5e6 codes x pairs / 8).
//
// Build against the Release core that `make install` leaves in build/ (run from the repository root):
//   g++ -O2 -std=c++17 -Icpp/include benchmarks/fastscan_kernel.cpp build/cp3*/libadanns_core.a
//       -lpthread -o /tmp/fastscan_kernel && /tmp/fastscan_kernel
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "adanns/fastscan.h"
#include "adanns/random.h"
#include "adanns/simd.h"

using namespace adanns;

namespace {

struct Case {
  size_t m, n, nq;
};

double seconds_per_call(size_t calls, const uint8_t* blocks, size_t nb, size_t m, size_t nq,
                        const std::vector<const uint8_t*>& tp, const std::vector<uint16_t>& thr,
                        const std::vector<uint16_t*>& sp, const std::vector<uint32_t*>& mp) {
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t c = 0; c < calls; ++c) fastscan_scan_many(blocks, nb, m, nq, tp.data(), thr.data(), sp.data(), mp.data());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 21;
  const double work = argc > 2 ? std::atof(argv[2]) : 5e6;  // codes x pairs per timing (~5 ms)
  if (!cpu_supports(SimdLevel::AVX512)) {
    std::printf("this CPU has no AVX-512: nothing to compare\n");
    return 0;
  }
  set_simd_level(SimdLevel::AVX512);
  std::printf("avx512 level kernel: %s\n", fastscan_kernel_name());
  std::printf("%4s %8s %3s %12s %12s %7s %7s %s\n", "m", "rows", "nq", "avx2 Gc/s", "avx512 Gc/s", "best", "median",
              "round ratios min-max");
  Rng rng(5);
  const Case cases[] = {{16, 32768, 1},   {16, 32768, 4},   {16, 32768, 8},   {30, 32768, 1}, {30, 32768, 4},
                        {32, 32768, 1},   {32, 32768, 4},   {32, 32768, 8},   {64, 32768, 1}, {64, 32768, 4},
                        {96, 32768, 4},   {32, 1 << 20, 1}, {32, 1 << 20, 4}, {64, 1 << 20, 4}};
  for (const Case& cs : cases) {
    const size_t m = cs.m, n = cs.n, nq = cs.nq, nb = fastscan_blocks(n);
    std::vector<uint8_t> codes(n * m);
    for (uint8_t& c : codes) c = static_cast<uint8_t>(rng.below(16));
    const std::vector<uint8_t> blocks = fastscan_pack(codes.data(), n, m);
    std::vector<std::vector<uint8_t>> tables(nq, std::vector<uint8_t>(fastscan_pairs(m) * 32, 0));
    for (auto& t : tables)
      for (size_t i = 0; i < m * 16; ++i) t[i] = static_cast<uint8_t>(rng.below(256));
    std::vector<uint16_t> thr(nq, static_cast<uint16_t>(m * 100));
    std::vector<std::vector<uint16_t>> sums(2 * nq, std::vector<uint16_t>(nb * 32));
    std::vector<std::vector<uint32_t>> masks(2 * nq, std::vector<uint32_t>(nb));
    std::vector<const uint8_t*> tp(nq);
    std::vector<uint16_t*> sp[2];
    std::vector<uint32_t*> mp[2];
    for (int l = 0; l < 2; ++l)
      for (size_t i = 0; i < nq; ++i) {
        tp[i] = tables[i].data();
        sp[l].push_back(sums[l * nq + i].data());
        mp[l].push_back(masks[l * nq + i].data());
      }
    // Short timings, many rounds: on a shared machine the best of many short runs is the least disturbed.
    const size_t calls = std::max<size_t>(1, static_cast<size_t>(work / (double(n) * nq * fastscan_pairs(m) / 8)));
    const SimdLevel levels[2] = {SimdLevel::AVX2, SimdLevel::AVX512};
    double best[2] = {1e30, 1e30};
    std::vector<double> ratios;
    for (int r = 0; r < rounds; ++r) {
      double t[2];
      for (int l = 0; l < 2; ++l) {
        set_simd_level(levels[l]);
        t[l] = seconds_per_call(calls, blocks.data(), nb, m, nq, tp, thr, sp[l], mp[l]);
        best[l] = std::min(best[l], t[l]);
      }
      ratios.push_back(t[0] / t[1]);
    }
    for (size_t i = 0; i < nq; ++i)
      if (sums[i] != sums[nq + i] || masks[i] != masks[nq + i]) {
        std::printf("MISMATCH m=%zu n=%zu nq=%zu\n", m, n, nq);
        return 1;
      }
    const double codes_per_call = double(n) * nq;
    std::vector<double> sorted = ratios;
    std::sort(sorted.begin(), sorted.end());
    std::printf("%4zu %8zu %3zu %12.2f %12.2f %7.3f %7.3f %6.2f-%.2f\n", m, n, nq, codes_per_call / best[0] / 1e9,
                codes_per_call / best[1] / 1e9, best[0] / best[1], sorted[sorted.size() / 2], sorted.front(),
                sorted.back());
  }
  return 0;
}
