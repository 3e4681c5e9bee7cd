// C++ checks of the core without Python, meant to run under the sanitizers (make test-cpp):
// every SIMD level against the scalar oracle on awkward sizes, IVF and graph round trips through a
// file, and rejection of corrupted files.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <set>
#include <string>
#include <vector>

#include "adanns/binary_index.h"
#include "adanns/adc.h"
#include "adanns/attribute_index.h"
#include "adanns/distances.h"
#include "adanns/fastscan.h"
#include "adanns/hamming.h"
#include "adanns/filter.h"
#include "adanns/flat.h"
#include "adanns/graph.h"
#include "adanns/io.h"
#include "adanns/ivf.h"
#include "adanns/pq_index.h"
#include "adanns/random.h"
#include "adanns/simd.h"
#include "adanns/visited_set.h"

using namespace adanns;

static int failures = 0;
#define EXPECT(cond, ...)                                    \
  do {                                                       \
    if (!(cond)) {                                           \
      ++failures;                                            \
      std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      std::fprintf(stderr, __VA_ARGS__);                     \
      std::fprintf(stderr, "\n");                            \
    }                                                        \
  } while (0)

static std::vector<float> random_rows(Rng& rng, size_t n, size_t d) {
  std::vector<float> v(n * d);
  for (float& x : v) x = static_cast<float>(rng.uniform() * 2 - 1);
  return v;
}

// Restores the SIMD level on scope exit (tests switch levels).
struct LevelGuard {
  SimdLevel saved = active_simd_level();
  ~LevelGuard() { set_simd_level(saved); }
};

static void test_kernels_match_scalar() {
  LevelGuard guard;
  Rng rng(7);
  const size_t dims[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, 384, 1025};
  for (size_t d : dims) {
    const size_t nq = 5, nx = 37, qs = d + 3, xs = d + 1;
    std::vector<float> q = random_rows(rng, nq, qs), x = random_rows(rng, nx, xs);
    for (size_t p : {size_t(1), d / 2 + 1, d}) {
      if (p > d) continue;
      set_simd_level(SimdLevel::Scalar);
      std::vector<float> ref_ip(nq * nx), ref_l2(nq * nx), ref_n(nx);
      block_ip(q.data(), nq, qs, x.data(), nx, xs, p, ref_ip.data(), nx);
      block_l2(q.data(), nq, qs, x.data(), nx, xs, p, ref_l2.data(), nx);
      norms_sq(x.data(), nx, xs, p, ref_n.data());
      for (SimdLevel level : available_simd_levels()) {
        set_simd_level(level);
        std::vector<float> ip(nq * nx), l2(nq * nx), g(nq * nx), ipn(nq * nx), n(nx);
        block_ip(q.data(), nq, qs, x.data(), nx, xs, p, ip.data(), nx);
        block_l2(q.data(), nq, qs, x.data(), nx, xs, p, l2.data(), nx);
        gemm_ip(q.data(), nq, qs, x.data(), nx, xs, p, g.data(), nx);
        block_ip_norm(q.data(), nq, qs, x.data(), nx, xs, p, ipn.data(), nx, n.data());
        for (size_t i = 0; i < nq * nx; ++i) {
          float tol = 1e-5f * static_cast<float>(p) + 1e-6f;
          EXPECT(std::fabs(ip[i] - ref_ip[i]) <= tol, "%s ip d=%zu p=%zu", simd_level_name(level), d, p);
          EXPECT(std::fabs(g[i] - ref_ip[i]) <= tol, "%s gemm d=%zu p=%zu", simd_level_name(level), d, p);
          EXPECT(ipn[i] == ip[i], "%s ip_norm differs from ip d=%zu p=%zu", simd_level_name(level), d, p);
          EXPECT(std::fabs(l2[i] - ref_l2[i]) <= tol * 4, "%s l2 d=%zu p=%zu", simd_level_name(level), d, p);
        }
        for (size_t j = 0; j < nx; ++j)
          EXPECT(std::fabs(n[j] - ref_n[j]) <= 1e-5f * ref_n[j] + 1e-6f, "%s norms d=%zu", simd_level_name(level), d);
      }
    }
  }
}

static void test_ivf_roundtrip_and_corruption() {
  Rng rng(11);
  const size_t n = 3000, d = 48;
  std::vector<float> x = random_rows(rng, n, d);
  IVFIndex index(d, 16, Metric::Cosine, 16, 3, 10);
  index.train(x.data(), n, 2);
  index.add(x.data(), n, nullptr, 2);
  std::vector<idx_t> gone = {5, 17, 2999};
  index.remove(gone.data(), gone.size());
  SearchParams p;
  p.k = 10;
  p.nprobe = 16;
  p.search_dim = 24;
  p.set_rerank(48, 40);
  const size_t nq = 20;
  std::vector<float> s1(nq * 10), s2(nq * 10);
  std::vector<idx_t> i1(nq * 10), i2(nq * 10);
  std::vector<double> m1(nq), m2(nq);
  index.search(x.data(), nq, d, p, s1.data(), i1.data(), m1.data());
  for (idx_t id : i1) EXPECT(id != 5 && id != 17 && id != 2999, "removed id %lld returned", (long long)id);

  std::string path = "/tmp/adanns_cpp_test_" + std::to_string(::getpid()) + ".adanns";
  index.save(path);
  for (bool mmap : {false, true}) {
    auto loaded = IVFIndex::from_file(read_index_file(path, mmap, true));
    loaded->search(x.data(), nq, d, p, s2.data(), i2.data(), m2.data());
    EXPECT(i1 == i2 && s1 == s2, "loaded index (mmap=%d) answers differently", int(mmap));
    EXPECT(loaded->size() == n - gone.size(), "loaded size %zu", loaded->size());
  }

  // Flip one byte at several places, and truncate: every variant must be refused.
  std::FILE* f = std::fopen(path.c_str(), "rb");
  std::vector<unsigned char> bytes;
  int c;
  while ((c = std::fgetc(f)) != EOF) bytes.push_back(static_cast<unsigned char>(c));
  std::fclose(f);
  auto write = [&](const std::vector<unsigned char>& b) {
    std::FILE* o = std::fopen(path.c_str(), "wb");
    std::fwrite(b.data(), 1, b.size(), o);
    std::fclose(o);
  };
  for (size_t pos : {size_t(3), size_t(20), size_t(100), bytes.size() / 2, bytes.size() - 1}) {
    std::vector<unsigned char> b = bytes;
    b[pos] ^= 0x40;
    write(b);
    bool refused = false;
    try {
      IVFIndex::from_file(read_index_file(path, false, true));
    } catch (const Error&) {
      refused = true;
    }
    EXPECT(refused, "flipped byte at %zu was not detected", pos);
  }
  for (size_t len : {size_t(10), size_t(90), bytes.size() - 7}) {
    write(std::vector<unsigned char>(bytes.begin(), bytes.begin() + len));
    bool refused = false;
    try {
      IVFIndex::from_file(read_index_file(path, true, false));
    } catch (const Error&) {
      refused = true;
    }
    EXPECT(refused, "truncation to %zu bytes was not detected", len);
  }
  std::remove(path.c_str());
}

// Every level's Hamming kernel against a bit-by-bit count, on every word count 1..20 and 64, with and
// without a prefix mask, contiguous and strided rows (the AVX-512 packed, gathered and tree paths).
static void test_hamming_kernels_match_bit_count() {
  LevelGuard guard;
  Rng rng(5);
  for (size_t words : {size_t(1), size_t(2), size_t(3), size_t(4), size_t(5), size_t(7), size_t(8), size_t(9),
                       size_t(15), size_t(16), size_t(17), size_t(20), size_t(64)}) {
    for (size_t stride : {words, words + 3}) {
      const size_t nx = 29;
      std::vector<uint64_t> q(stride), x(nx * stride);
      for (auto& w : q) w = rng.next();
      for (auto& w : x) w = rng.next();
      for (size_t bits : {size_t(8), 64 * words - 8, 64 * words}) {
        if (bits > 64 * words || bits == 0) continue;
        std::vector<uint64_t> mask = prefix_mask(bits);
        const size_t nw = words_for_bits(bits);
        std::vector<int32_t> want(nx);
        for (size_t j = 0; j < nx; ++j) {
          int s = 0;
          for (size_t b = 0; b < bits; ++b) s += static_cast<int>(((q[b / 64] ^ x[j * stride + b / 64]) >> (b % 64)) & 1);
          want[j] = s;
        }
        for (SimdLevel level : available_simd_levels()) {
          set_simd_level(level);
          std::vector<int32_t> got(nx, -1);
          hamming_distances(q.data(), x.data(), nx, stride, nw, mask.empty() ? nullptr : mask.data(), got.data());
          EXPECT(got == want, "hamming %s words=%zu stride=%zu bits=%zu", simd_level_name(level), words, stride, bits);
          std::vector<uint32_t> sel(nx);
          size_t m = select_le(got.data(), nx, want[3], sel.data());
          size_t expect_m = 0;
          for (size_t j = 0; j < nx; ++j) expect_m += want[j] <= want[3];
          EXPECT(m == expect_m, "select_le %s found %zu of %zu", simd_level_name(level), m, expect_m);
        }
      }
    }
  }
}

// Hashed and scanned range searches agree; a binary index survives a file round trip; corruption is refused.
static void test_binary_index_hash_and_file() {
  Rng rng(9);
  const size_t n = 2000, nbits = 64;
  std::vector<uint8_t> codes(n * 8);
  for (size_t i = 0; i < n; ++i) {
    uint64_t c = rng.next() & 0xFFFF0F0F0F0F0F0Full;  // shared zero nibbles: many near neighbours
    std::memcpy(codes.data() + i * 8, &c, 8);
  }
  std::vector<float> vec(n * 3);
  for (float& v : vec) v = static_cast<float>(rng.uniform());
  BinaryIndex index(nbits, 3);
  index.add(codes.data(), n, vec.data(), nullptr);
  index.build_hash(0);
  for (int radius : {0, 1, 2, 5, 9}) {
    RangeResult a = index.range_search(codes.data(), 30, 8, radius, nbits, RangeMethod::Hash, 2);
    RangeResult b = index.range_search(codes.data(), 30, 8, radius, nbits, RangeMethod::Scan, 1);
    EXPECT(a.lims == b.lims && a.ids == b.ids && a.dist == b.dist, "hash != scan at radius %d", radius);
  }
  std::string path = "/tmp/adanns_cpp_test_bin_" + std::to_string(::getpid()) + ".adanns";
  index.save(path);
  auto back = BinaryIndex::from_file(read_index_file(path, false, true));
  EXPECT(back->codes() == index.codes() && back->ids() == index.ids() && back->vectors() == index.vectors(),
         "binary index round trip changed the contents");
  std::FILE* f = std::fopen(path.c_str(), "r+b");
  std::fseek(f, -5, SEEK_END);
  int c = std::fgetc(f);
  std::fseek(f, -5, SEEK_END);
  std::fputc(c ^ 1, f);
  std::fclose(f);
  bool refused = false;
  try {
    BinaryIndex::from_file(read_index_file(path, false, true));
  } catch (const Error&) {
    refused = true;
  }
  EXPECT(refused, "corrupted binary index was loaded");
  std::remove(path.c_str());
}

// ADC on every level equals the scalar oracle bit for bit (same summation order), awkward m and n.
static void test_adc_matches_scalar() {
  LevelGuard guard;
  Rng rng(11);
  for (size_t ksub : {size_t(16), size_t(256)})
    for (size_t m : {1, 3, 4, 5, 8, 12, 17, 32, 64}) {
      const size_t n = 37;
      std::vector<float> lut = random_rows(rng, m, ksub);
      std::vector<uint8_t> codes(n * m);
      for (uint8_t& c : codes) c = static_cast<uint8_t>(rng.below(ksub));
      set_simd_level(SimdLevel::Scalar);
      std::vector<float> ref(n);
      adc_scan(lut.data(), ksub, codes.data(), n, m, ref.data());
      for (size_t i = 0; i < n; ++i) {
        double s = 0;
        for (size_t j = 0; j < m; ++j) s += lut[j * ksub + codes[i * m + j]];
        EXPECT(std::fabs(s - ref[i]) < 1e-4, "adc scalar m=%zu i=%zu", m, i);
      }
      for (SimdLevel level : available_simd_levels()) {
        set_simd_level(level);
        std::vector<float> out(n);
        adc_scan(lut.data(), ksub, codes.data(), n, m, out.data());
        for (size_t i = 0; i < n; ++i)
          EXPECT(out[i] == ref[i], "adc level %s m=%zu i=%zu", simd_level_name(level), m, i);
      }
    }
}

// A PQ index (IVF, residual codes, stored vectors) survives a file round trip; truncation is refused.
static void test_pq_index_roundtrip() {
  Rng rng(5);
  const size_t n = 1500, d = 24;
  std::vector<float> x = random_rows(rng, n, d);
  PQIndexConfig c;
  c.dim = d, c.nlist = 4, c.cluster_dim = 8, c.pq_dim = 16, c.m = 4, c.nbits = 8;
  PQIndex index(c);
  std::vector<float> cent = index.coarse_kmeans(x.data(), n, 2);
  std::vector<float> y = index.training_targets(x.data(), n, cent.data(), 2);
  ProductQuantizer pq(16, 4, 8);
  pq.train(y.data(), n, 16, 5, 0, 2);
  index.set_trained(cent.data(), nullptr, pq.centroids());
  index.add(x.data(), n, nullptr, 2);
  SearchParams p;
  p.k = 5;
  p.nprobe = 2;
  p.set_rerank(d, 20);
  const size_t nq = 7;
  std::vector<float> s1(nq * 5), s2(nq * 5);
  std::vector<idx_t> i1(nq * 5), i2(nq * 5);
  std::vector<double> m1(nq), m2(nq);
  index.search(x.data(), nq, d, p, s1.data(), i1.data(), m1.data());
  std::string path = "/tmp/adanns_cpp_pq_" + std::to_string(::getpid()) + ".adanns";
  index.save(path);
  auto back = PQIndex::from_file(read_index_file(path, false, true));
  back->search(x.data(), nq, d, p, s2.data(), i2.data(), m2.data());
  for (size_t i = 0; i < nq * 5; ++i) EXPECT(i1[i] == i2[i] && s1[i] == s2[i], "pq round trip differs at %zu", i);
  EXPECT(i1[0] == 0, "a row's nearest (after full re-ranking) is itself, got %lld", (long long)i1[0]);
  if (std::FILE* f = std::fopen(path.c_str(), "r+b")) {
    std::fseek(f, 0, SEEK_END);
    long size = std::ftell(f);
    std::fclose(f);
    if (::truncate(path.c_str(), size - 5) == 0) {
      bool refused = false;
      try {
        PQIndex::from_file(read_index_file(path, false, true));
      } catch (const Error&) {
        refused = true;
      }
      EXPECT(refused, "truncated PQ file accepted");
    }
  }
  std::remove(path.c_str());
}

// Fast-scan on every level equals the scalar oracle exactly (sums and threshold masks), and the
// oracle equals table sums read from the plain codes: odd and small m, row counts off the block size,
// tables near the 16-bit limit (m * 255 close to 65535 wraps nothing).
static void test_fastscan_matches_scalar() {
  LevelGuard guard;
  Rng rng(13);
  for (size_t m : {1, 2, 3, 5, 8, 15, 16, 17, 31, 32, 64, 96, 257})
    for (size_t n : {1, 31, 32, 33, 100}) {
      std::vector<uint8_t> codes(n * m), table(fastscan_pairs(m) * 32, 0);
      for (uint8_t& c : codes) c = static_cast<uint8_t>(rng.below(16));
      const uint64_t top = m <= 257 ? 256 : 65535 / m;
      for (size_t i = 0; i < m * 16; ++i) table[i] = static_cast<uint8_t>(rng.below(top));
      std::vector<uint8_t> blocks = fastscan_pack(codes.data(), n, m);
      const size_t nb = fastscan_blocks(n);
      const uint16_t thr = static_cast<uint16_t>(rng.below(m * 255 + 1));
      set_simd_level(SimdLevel::Scalar);
      std::vector<uint16_t> ref(nb * 32);
      std::vector<uint32_t> ref_mask(nb);
      fastscan_scan(blocks.data(), nb, m, table.data(), thr, ref.data(), ref_mask.data());
      for (size_t i = 0; i < n; ++i) {
        uint32_t s = 0;
        for (size_t j = 0; j < m; ++j) {
          s += table[j * 16 + codes[i * m + j]];
          EXPECT(fastscan_get(blocks.data(), m, i, j) == codes[i * m + j], "layout m=%zu row %zu j %zu", m, i, j);
        }
        EXPECT(ref[i] == s, "fastscan scalar m=%zu n=%zu row %zu: %u != %u", m, n, i, ref[i], s);
        EXPECT(((ref_mask[i / 32] >> (i % 32)) & 1u) == (s <= thr), "fastscan scalar mask m=%zu row %zu", m, i);
      }
      for (SimdLevel level : available_simd_levels()) {
        set_simd_level(level);
        std::vector<uint16_t> out(nb * 32);
        std::vector<uint32_t> mask(nb);
        fastscan_scan(blocks.data(), nb, m, table.data(), thr, out.data(), mask.data());
        EXPECT(out == ref && mask == ref_mask, "fastscan level %s (%s) m=%zu n=%zu", simd_level_name(level),
               fastscan_kernel_name(), m, n);
      }
    }
}

// Several queries sharing each load of codes (fastscan_scan_many, groups of 2 or 4 plus a remainder)
// give each query's single-query scalar result.
static void test_fastscan_many_matches_single() {
  LevelGuard guard;
  Rng rng(17);
  for (size_t m : {3, 16, 33, 96})
    for (size_t nq : {1, 2, 3, 4, 5, 9}) {
      const size_t n = 70, nb = fastscan_blocks(n);
      std::vector<uint8_t> codes(n * m);
      for (uint8_t& c : codes) c = static_cast<uint8_t>(rng.below(16));
      std::vector<uint8_t> blocks = fastscan_pack(codes.data(), n, m);
      std::vector<std::vector<uint8_t>> tables(nq, std::vector<uint8_t>(fastscan_pairs(m) * 32, 0));
      std::vector<uint16_t> thr(nq);
      std::vector<std::vector<uint16_t>> ref(nq, std::vector<uint16_t>(nb * 32));
      std::vector<std::vector<uint32_t>> ref_mask(nq, std::vector<uint32_t>(nb));
      set_simd_level(SimdLevel::Scalar);
      for (size_t i = 0; i < nq; ++i) {
        for (size_t t = 0; t < m * 16; ++t) tables[i][t] = static_cast<uint8_t>(rng.below(256));
        thr[i] = static_cast<uint16_t>(rng.below(m * 255 + 1));
        fastscan_scan(blocks.data(), nb, m, tables[i].data(), thr[i], ref[i].data(), ref_mask[i].data());
      }
      for (SimdLevel level : available_simd_levels()) {
        set_simd_level(level);
        std::vector<std::vector<uint16_t>> out(nq, std::vector<uint16_t>(nb * 32));
        std::vector<std::vector<uint32_t>> mask(nq, std::vector<uint32_t>(nb));
        std::vector<const uint8_t*> tp(nq);
        std::vector<uint16_t*> sp(nq);
        std::vector<uint32_t*> mp(nq);
        for (size_t i = 0; i < nq; ++i) tp[i] = tables[i].data(), sp[i] = out[i].data(), mp[i] = mask[i].data();
        fastscan_scan_many(blocks.data(), nb, m, nq, tp.data(), thr.data(), sp.data(), mp.data());
        for (size_t i = 0; i < nq; ++i)
          EXPECT(out[i] == ref[i] && mask[i] == ref_mask[i], "fastscan_scan_many level %s m=%zu nq=%zu query %zu",
                 simd_level_name(level), m, nq, i);
      }
    }
}

// ------------------------------------------------------------------------------- file-format fuzz
// Seeded mutations of a saved file of every kind, re-sealed by the engine's own writer (so the
// section parsers see the damage, not a checksum mismatch): every mutant is refused with Error or
// loads into an index that searches, lists its ids and saves. Under ASan this also catches reads past
// a section that the Python fuzz (tests/test_format_fuzz.py) could not see.
static std::vector<uint8_t> read_bytes(const std::string& path) {
  std::vector<uint8_t> b;
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    int c;
    while ((c = std::fgetc(f)) != EOF) b.push_back(static_cast<uint8_t>(c));
    std::fclose(f);
  }
  return b;
}

static void put_u64(std::vector<uint8_t>& b, size_t off, uint64_t v) {
  if (b.size() >= 8) std::memcpy(b.data() + std::min(off, b.size() - 8), &v, 8);
}

static uint64_t fuzz_value(Rng& rng, uint64_t old) {
  static const uint64_t values[] = {0, 1, 2, 3, 4, 7, 8, 0xFF, 0x100, 1u << 24, (1u << 24) + 1, 0x7FFFFFFF,
                                    1ull << 31, 0xFFFFFFFF, 1ull << 32, 1ull << 40, 1ull << 60,
                                    (1ull << 63) - 1, 1ull << 63, ~0ull, ~0ull - 7};
  if (rng.below(4) == 0) return old + rng.below(5) - 2;
  return values[rng.below(sizeof values / sizeof values[0])];
}

// One damage to a section: a bit flip, a u64 overwrite, a cut, an insertion or a deletion.
static void damage(Rng& rng, std::vector<uint8_t>& b, bool aligned_fields) {
  if (b.empty()) {
    b.resize(1 + rng.below(16), 0xFF);
    return;
  }
  size_t pos = rng.below(b.size());
  switch (rng.below(6)) {
    case 0:
      b[pos] ^= uint8_t(1u << rng.below(8));
      break;
    case 1:
    case 2: {
      if (aligned_fields) pos = 8 * rng.below(std::min<size_t>(16, b.size() / 8 + 1));
      uint64_t old = 0;
      if (b.size() >= 8) std::memcpy(&old, b.data() + std::min(pos, b.size() - 8), 8);
      put_u64(b, pos, fuzz_value(rng, old));
      break;
    }
    case 3:
      b.resize(pos);
      break;
    case 4:
      b.insert(b.begin() + pos, 1 + rng.below(8), uint8_t(rng.below(256)));
      break;
    default:
      b.erase(b.begin() + pos, b.begin() + std::min(b.size(), pos + 1 + rng.below(8)));
  }
}

template <class Index>
static void exercise_floats(Index& ix, size_t d, size_t qdim_min) {
  if (d > 4096 || d < qdim_min) return;
  Rng rng(3);
  std::vector<float> q = random_rows(rng, 2, d), scores(2 * 5);
  std::vector<idx_t> out(2 * 5);
  std::vector<double> mf(2);
  SearchParams p;
  p.k = 5, p.nprobe = 2, p.search_dim = d, p.threads = 1;
  ix.search(q.data(), 2, d, p, scores.data(), out.data(), mf.data());
  std::vector<idx_t> held = ix.ids();
  for (idx_t id : out)
    EXPECT(id == -1 || std::find(held.begin(), held.end(), id) != held.end(), "fuzz: id %lld not stored",
           (long long)id);
}

static void exercise(const std::string& path, bool mmap) {
  IndexFile f = read_index_file(path, mmap, true);
  const std::string copy = path + ".again";
  switch (f.kind) {
    case IndexKind::Flat: {
      auto ix = FlatIndex::from_file(std::move(f));
      exercise_floats(*ix, ix->dim(), 1);
      ix->save(copy);
      break;
    }
    case IndexKind::IVF: {
      auto ix = IVFIndex::from_file(std::move(f));
      if (ix->is_trained()) exercise_floats(*ix, ix->dim(), ix->cluster_dim());
      ix->save(copy);
      break;
    }
    case IndexKind::PQ: {
      auto ix = PQIndex::from_file(std::move(f));
      if (ix->is_trained()) exercise_floats(*ix, ix->config().dim, std::max(ix->config().pq_dim, ix->config().cluster_dim));
      ix->save(copy);
      break;
    }
    case IndexKind::Binary: {
      auto ix = BinaryIndex::from_file(std::move(f));
      const size_t bytes = ix->nbits() / 8;
      std::vector<uint8_t> q(2 * bytes, 0x5A);
      std::vector<int32_t> dist(2 * 5);
      std::vector<idx_t> out(2 * 5);
      std::vector<double> cost(2);
      ix->search(q.data(), 2, bytes, 5, ix->nbits(), 1, dist.data(), out.data(), cost.data());
      for (RangeMethod m : {RangeMethod::Hash, RangeMethod::Scan}) ix->range_search(q.data(), 2, bytes, 2, ix->nbits(), m, 1);
      ix->save(copy);
      break;
    }
  }
  std::remove(copy.c_str());
}

static void test_format_fuzz() {
  // ADANNS_FUZZ_ITERS / ADANNS_FUZZ_SEED: a longer soak run (default: 150 mutants per kind, seed 2026).
  const char* iters_env = std::getenv("ADANNS_FUZZ_ITERS");
  const char* seed_env = std::getenv("ADANNS_FUZZ_SEED");
  const int iters = iters_env ? std::atoi(iters_env) : 150;
  Rng rng(seed_env ? std::strtoull(seed_env, nullptr, 10) : 2026);
  const std::string dir = "/tmp/adanns_cpp_fuzz_" + std::to_string(::getpid());
  std::vector<float> x = random_rows(rng, 300, 16);
  std::vector<std::string> seeds;
  {
    FlatIndex flat(16, Metric::L2);
    flat.add(x.data(), 40, nullptr);
    flat.set_user_meta("{\"note\": 1}");
    seeds.push_back(dir + "-flat");
    flat.save(seeds.back());
    IVFIndex ivf(16, 4, Metric::IP, 8, 1, 5);
    ivf.train(x.data(), 100, 1);
    ivf.add(x.data(), 60, nullptr, 1);
    std::vector<idx_t> gone = {3, 9};
    ivf.remove(gone.data(), gone.size());
    seeds.push_back(dir + "-ivf");
    ivf.save(seeds.back());
    for (size_t nbits : {size_t(4), size_t(8)}) {
      PQIndexConfig c;
      c.dim = 16, c.nlist = nbits == 4 ? 3 : 0, c.cluster_dim = 8, c.pq_dim = 8, c.m = 4, c.nbits = nbits;
      c.residual = nbits == 4;
      PQIndex pq(c);
      std::vector<float> cent = c.nlist ? pq.coarse_kmeans(x.data(), 300, 1) : std::vector<float>();
      std::vector<float> y = pq.training_targets(x.data(), 300, cent.data(), 1);
      ProductQuantizer quant(8, 4, nbits);
      quant.train(y.data(), 300, 8, 3, 0, 1);
      std::vector<float> rot(64, 0.f);
      for (size_t i = 0; i < 8; ++i) rot[i * 9] = 1.f;
      pq.set_trained(cent.data(), nbits == 8 ? rot.data() : nullptr, quant.centroids());
      pq.add(x.data(), 50, nullptr, 1);
      seeds.push_back(dir + "-pq" + std::to_string(nbits));
      pq.save(seeds.back());
    }
    BinaryIndex bin(24, 4);
    std::vector<uint8_t> codes(30 * 3);
    for (uint8_t& c : codes) c = uint8_t(rng.below(256));
    bin.add(codes.data(), 30, x.data(), nullptr);
    bin.build_hash(2);
    seeds.push_back(dir + "-bin");
    bin.save(seeds.back());
  }
  const std::string path = dir + "-mutant";
  size_t tried = 0, loaded = 0, refused = 0;
  for (const std::string& seed : seeds) {
    const std::vector<uint8_t> raw = read_bytes(seed);
    uint64_t meta_size, data_off;
    std::memcpy(&meta_size, raw.data() + 24, 8);
    std::memcpy(&data_off, raw.data() + 32, 8);
    uint32_t kind;
    std::memcpy(&kind, raw.data() + 12, 4);
    const std::vector<uint8_t> meta0(raw.begin() + 72, raw.begin() + 72 + meta_size), data0(raw.begin() + data_off, raw.end());
    for (int it = 0; it < iters; ++it) {
      std::vector<uint8_t> meta = meta0, data = data0;
      uint32_t k = kind;
      const uint64_t what = rng.below(10);
      if (what < 5) {
        damage(rng, meta, what < 3);
      } else if (what < 8) {
        damage(rng, data, false);
      } else if (what == 8) {
        k = 1 + uint32_t(rng.below(4));  // another kind's parser reads these sections
      } else {
        damage(rng, meta, true);
        damage(rng, data, false);
      }
      write_index_file(path, static_cast<IndexKind>(k), meta, {{data.data(), data.size()}});
      ++tried;
      try {
        exercise(path, rng.below(2) == 1);
        ++loaded;
      } catch (const Error&) {
        ++refused;
      } catch (const std::exception& e) {
        EXPECT(false, "fuzz: %s mutant %d raised a non-Error exception: %s", seed.c_str(), it, e.what());
      }
    }
    std::remove(seed.c_str());
  }
  std::remove(path.c_str());
  std::printf("format fuzz: %zu mutants, %zu loaded, %zu refused\n", tried, loaded, refused);
}

// Every level's fast-scan (the AVX-512BW kernel in particular: steps of four pairs, then two, then a
// 256-bit tail when the pair count is odd; groups of 4 queries then 3/2/1) against table sums read from the
// plain codes: pair counts odd and even, 0, 1 and many blocks, 1-9 queries, thresholds at 0, 65535
// and exactly at / just under a row's sum, sums at the 16-bit limit, unaligned buffers, and nothing
// written past the blocks asked for.
static void test_fastscan_levels_on_awkward_sizes() {
  LevelGuard guard;
#ifdef ADANNS_HAVE_X86_KERNELS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) {
    set_simd_level(SimdLevel::AVX512);
    EXPECT(std::string(fastscan_kernel_name()) == "avx512bw", "avx512 level runs %s, not avx512bw",
           fastscan_kernel_name());
  }
#endif
  Rng rng(23);
  const uint16_t kSentinel = 0xBEEF;
  for (size_t m : {1, 2, 3, 4, 5, 6, 7, 9, 11, 13, 17, 30, 48, 63, 64, 65, 257})  // pairs mod 4: all
    for (size_t n : {0, 5, 32, 64, 333})
      for (size_t nq : {1, 2, 3, 4, 5, 7, 9}) {
        if (m >= 63 && n == 333 && nq > 5) continue;  // keeps the sanitizer run short
        const size_t nb = fastscan_blocks(n), tbytes = fastscan_pairs(m) * 32;
        std::vector<uint8_t> codes(n * m);
        for (uint8_t& c : codes) c = static_cast<uint8_t>(rng.below(16));
        const std::vector<uint8_t> packed = fastscan_pack(codes.data(), n, m);
        std::vector<uint8_t> blocks(packed.size() + 1);  // +1: the kernels' loads start off alignment
        std::copy(packed.begin(), packed.end(), blocks.begin() + 1);
        std::vector<std::vector<uint8_t>> tables(nq, std::vector<uint8_t>(tbytes + 1, 0));
        std::vector<std::vector<uint32_t>> want(nq, std::vector<uint32_t>(n));
        std::vector<uint16_t> thr(nq);
        for (size_t i = 0; i < nq; ++i) {
          const bool full = m == 257 && i == 0;  // every entry 255: every sum is 65535
          for (size_t t = 0; t < m * 16; ++t) tables[i][1 + t] = full ? 255 : static_cast<uint8_t>(rng.below(256));
          for (size_t r = 0; r < n; ++r) {
            uint32_t s = 0;
            for (size_t j = 0; j < m; ++j) s += tables[i][1 + j * 16 + codes[r * m + j]];
            want[i][r] = s;
          }
          const uint32_t row_sum = n ? want[i][rng.below(n)] : 0;
          switch (i % 5) {
            case 0: thr[i] = 0; break;
            case 1: thr[i] = 65535; break;
            case 2: thr[i] = static_cast<uint16_t>(row_sum); break;
            case 3: thr[i] = static_cast<uint16_t>(row_sum ? row_sum - 1 : 0); break;
            default: thr[i] = static_cast<uint16_t>(rng.below(m * 255 + 1)); break;
          }
          if (full) thr[i] = 65534;
        }
        for (SimdLevel level : available_simd_levels()) {
          set_simd_level(level);
          // One guard row past the last block, and sums one uint16 off alignment.
          std::vector<std::vector<uint16_t>> out(nq, std::vector<uint16_t>(nb * 32 + 1 + 32, kSentinel));
          std::vector<std::vector<uint32_t>> mask(nq, std::vector<uint32_t>(nb + 1, 0xDEADBEEFu));
          std::vector<const uint8_t*> tp(nq);
          std::vector<uint16_t*> sp(nq);
          std::vector<uint32_t*> mp(nq);
          for (size_t i = 0; i < nq; ++i)
            tp[i] = tables[i].data() + 1, sp[i] = out[i].data() + 1, mp[i] = mask[i].data();
          fastscan_scan_many(blocks.data() + 1, nb, m, nq, tp.data(), thr.data(), sp.data(), mp.data());
          for (size_t i = 0; i < nq; ++i) {
            bool ok = out[i][0] == kSentinel && mask[i][nb] == 0xDEADBEEFu;
            for (size_t k = 0; k < 32; ++k) ok = ok && out[i][1 + nb * 32 + k] == kSentinel;
            for (size_t r = 0; r < n && ok; ++r)
              ok = out[i][1 + r] == want[i][r] && ((mask[i][r / 32] >> (r % 32)) & 1u) == (want[i][r] <= thr[i]);
            // Rows past n in the last block are code 0: sums of the tables' first entries.
            uint32_t pad = 0;
            for (size_t j = 0; j < m; ++j) pad += tables[i][1 + j * 16];
            for (size_t r = n; r < nb * 32 && ok; ++r)
              ok = out[i][1 + r] == pad && ((mask[i][r / 32] >> (r % 32)) & 1u) == (pad <= thr[i]);
            EXPECT(ok, "fastscan level %s (%s) m=%zu n=%zu nq=%zu query %zu thr=%u", simd_level_name(level),
                   fastscan_kernel_name(), m, n, nq, i, thr[i]);
          }
        }
      }
}

// The graph walks' visited set against std::set over walks of very different sizes (the table grows
// within a walk and shrinks back between walks), with node ids spread over the whole 32-bit range.
static void test_visited_set_matches_std_set() {
  Rng rng(31);
  VisitedSet visited;
  for (size_t walk = 0; walk < 60; ++walk) {
    const size_t inserts = walk % 7 == 0 ? 20000 : 1 + rng.next() % 900;
    const uint64_t range = walk % 3 == 0 ? 0xFFFFFFFEull : 1 + rng.next() % 3000;
    visited.begin();
    std::set<uint32_t> oracle;
    for (size_t i = 0; i < inserts; ++i) {
      uint32_t node = static_cast<uint32_t>(rng.next() % range);
      bool fresh = oracle.insert(node).second;
      EXPECT(visited.insert(node) == fresh, "walk %zu: node %u inserted twice or missed", walk, node);
    }
    EXPECT(visited.size() == oracle.size(), "walk %zu: %zu visited, expected %zu", walk, visited.size(), oracle.size());
  }
}

// The graph under the sanitizers: a two-thread build (the striped locks), tombstones, consolidation,
// upsert, a search at every SIMD level, a file round trip and a corrupted file.
static void test_graph_churn_and_file() {
  LevelGuard guard;
  Rng rng(23);
  const size_t n = 2000, d = 40, nq = 15, k = 10;
  std::vector<float> x = random_rows(rng, n, d);
  GraphIndex index(d, 16, 6, 30, Metric::Cosine, 4);
  index.add(x.data(), n, nullptr, 2);
  std::vector<idx_t> gone;
  for (idx_t i = 0; i < 500; i += 2) gone.push_back(i);
  index.remove(gone.data(), 100);  // below the threshold: tombstones
  EXPECT(index.tombstones() == 100, "tombstones %zu", index.tombstones());
  index.remove(gone.data() + 100, 150);  // past it: consolidated
  EXPECT(index.tombstones() == 0 && index.size() == n - 250, "size %zu", index.size());
  std::vector<idx_t> again = {1, 3, 5000};
  index.add(x.data() + 100 * d, again.size(), again.data(), 2, true);
  EXPECT(index.size() == n - 249, "size after upsert %zu", index.size());
  SearchParams p;
  p.k = k;
  p.ef = 32;
  p.set_rerank(d, 32);
  std::vector<float> s1(nq * k), s2(nq * k);
  std::vector<idx_t> i1(nq * k), i2(nq * k);
  std::vector<double> m1(nq), m2(nq);
  for (SimdLevel level : available_simd_levels()) {
    set_simd_level(level);
    index.search(x.data(), nq, d, p, s1.data(), i1.data(), m1.data());
    for (idx_t id : i1) EXPECT(id >= 0 && (id >= 500 || id % 2 == 1), "removed id %lld returned", (long long)id);
  }
  SearchParams short_query = p;
  short_query.set_rerank(0, 0);
  index.search(x.data(), nq, 8, short_query, s2.data(), i2.data(), m2.data());  // shorter than graph_dim: a scan
  for (idx_t id : i2) EXPECT(id >= 0 && (id >= 500 || id % 2 == 1), "removed id %lld returned", (long long)id);

  std::string path = "/tmp/adanns_cpp_graph_" + std::to_string(::getpid()) + ".adanns";
  index.save(path);
  for (bool mmap : {false, true}) {
    auto loaded = GraphIndex::from_file(read_index_file(path, mmap, true));
    loaded->search(x.data(), nq, d, p, s2.data(), i2.data(), m2.data());
    EXPECT(i1 == i2 && s1 == s2, "loaded graph (mmap=%d) answers differently", int(mmap));
    loaded->add(x.data(), 5, nullptr, 1);
    EXPECT(loaded->size() == index.size() + 5, "loaded graph size %zu", loaded->size());
  }
  std::FILE* f = std::fopen(path.c_str(), "r+b");
  std::fseek(f, 130, SEEK_SET);
  int c = std::fgetc(f);
  std::fseek(f, 130, SEEK_SET);
  std::fputc(c ^ 0x11, f);
  std::fclose(f);
  bool refused = false;
  try {
    GraphIndex::from_file(read_index_file(path, false, true));
  } catch (const Error&) {
    refused = true;
  }
  EXPECT(refused, "corrupted graph file was loaded");

  // SQ8 codes (l2: decoded norms kept per node) through a build, a consolidation and a file.
  GraphIndex coded(d, 24, 6, 30, Metric::L2, 4, GraphStorage::SQ8);
  coded.add(x.data(), n, nullptr, 2);
  coded.remove(gone.data(), gone.size());
  EXPECT(coded.tombstones() == 0 && coded.size() == n - gone.size(), "sq8 size %zu", coded.size());
  coded.search(x.data(), nq, d, p, s1.data(), i1.data(), m1.data());
  for (idx_t id : i1) EXPECT(id >= 0 && (id >= 500 || id % 2 == 1), "removed id %lld returned", (long long)id);
  coded.save(path);
  auto loaded = GraphIndex::from_file(read_index_file(path, true, true));
  loaded->search(x.data(), nq, d, p, s2.data(), i2.data(), m2.data());
  EXPECT(i1 == i2 && s1 == s2, "loaded sq8 graph answers differently");
  std::remove(path.c_str());
}

// Filtered search at every SIMD level, both plans, equals an unfiltered search of an index that holds
// only the allowed rows; a filtered IVF scan returns k results even at nprobe 1.
static void test_filtered_search_equals_search_of_allowed_rows() {
  LevelGuard guard;
  Rng rng(21);
  const size_t n = 1500, d = 19, nq = 7, k = 10;
  std::vector<float> x = random_rows(rng, n, d);
  std::vector<idx_t> allowed;
  for (size_t i = 0; i < n; ++i)
    if (rng.uniform() < 0.1) allowed.push_back(static_cast<idx_t>(i));
  std::vector<float> xa;
  for (idx_t id : allowed) xa.insert(xa.end(), x.begin() + id * d, x.begin() + (id + 1) * d);
  for (Metric metric : {Metric::IP, Metric::L2, Metric::Cosine}) {
    FlatIndex full(d, metric), only(d, metric);
    full.add(x.data(), n, nullptr);
    only.add(xa.data(), allowed.size(), allowed.data());
    IVFIndex ivf(d, 32, metric, d, 1, 5);
    ivf.train(x.data(), n, 1);
    ivf.add(x.data(), n, nullptr, 1);
    for (SimdLevel level : available_simd_levels()) {
      set_simd_level(level);
      SearchParams p;
      p.k = k;
      p.search_dim = 13;
      p.set_rerank(d, 30);
      std::vector<float> s0(nq * k), s1(nq * k);
      std::vector<idx_t> i0(nq * k), i1(nq * k);
      std::vector<double> m0(nq), m1(nq);
      only.search(x.data(), nq, d, p, s0.data(), i0.data(), m0.data());
      for (double below : {0.0, 1.0}) {
        AllowedIds filter(allowed.data(), allowed.size());
        p.filter = &filter;
        p.brute_force_below = below;
        full.search(x.data(), nq, d, p, s1.data(), i1.data(), m1.data());
        EXPECT(i0 == i1, "filtered flat ids differ (%s, level %s, plan %g)", metric_name(metric),
               simd_level_name(level), below);
        for (size_t j = 0; j < s0.size(); ++j)
          EXPECT(std::fabs(s0[j] - s1[j]) <= 1e-5f * (1 + std::fabs(s0[j])), "filtered flat score differs");
        p.nprobe = 1;
        ivf.search(x.data(), nq, d, p, s1.data(), i1.data(), m1.data());
        for (idx_t id : i1)
          EXPECT(id >= 0 && std::binary_search(allowed.begin(), allowed.end(), id),
                 "filtered IVF returned %lld (padding or not allowed)", (long long)id);
        p.filter = nullptr;
      }
    }
  }
  std::vector<idx_t> unsorted = {3, 2};
  bool threw = false;
  try {
    AllowedIds bad(unsorted.data(), unsorted.size());
  } catch (const Error&) {
    threw = true;
  }
  EXPECT(threw, "unsorted filter ids accepted");
}

// The attribute index against a row-by-row evaluation: random rows added in batches of varied size
// (postings turn into bitsets, tails merge, cuts are rebuilt), some removed, random programs.
namespace {
struct Row {
  idx_t id;
  bool live;
  std::vector<int32_t> codes;  // field 0 (keyword)
  bool has_int;
  int64_t ival;               // field 1
  bool has_float;
  double fval;                // field 2
};
struct Cond {
  FilterOp op;
  std::vector<int64_t> args;  // Keyword codes / Ids
  int64_t ilo = 0, ihi = 0;
  double flo = 0, fhi = 0;
  std::vector<Cond> kids;
};
Cond random_cond(Rng& rng, const std::vector<Row>& rows, int depth) {
  Cond c;
  const int pick = static_cast<int>(rng.uniform() * (depth < 3 ? 8 : 5));
  if (pick == 0) {
    c.op = FilterOp::Keyword;
    for (int j = 0, n = 1 + static_cast<int>(rng.uniform() * 3); j < n; ++j)
      c.args.push_back(static_cast<int64_t>(rng.uniform() * 12));
  } else if (pick == 1) {
    c.op = FilterOp::IntRange;
    c.ilo = static_cast<int64_t>(rng.uniform() * 60) - 5;
    c.ihi = c.ilo + static_cast<int64_t>(rng.uniform() * 40) - 2;
  } else if (pick == 2) {
    c.op = FilterOp::FloatRange;
    c.flo = rng.uniform() - 0.1;
    c.fhi = c.flo + rng.uniform() * 0.6;
  } else if (pick == 3) {
    c.op = FilterOp::Ids;
    for (int j = 0, n = static_cast<int>(rng.uniform() * 30); j < n; ++j)
      c.args.push_back(rows[static_cast<size_t>(rng.uniform() * rows.size())].id + (j % 7 == 0 ? 1000000 : 0));
  } else if (pick == 4) {
    c.op = FilterOp::All;
  } else {
    c.op = pick == 5 ? FilterOp::And : pick == 6 ? FilterOp::Or : FilterOp::Not;
    const int n = c.op == FilterOp::Not ? 1 : static_cast<int>(rng.uniform() * 4);
    for (int j = 0; j < n; ++j) c.kids.push_back(random_cond(rng, rows, depth + 1));
  }
  return c;
}
void emit(const Cond& c, std::vector<int64_t>* p) {
  p->push_back(static_cast<int64_t>(c.op));
  switch (c.op) {
    case FilterOp::Keyword:
    case FilterOp::Ids:
      if (c.op == FilterOp::Keyword) p->push_back(0);
      p->push_back(static_cast<int64_t>(c.args.size()));
      p->insert(p->end(), c.args.begin(), c.args.end());
      break;
    case FilterOp::IntRange:
      p->insert(p->end(), {1, c.ilo, c.ihi});
      break;
    case FilterOp::FloatRange: {
      int64_t lo, hi;
      std::memcpy(&lo, &c.flo, 8);
      std::memcpy(&hi, &c.fhi, 8);
      p->insert(p->end(), {2, lo, hi});
      break;
    }
    case FilterOp::And:
    case FilterOp::Or:
      p->push_back(static_cast<int64_t>(c.kids.size()));
      for (const Cond& k : c.kids) emit(k, p);
      break;
    case FilterOp::Not:
      emit(c.kids[0], p);
      break;
    case FilterOp::All:
      break;
  }
}
bool matches(const Cond& c, const Row& r) {
  switch (c.op) {
    case FilterOp::All: return true;
    case FilterOp::Keyword:
      for (int64_t a : c.args)
        if (std::find(r.codes.begin(), r.codes.end(), a) != r.codes.end()) return true;
      return false;
    case FilterOp::Ids: return std::find(c.args.begin(), c.args.end(), r.id) != c.args.end();
    case FilterOp::IntRange: return r.has_int && r.ival >= c.ilo && r.ival <= c.ihi;
    case FilterOp::FloatRange: return r.has_float && r.fval >= c.flo && r.fval <= c.fhi;
    case FilterOp::And:
      for (const Cond& k : c.kids)
        if (!matches(k, r)) return false;
      return true;
    case FilterOp::Or:
      for (const Cond& k : c.kids)
        if (matches(k, r)) return true;
      return false;
    case FilterOp::Not: return !matches(c.kids[0], r);
  }
  return false;
}
}  // namespace

static void test_attribute_index_equals_row_evaluation() {
  Rng rng(33);
  for (bool scattered : {false, true}) {
    AttributeIndex ix;
    ix.declare(0, AttributeKind::Keyword);
    ix.declare(1, AttributeKind::Int);
    ix.declare(2, AttributeKind::Float);
    std::vector<Row> rows;
    for (int batch = 0; batch < 14; ++batch) {
      const size_t n = batch % 3 == 0 ? 1 : batch % 3 == 1 ? 37 : 1200;
      std::vector<idx_t> ids;
      std::vector<int64_t> offsets{0}, ivals;
      std::vector<int32_t> codes;
      std::vector<double> fvals;
      std::vector<uint8_t> ipres, fpres;
      for (size_t i = 0; i < n; ++i) {
        Row r;
        r.id = scattered ? static_cast<idx_t>(rows.size() * 7919 % 100003) : static_cast<idx_t>(rows.size());
        r.live = true;
        for (int j = 0, m = static_cast<int>(rng.uniform() * 3); j < m; ++j)  // skewed: low codes common
          r.codes.push_back(static_cast<int32_t>(rng.uniform() * rng.uniform() * 12));
        r.has_int = rng.uniform() < 0.9;
        r.ival = rng.uniform() < 0.5 ? 7 : static_cast<int64_t>(rng.uniform() * 50);  // one heavy value
        r.has_float = rng.uniform() < 0.9;
        r.fval = rng.uniform();
        ids.push_back(r.id);
        codes.insert(codes.end(), r.codes.begin(), r.codes.end());
        offsets.push_back(static_cast<int64_t>(codes.size()));
        ivals.push_back(r.ival);
        ipres.push_back(r.has_int);
        fvals.push_back(r.fval);
        fpres.push_back(r.has_float);
        rows.push_back(r);
      }
      const size_t first = ix.append_rows(ids.data(), n);
      ix.set_keywords(0, first, n, offsets.data(), codes.data());
      ix.set_ints(1, first, n, ivals.data(), ipres.data());
      ix.set_floats(2, first, n, fvals.data(), fpres.data());
      if (batch % 5 == 4) {  // remove about a third of the rows
        std::vector<idx_t> gone;
        for (Row& r : rows)
          if (r.live && rng.uniform() < 0.33) {
            r.live = false;
            gone.push_back(r.id);
          }
        EXPECT(ix.remove(gone.data(), gone.size()) == gone.size(), "remove count");
      }
      for (int t = 0; t < 25; ++t) {
        const Cond c = random_cond(rng, rows, 0);
        std::vector<int64_t> prog;
        emit(c, &prog);
        CompiledFilter f = ix.compile(prog.data(), prog.size());
        std::vector<idx_t> got = f.ids;
        if (f.is_bitset) {
          got.clear();
          for (size_t b = 0; b < f.nbits; ++b)
            if ((f.bits[b >> 6] >> (b & 63)) & 1) got.push_back(static_cast<idx_t>(b));
        }
        std::vector<idx_t> want;
        for (const Row& r : rows)
          if (r.live && matches(c, r)) want.push_back(r.id);
        std::sort(want.begin(), want.end());
        EXPECT(got == want && f.count == want.size(), "attribute filter: %zu ids, want %zu (batch %d)", got.size(),
               want.size(), batch);
      }
    }
    std::vector<int64_t> bad = {static_cast<int64_t>(FilterOp::And), 3, 0};
    bool threw = false;
    try {
      ix.compile(bad.data(), bad.size());
    } catch (const Error&) {
      threw = true;
    }
    EXPECT(threw, "a truncated filter program was accepted");
  }
}

int main() {
  test_kernels_match_scalar();
  test_filtered_search_equals_search_of_allowed_rows();
  test_attribute_index_equals_row_evaluation();
  test_ivf_roundtrip_and_corruption();
  test_hamming_kernels_match_bit_count();
  test_binary_index_hash_and_file();
  test_adc_matches_scalar();
  test_fastscan_matches_scalar();
  test_fastscan_many_matches_single();
  test_pq_index_roundtrip();
  test_fastscan_levels_on_awkward_sizes();
  test_format_fuzz();
  test_visited_set_matches_std_set();
  test_graph_churn_and_file();
  if (failures) {
    std::fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  std::printf("cpp core tests passed (levels:");
  for (SimdLevel l : available_simd_levels()) std::printf(" %s", simd_level_name(l));
  std::printf(")\n");
  return 0;
}
